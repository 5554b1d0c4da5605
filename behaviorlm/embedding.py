"""Driver-side embedding: the model's identity, the encoder UDF with its model-load and device accumulators, and
the incremental item-embedding frames (which items need new vectors, the MERGE source).

A model's id names what its vectors are: folder name, a digest of its config, tokenizer files and weights' content,
the dtype, the pooling and the truncation. When the id changes, stored vectors are stale and are re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.errors import BehaviorLMError
from udfs.embed import PidCounts, embed_udf

log = logging.getLogger(__name__)
# Files that decide what a model folder computes: weights, architecture, tokenizer.
_MODEL_FILES = (".safetensors", ".bin", ".json", ".txt", ".model")


class ModelNotFoundError(BehaviorLMError, FileNotFoundError):
    """`model.path` is not a Hugging Face model folder."""


@lru_cache(maxsize=256)
def _file_digest(path: str, stamp: tuple[int, ...]) -> str:
    """SHA-256 of a file's content, cached by path and `stamp` (size, mtime, ctime, inode): a 90 MB weight file is
    read once per process and again only when it changes. ctime and inode are in the key because a copy that keeps
    the old mtime (`cp -p`, `rsync -a`) still changes them."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_digest(path: str) -> str:
    """One digest over the content of every file that decides the model's output (weights, config, tokenizer)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and name.endswith(_MODEL_FILES):
            st = os.stat(full)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            digest.update(f"{name}:{_file_digest(full, stamp)}\n".encode())
    return digest.hexdigest()


def model_info(path: str, pooling: str = "mean", max_length: int = 128, dtype: str = "auto") -> tuple[str, int]:
    """(model id, vector dimension) of the model folder at `path`."""
    config_json = os.path.join(path, "config.json")
    if not os.path.isfile(config_json):
        raise ModelNotFoundError(f"model.path {path!r} has no config.json; run `behaviorlm setup` or fix model.path")
    with open(config_json, "rb") as fh:
        hidden = int(json.loads(fh.read())["hidden_size"])
    name = os.path.basename(os.path.normpath(path))
    return f"{name}@{model_digest(path)[:12]}/{dtype}/{pooling}/{max_length}", hidden


@dataclass
class EmbedFn:
    """The UDF for one job run plus its {pid: loads} and {device choice: tasks} accumulators."""

    udf: object
    loads: object
    devices: object

    def __call__(self, text: Column) -> Column:
        return self.udf(text)

    def report(self) -> dict[str, int]:
        counts = dict(self.loads.value)
        # A worker reused from an earlier job in the same session may hold the model already (0 loads); more than
        # one load in any worker would mean the cache failed.
        result = {"model_loads": sum(counts.values()), "python_workers": len(counts),
                  "max_loads_per_worker": max(counts.values(), default=0)}  # fmt: skip
        devices = dict(self.devices.value)
        result["gpu_tasks"] = sum(n for k, n in devices.items() if "-> cuda" in k)
        # On a CPU-only machine the device line says nothing new; where GPUs were assigned it is the proof.
        level = logging.INFO if any(not k.startswith("gpu None") for k in devices) else logging.DEBUG
        log.log(level, "model loads %d across %d Python worker(s) %s; encoder devices (tasks per Spark GPU address "
                "-> device used): %s", result["model_loads"], len(counts), counts, devices)  # fmt: skip
        return result


def make_embed_fn(
    spark: SparkSession,
    model_path: str,
    max_length: int = 128,
    pooling: str = "mean",
    dtype: str = "auto",
    batch_size: int = 64,
    empty_text: str = "",
    arrow_batch_size: int = 2048,
) -> EmbedFn:
    """The encoder as a column function (null text is encoded as `empty_text`), with its accumulators."""
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch_size))
    loads = spark.sparkContext.accumulator({}, PidCounts())
    devices = spark.sparkContext.accumulator({}, PidCounts())
    udf = embed_udf(model_path, max_length, pooling, dtype, batch_size, empty_text, loads, devices)
    return EmbedFn(udf, loads, devices)


def mark_changed(texts: DataFrame, existing: DataFrame | None, model: str) -> DataFrame:
    """Adds `changed`: true when the item has no vector yet, its text hash differs, or the model differs."""
    if existing is None:
        return texts.withColumn("changed", F.lit(True))
    old = existing.select("item_id", F.col("text_hash").alias("_old_hash"), F.col("model").alias("_old_model"))
    changed = F.col("_old_hash").isNull() | (F.col("_old_hash") != F.col("text_hash")) | (F.col("_old_model") != model)
    return texts.join(old, "item_id", "left").withColumn("changed", changed).drop("_old_hash", "_old_model")


def embed_changed(marked: DataFrame, embed: EmbedFn, model: str, dim: int) -> DataFrame:
    """MERGE source: changed rows with fresh vectors, unchanged rows with only their key (so deletes work)."""
    fresh = marked.where("changed").withColumn("embedding", embed(F.col("text")))
    stale = marked.where("not changed").withColumn("embedding", F.lit(None).cast("array<float>"))
    return fresh.unionByName(stale).select(
        "item_id",
        "text_hash",
        "embedding",
        F.lit(model).alias("model"),
        F.lit(dim).alias("dim"),
        F.current_timestamp().alias("updated_at"),
        "changed",
    )
