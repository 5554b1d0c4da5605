"""The pandas UDF that embeds a text column: `Iterator[pd.Series] -> Iterator[pd.Series]` of array<float>.

The iterator form lets the model load once per Python worker, at the first Arrow batch, and stay cached for
later tasks in the same worker (`spark.python.worker.reuse`, on by default). Arrow batch size is
`spark.sql.execution.arrow.maxRecordsPerBatch` (set by the jobs from `model.arrow_batch_size`); the encoder then
runs forward passes of `model.batch_size` length-sorted texts.

`backend` picks the encoder core: `transformers` (`udfs.encoder`, the model folder at `model_path`, on the task's GPU
when it has one) or `use-multilingual` (`udfs.multilingual`, numpy on the CPU, threads capped to the task's cores).

An optional `LoadTracker` (a Spark accumulator) records, per worker pid, how many model loads happened, so a job can
prove "one load per worker".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pandas as pd
from pyspark import TaskContext
from pyspark.accumulators import AccumulatorParam
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, DoubleType, FloatType

from udfs import multilingual, words
from udfs.device import device_choice
from udfs.encoder import Encoder, get_encoder


class PidCounts(AccumulatorParam):
    """Accumulates {key: count}: model loads per worker pid (a pid with 0 ran tasks but reused its cached model),
    or tasks per device choice."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, a: dict, b: dict) -> dict:
        for key, n in b.items():
            a[key] = a.get(key, 0) + n
        return a


def task_encoder(
    backend: str, model_path: str, dtype: str, max_length: int, pooling: str
) -> tuple[Encoder | multilingual.MultilingualEncoder, bool, str]:
    """(encoder, loaded_now, "gpu <address> -> <device> (<why>)") for the running task."""
    if backend == multilingual.NAME:
        context = TaskContext.get()
        gpu = context.resources().get("gpu") if context else None
        address = gpu.addresses[0] if gpu and gpu.addresses else None
        encoder, loaded_now = multilingual.get_encoder(threads=max(1, context.cpus()) if context else 1)
        return encoder, loaded_now, f"gpu {address} -> cpu ({multilingual.NAME} runs on numpy)"
    device, address, why = device_choice()
    encoder, loaded_now = get_encoder(model_path, device, dtype, max_length, pooling)
    return encoder, loaded_now, f"gpu {address} -> {device} ({why})"


def embed_udf(
    model_path: str,
    max_length: int = 128,
    pooling: str = "mean",
    dtype: str = "auto",
    batch_size: int = 64,
    fallback_text: str = "",
    loads=None,
    devices=None,
    backend: str = "transformers",
):
    """A pandas UDF mapping a string column to L2-normalised float vectors; nulls are encoded as `fallback_text`.

    Args:
        loads: optional accumulator with `PidCounts` to count model loads per Python worker.
        devices: optional accumulator with `PidCounts` to count tasks per "gpu <address> -> <device> (<why>)".
    """

    @pandas_udf(ArrayType(FloatType()))
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        encoder = None
        for texts in batches:
            if encoder is None:  # first batch: a task with no rows never loads the model
                encoder, loaded_now, device = task_encoder(backend, model_path, dtype, max_length, pooling)
                if loads is not None:
                    loads.add({os.getpid(): int(loaded_now)})
                if devices is not None:
                    devices.add({device: 1})
            vectors = encoder.encode(texts.fillna(fallback_text).astype(str).tolist(), batch_size)
            yield pd.Series(list(vectors))

    return embed


def readable_share_udf(model_path: str, max_length: int = 128, backend: str = "transformers") -> Callable:
    """A pandas UDF mapping a string column to the share of each text the encoder of `backend` reads
    (`udfs.words`), over the tokens it reads (`max_length` less the two special ones; the multilingual backend cuts
    by characters itself); null text reads as none. The tokenizer loads once per Python worker."""
    limit = None if backend == multilingual.NAME else max(1, max_length - 2)

    @pandas_udf(DoubleType())
    def share(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        pieces = words.tokenizer(backend, model_path)
        for texts in batches:
            yield pd.Series(words.readable_shares(texts.fillna("").astype(str).tolist(), pieces, limit))

    return share
