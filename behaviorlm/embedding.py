"""Driver-side embedding: the model's identity, the encoder UDF with its model-load and device accumulators, and
the incremental item-embedding frames (which items need new vectors, the MERGE source).

A model's id names what its vectors are. Backend `transformers`: folder name, a digest of its config, tokenizer
files and weights' content, the dtype, the pooling and the truncation. Backend `use-multilingual`: the backend's name,
a digest of its weights and SentencePiece model, and its truncation in characters. When the id changes (a new model,
or a switch of backend), stored vectors are stale and are re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.errors import BehaviorLMError
from behaviorlm.neighbors import vector_dim
from behaviorlm.session import is_connect
from behaviorlm.vectors import concat_unit
from udfs import multilingual
from udfs.embed import PidCounts, embed_udf, readable_share_udf

log = logging.getLogger(__name__)
TRANSFORMERS, MULTILINGUAL = "transformers", multilingual.NAME
# Files that decide what a model folder computes: weights, architecture, tokenizer.
_MODEL_FILES = (".safetensors", ".bin", ".json", ".txt", ".model", ".npz")


class ModelNotFoundError(BehaviorLMError, FileNotFoundError):
    """`model.path` is not a Hugging Face model folder."""


class EmbeddingSpaceError(BehaviorLMError, ValueError):
    """The configured encoder is not the one the stored item vectors were made with."""


class MultilingualNotInstalledError(BehaviorLMError, ModuleNotFoundError):
    """`model.backend: use-multilingual` was asked for, but its optional package is not installed."""


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


def model_config(path: str) -> str:
    """The config.json of the Hugging Face model folder at `path`; `ModelNotFoundError` when there is none."""
    config_json = os.path.join(path, "config.json")
    if not os.path.isfile(config_json):
        raise ModelNotFoundError(f"model.path {path!r} has no config.json; run `behaviorlm setup` or fix model.path")
    return config_json


def model_info(
    path: str, pooling: str = "mean", max_length: int = 128, dtype: str = "auto", backend: str = TRANSFORMERS
) -> tuple[str, int]:
    """(model id, vector dimension) of the model folder at `path`, or of the multilingual backend (which ignores
    `path`, `pooling`, `max_length` and `dtype`)."""
    if backend == MULTILINGUAL:
        if not multilingual.installed():
            raise MultilingualNotInstalledError(f"model.backend: {MULTILINGUAL} needs {multilingual.INSTALL_HINT}")
        digest = model_digest(multilingual.resources())
        return f"{MULTILINGUAL}@{digest[:12]}/{multilingual.MAX_CHARS}c", multilingual.DIM
    with open(model_config(path), "rb") as fh:
        hidden = int(json.loads(fh.read())["hidden_size"])
    name = os.path.basename(os.path.normpath(path))
    return f"{name}@{model_digest(path)[:12]}/{dtype}/{pooling}/{max_length}", hidden


def backend_of(model: str) -> str:
    """The backend that made vectors with model id `model`."""
    return MULTILINGUAL if model.startswith(f"{MULTILINGUAL}@") else TRANSFORMERS


def stored_model(vectors: DataFrame) -> str | None:
    """The model id stored vectors were made with (the most common one; ties: the smallest id); None when empty or
    when the vectors carry no model id (vectors a user brought)."""
    if "model" not in vectors.columns:
        return None
    row = vectors.groupBy("model").count().orderBy(F.col("count").desc(), "model").first()
    return row["model"] if row else None


def stored_backend(vectors: DataFrame) -> str | None:
    """The backend of the model stored vectors were made with (None when there are none), logged: a stage that
    follows it says whose space it embeds in."""
    model = stored_model(vectors)
    if model is None:
        return None
    log.info("model.backend auto: %s, as the stored item vectors (%s)", backend_of(model), model)
    return backend_of(model)


def check_same_space(users: DataFrame, items: DataFrame, users_name: str, items_name: str) -> None:
    """Raise `EmbeddingSpaceError` when stored user vectors were not made in the stored item vectors' space: another
    model id, or (vectors without one) another length. Item vectors re-embedded with another backend leave the
    user vectors of the old one behind until embed-users runs again; compared, they would fail in a matrix product."""
    user_model, item_model = stored_model(users), stored_model(items)
    if user_model is not None and item_model is not None:
        if user_model != item_model:
            raise EmbeddingSpaceError(f"{users_name} hold vectors of model {user_model!r} but {items_name} of "
                                      f"{item_model!r}: run embed-users again (after embed-items)")  # fmt: skip
        return  # one model, one length: no need to read the vectors
    user_dim, item_dim = vector_dim(users), vector_dim(items)
    if user_dim and item_dim and user_dim != item_dim:
        raise EmbeddingSpaceError(f"{users_name} hold {user_dim}-d vectors but {items_name} {item_dim}-d: run "
                                  "embed-users again (after embed-items)")  # fmt: skip


@dataclass
class EmbedFn:
    """The UDF for one job run, the id and dimension of the vectors it makes, and its {pid: loads} and
    {device choice: tasks} accumulators (None on Spark Connect). `auto_unknown_token_share` is what `model.backend:
    auto` measured, if it measured."""

    udf: object
    loads: object
    devices: object
    backend: str = TRANSFORMERS
    model: str = ""
    dim: int = 0
    auto_unknown_token_share: float | None = None
    readable: Callable[[Column], Column] | None = None

    def __call__(self, text: Column) -> Column:
        return self.udf(text)

    def readable_share(self, text: Column) -> Column:
        """The share of `text`'s letters, digits and symbols the encoder reads (`udfs.words`): 0.0 for none."""
        if self.readable is None:
            raise BehaviorLMError(f"no readability measure for {self.model or 'this encoder'}: build it with "
                                  "make_embed_fn")  # fmt: skip
        return self.readable(text)

    def encode(self, frame: DataFrame, text_col: str, out_col: str) -> DataFrame:
        """`frame` with `out_col` = the vector of `text_col`."""
        return frame.withColumn(out_col, self.udf(F.col(text_col)))

    def report(self) -> dict[str, int]:
        """Model loads per Python worker and GPU tasks (not on Spark Connect, which has no accumulators), and the
        backend used."""
        result: dict[str, int] = {}
        if self.loads is not None:
            counts, devices = dict(self.loads.value), dict(self.devices.value)
            # A worker reused from an earlier job in the same session may hold the model already (0 loads); more
            # than one load in any worker would mean the cache failed.
            result = {"model_loads": sum(counts.values()), "python_workers": len(counts),
                      "max_loads_per_worker": max(counts.values(), default=0),
                      "gpu_tasks": sum(n for k, n in devices.items() if "-> cuda" in k)}  # fmt: skip
            # On a CPU-only machine the device line says nothing new; where GPUs were assigned it is the proof.
            level = logging.INFO if any(not k.startswith("gpu None") for k in devices) else logging.DEBUG
            log.log(level, "model loads %d across %d Python worker(s) %s; encoder devices (tasks per Spark GPU "
                    "address -> device used): %s", result["model_loads"], len(counts), counts, devices)  # fmt: skip
        # The backend a stage used, in run_metrics beside its counts: `auto` may have picked either.
        result["backend_use_multilingual"] = int(self.backend == MULTILINGUAL)
        if self.auto_unknown_token_share is not None:
            result["auto_unknown_token_share"] = self.auto_unknown_token_share
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
    backend: str = TRANSFORMERS,
    auto_unknown_token_share: float | None = None,
) -> EmbedFn:
    """The encoder of `backend` as a column function (null text is encoded as `empty_text`), with its model id and
    accumulators. Raises `ModelNotFoundError` (no model folder) or `MultilingualNotInstalledError` before any task
    runs."""
    model, dim = model_info(model_path, pooling, max_length, dtype, backend)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch_size))
    loads = devices = None
    if not is_connect(spark):  # Spark Connect has no accumulators: no model-load counts there
        loads = spark.sparkContext.accumulator({}, PidCounts())
        devices = spark.sparkContext.accumulator({}, PidCounts())
    udf = embed_udf(model_path, max_length, pooling, dtype, batch_size, empty_text, loads, devices, backend)
    readable = readable_share_udf(model_path, max_length, backend)
    return EmbedFn(udf, loads, devices, backend, model, dim, auto_unknown_token_share, readable)


@dataclass
class EmbedConcat:
    """Several encoders as one: their unit vectors concatenated (`vectors.concat_unit`). Matching short messages is
    where two encoders trained on different data make fewer mistakes than either alone."""

    parts: list[EmbedFn]

    def encode(self, frame: DataFrame, text_col: str, out_col: str) -> DataFrame:
        """`frame` with `out_col` = the concatenated vector of `text_col`. Each part is its own column first: Spark
        allows no Python UDF inside the higher-order functions that normalise and join them."""
        names = [f"_{out_col}_{n}" for n in range(len(self.parts))]
        for name, part in zip(names, self.parts):
            frame = part.encode(frame, text_col, name)
        return frame.withColumn(out_col, concat_unit([F.col(n) for n in names])).drop(*names)

    def readable_share(self, text: Column) -> Column:
        """The largest share of `text` any part reads: readable by one is enough."""
        shares = [part.readable_share(text) for part in self.parts]
        return F.greatest(*shares) if len(shares) > 1 else shares[0]

    @property
    def model(self) -> str:
        return "+".join(part.model for part in self.parts)

    @property
    def dim(self) -> int:
        return sum(part.dim for part in self.parts)


Embedder = EmbedFn | EmbedConcat  # what encodes a text column


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
