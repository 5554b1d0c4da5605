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

PARTIALS = 64  # at most this many partials summed by the driver (`summed`)
CHUNK = 1 << 21  # elements per row a partial is sent in (16 MB of float64: far below Spark Connect's 128 MB messages)
ROW_BITS = 33  # `monotonically_increasing_id`: the partition in the upper 31 bits, the row within it in the lower 33
PAIRS_PER_STEP = 1 << 22  # item pairs counted per step in `co_counts` (32 MB of int64 codes)

T = TypeVar("T")
Partial = Callable[[Iterator[pd.DataFrame]], Sequence[np.ndarray] | None]
_ID = "_partials_row_id"
PIECES = "k int, size long, start long, dtype string, data binary"


def summed(frame: DataFrame, partial: Partial, count: int, partials: int = PARTIALS) -> list[np.ndarray]:
    """The `count` arrays `partial(batches)` returns for each partition of `frame` (None for an empty one), summed.

    At most `partials` partials (a narrow coalesce, no shuffle), computed in parallel and checkpointed, each sent in
    rows of at most CHUNK elements in its own dtype, fetched one partition at a time in partition order (the same
    sum on every run) and added into one float64 array per result on the driver. (Collected as array<double> rows,
    the partials were Python float lists of about 250 MB each at 2,001 x 2,001: 0.9 GB with 4 partitions.) Arrays
    come back flat: the caller knows their shapes. Raises ValueError when every partition is empty.
    """

    def pieces(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for k, array in enumerate(partial(batches) or []):
            flat = np.ascontiguousarray(array).ravel()
            for start in range(0, max(flat.size, 1), CHUNK):
                data = flat[start : start + CHUNK].tobytes()
                yield pd.DataFrame({"k": [k], "size": [flat.size], "start": [start], "dtype": [flat.dtype.str],
                                    "data": [data]})  # fmt: skip

    parts = frame.coalesce(partials).mapInPandas(pieces, PIECES).localCheckpoint()
    sums: list = [None] * count
    for row in parts.toLocalIterator(prefetchPartitions=False):
        if sums[row["k"]] is None:
            sums[row["k"]] = np.zeros(row["size"])
        piece = np.frombuffer(row["data"], dtype=row["dtype"])
        sums[row["k"]][row["start"] : row["start"] + piece.size] += piece
    if sums[0] is None:
        raise ValueError("summed: no partition holds a row")
    return sums


def co_counts(histories: Iterator[Sequence[int]], n: int) -> np.ndarray:
    """(n, n) int32: how many of `histories` (each a list of distinct ints below n) hold both i and j (the diagonal:
    how many hold i), counted sparsely, as pairs per history: a dense user x item product costs users x n², these
    users x (their items)²."""
    counts = np.zeros(n * n, dtype=np.int32)
    codes: list[np.ndarray] = []
    size = 0
    for items in histories:
        ix = np.asarray(items, dtype=np.int64)
        codes.append((ix[:, None] * n + ix[None, :]).ravel())
        size += ix.size**2
        if size >= PAIRS_PER_STEP:
            _add_pairs(counts, np.concatenate(codes))
            codes, size = [], 0
    if codes:
        _add_pairs(counts, np.concatenate(codes))
    return counts.reshape(n, n)


def _add_pairs(counts: np.ndarray, codes: np.ndarray) -> None:
    if counts.size <= 2 * codes.size:  # bincount's n² int64 array is no bigger than the codes: the fast way
        counts += np.bincount(codes, minlength=counts.size).astype(np.int32)
    else:  # a large catalogue: count the codes by sorting them instead of allocating n² more
        found, times = np.unique(codes, return_counts=True)
        counts[found] += times.astype(np.int32)


def positions(ordered: DataFrame, out: str, start: int = 0) -> DataFrame:
    """`ordered` with `out` (long): each row's place in the frame's order, `start`, `start` + 1, ... A distributed
    sort, then `monotonically_increasing_id` numbers the rows within each partition and each partition is shifted
    by the rows before it: one count per partition reaches the driver (RDD `zipWithIndex` does the same, but needs
    RDDs). The order must be total (no ties) for the numbers to be the same on every run."""
    tagged = ordered.withColumn(_ID, F.monotonically_increasing_id()).localCheckpoint()
    part = F.shiftrightunsigned(_ID, ROW_BITS)
    counts = dict(tuple(r) for r in tagged.groupBy(part.alias("_p")).count().collect())
    if not counts:
        return tagged.withColumn(out, F.lit(None).cast("long")).drop(_ID)
    # Partition ids run 0..P-1 (an empty one has no count): each one's offset, looked up by position.
    offsets, before = [], start
    for p in range(max(counts) + 1):
        offsets.append(F.lit(before))
        before += counts.get(p, 0)
    place = F.element_at(F.array(*offsets), (part + 1).cast("int")) + F.col(_ID).bitwiseAND((1 << ROW_BITS) - 1)
    return tagged.withColumn(out, place.cast("long")).drop(_ID)


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
