"""Contiguous int ids (0, 1, ...) for models that need them (MLlib ALS, EASE), numbered on the cluster; and
top lists sized to each user's history (`by_seen_room`).

MLlib's `StringIndexer` collects every distinct value to the driver to order them by frequency, and ships the whole
value -> index map in every task of `transform`: at 10 million user ids that is 1-2 GB of driver heap and a task
binary of hundreds of MB. `id_index` sorts the distinct values on the cluster and numbers them in that order
(`partials.positions`), so only one count per partition reaches the driver; the ids are joined back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.partials import positions


def id_index(frame: DataFrame, column: str, out: str) -> DataFrame:
    """(`column`, `out`): the distinct non-null values of `frame[column]`, numbered 0.. in value order as int;
    materialised (a projection of a checkpointed frame: reading it twice computes nothing again)."""
    ordered = frame.select(column).where(F.col(column).isNotNull()).distinct().orderBy(column)
    return positions(ordered, out).withColumn(out, F.col(out).cast("int"))


def by_seen_room(seen: DataFrame, count_col: str, k: int, top: Callable[[DataFrame, int], DataFrame]) -> DataFrame:
    """The union of `top(group, k + 2^b)` over groups of `seen`'s rows: a row whose `count_col` c is at most 2^b
    (b = ceil(log2 c)) falls in group b, a row with c = 0 or null in a group asked for k. `top(rows, n)` returns n
    best per row; seen items removed afterwards leave at least k. One list length of k + the most anyone has seen
    would give every row a bot's length (10 million users x 100,000 rows); here a row gets at most k + 2c, in about
    twenty groups, each one pass of `top`."""
    c = F.col(count_col)
    b = F.when(c > 0, F.ceil(F.log2(c)).cast("int")).otherwise(F.lit(-1))
    grouped = seen.withColumn("_room_b", b).localCheckpoint()
    groups = sorted(r["_room_b"] for r in grouped.select("_room_b").distinct().collect())
    lists = [top(grouped.where(F.col("_room_b") == g).drop("_room_b"), k + (2**g if g >= 0 else 0)) for g in groups]
    if not lists:
        return top(grouped.drop("_room_b"), k)
    return functools.reduce(DataFrame.unionByName, lists)
