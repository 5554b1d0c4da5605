"""Driver-side glue for the embedding UDF, shared by `embed_items` and `embed_users`: the model's identity, the UDF
built from config with its model-load accumulator, and the log line that proves one load per Python worker."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass

from pyspark.sql import Column, SparkSession

from jobs.config import Config
from jobs.errors import BehaviorLMError
from udfs.embed import PidCounts, embed_udf

log = logging.getLogger(__name__)


class ModelNotFoundError(BehaviorLMError, FileNotFoundError):
    """`model.path` is not a Hugging Face model folder."""


def model_info(cfg: Config) -> tuple[str, int]:
    """(model id, vector dimension). The id is what identifies the vectors a model makes: folder name, a hash of
    its config.json and weight files' sizes, the pooling and the truncation. When it changes, stored vectors are
    stale and are re-embedded."""
    path = cfg.model.path
    config_json = os.path.join(path, "config.json")
    if not os.path.isfile(config_json):
        raise ModelNotFoundError(f"model.path {path!r} has no config.json; run `behaviorlm setup` or fix model.path")
    with open(config_json, "rb") as fh:
        raw = fh.read()
    digest = hashlib.sha256(raw)
    for name in sorted(os.listdir(path)):
        if name.endswith((".safetensors", ".bin")):
            digest.update(f"{name}:{os.path.getsize(os.path.join(path, name))}".encode())
    name = os.path.basename(os.path.normpath(path))
    model = f"{name}@{digest.hexdigest()[:10]}/{cfg.model.pooling}/{cfg.model.max_length}"
    return model, int(json.loads(raw)["hidden_size"])


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
        log.info("model loads %d across %d Python worker(s) %s", result["model_loads"], len(counts), counts)
        devices = dict(self.devices.value)
        if devices:
            log.info("encoder devices (tasks per Spark GPU address -> device used): %s", devices)
        result["gpu_tasks"] = sum(n for k, n in devices.items() if "-> cuda" in k)
        return result


def make_embed_fn(spark: SparkSession, cfg: Config) -> EmbedFn:
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.embed.arrow_batch_size))
    loads = spark.sparkContext.accumulator({}, PidCounts())
    devices = spark.sparkContext.accumulator({}, PidCounts())
    m = cfg.model
    udf = embed_udf(m.path, m.max_length, m.pooling, m.dtype, m.batch_size, cfg.embed.empty_text, loads, devices)
    return EmbedFn(udf, loads, devices)
