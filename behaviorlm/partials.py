"""Numpy arrays summed over a DataFrame's partitions, rows numbered in a DataFrame's order, and driver values sent
to the executors, with the DataFrame API only: no RDD, so they also run on Spark Connect. X'X of the onboarding map
and of the EASE item model are such sums; the dense ids of `indexing.id_index` and the popularity rank are such
numbers; the EASE weights and the ANN's centroids are such values (`Shipped`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.session import is_connect

PARTIALS = 64  # partials fetched by the driver, one job each (`summed`)
ROW_BITS = 33  # `monotonically_increasing_id`: the partition in the upper 31 bits, the row within it in the lower 33
PAIRS_PER_STEP = 1 << 24  # item pairs counted per `np.bincount` in `co_counts` (128 MB of int64 codes)

T = TypeVar("T")
Partial = Callable[[Iterator[pd.DataFrame]], Sequence[np.ndarray] | None]


def summed(frame: DataFrame, partial: Partial, count: int) -> list[np.ndarray]:
    """The `count` arrays `partial(batches)` returns for each partition of `frame` (None for an empty one), summed.

    At most PARTIALS partials (a narrow coalesce, no shuffle), computed in parallel and checkpointed, then fetched
    one at a time as float64 bytes, in partition order (the same sum on every run), and added up on the driver,
    which holds two copies of each array however many partitions there are. (Collected as array<double> rows, the
    partials were Python float lists of about 250 MB each at 2,001 x 2,001: 0.9 GB with 4 partitions.) Arrays come
    back flat: the caller knows their shapes. Raises ValueError when every partition is empty.
    """
    names = [f"a{n}" for n in range(count)]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        arrays = partial(batches)
        if arrays is not None:
            yield pd.DataFrame({name: [np.asarray(a, dtype=np.float64).tobytes()] for name, a in zip(names, arrays)})

    parts = frame.coalesce(PARTIALS).mapInPandas(run, ", ".join(f"{name} binary" for name in names))
    sums: list = [None] * count
    for row in parts.localCheckpoint().toLocalIterator(prefetchPartitions=False):
        arrays = [np.frombuffer(row[name], dtype=np.float64) for name in names]
        sums = arrays if sums[0] is None else [s + a for s, a in zip(sums, arrays)]
    if sums[0] is None:
        raise ValueError("summed: no partition holds a row")
    return sums


def co_counts(histories: Iterator[Sequence[int]], n: int) -> np.ndarray:
    """(n, n) float64: how many of `histories` (each a list of distinct ints below n) hold both i and j (the diagonal:
    how many hold i), counted sparsely, as pairs per history: a dense user x item product costs users x n², these
    users x (their items)²."""
    counts = np.zeros(n * n, dtype=np.float64)
    codes: list[np.ndarray] = []
    size = 0
    for items in histories:
        ix = np.asarray(items, dtype=np.int64)
        codes.append((ix[:, None] * n + ix[None, :]).ravel())
        size += ix.size**2
        if size >= PAIRS_PER_STEP:
            counts += np.bincount(np.concatenate(codes), minlength=n * n)
            codes, size = [], 0
    if codes:
        counts += np.bincount(np.concatenate(codes), minlength=n * n)
    return counts.reshape(n, n)


def positions(ordered: DataFrame, out: str, start: int = 0) -> DataFrame:
    """`ordered` with `out` (long): each row's place in the frame's order, `start`, `start` + 1, ... A distributed
    sort, then `monotonically_increasing_id` numbers the rows within each partition and each partition is shifted
    by the rows before it: one count per partition reaches the driver (RDD `zipWithIndex` does the same, but needs
    RDDs). The order must be total (no ties) for the numbers to be the same on every run."""
    tagged = ordered.withColumn("_m", F.monotonically_increasing_id()).localCheckpoint()
    part = F.shiftrightunsigned("_m", ROW_BITS)
    counts = sorted((r["_p"], r["count"]) for r in tagged.groupBy(part.alias("_p")).count().collect())
    offsets, before = [], start
    for p, n in counts:
        offsets += [F.lit(p), F.lit(before)]
        before += n
    if not offsets:
        return tagged.withColumn(out, F.lit(None).cast("long")).drop("_m")
    place = F.create_map(*offsets)[part] + F.col("_m").bitwiseAND((1 << ROW_BITS) - 1)
    return tagged.withColumn(out, place.cast("long")).drop("_m")


class Shipped(Generic[T]):
    """A driver value for functions that run on the executors: call it there to get the value. On a classic session
    a broadcast variable (sent once per executor, unpickled once per Python worker); on Spark Connect, which has no
    broadcast variables, the value itself, pickled into the function's closure and sent with the plan (the server
    takes messages up to `spark.connect.grpc.maxInboundMessageSize`, 128 MB by default)."""

    def __init__(self, spark: SparkSession, value: T) -> None:
        self._variable = None if is_connect(spark) else spark.sparkContext.broadcast(value)
        self._value = value if self._variable is None else None

    def __call__(self) -> T:
        return self._value if self._variable is None else self._variable.value

    def release(self) -> None:
        """Frees the executors' copies (a broadcast variable) once no job needs the value any more."""
        if self._variable is not None:
            self._variable.unpersist()
