"""Small summaries of big tables for a report or a notebook: each reduces a DataFrame on the cluster and brings a
bounded number of rows to the driver (histogram bins, top-n counts, a fixed-size sample, a few users' rows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import reduce

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Point = tuple[float, float, int]
# smallest_by_hash's margin: the pre-filter passes about 2n + MARGIN rows, so fewer than n pass with probability
# under 1e-9 for any n (n sits at least 10 standard deviations below the binomial mean).
MARGIN = 100


def smallest_by_hash(df: DataFrame, n: int, hashed: Column, *ties: str) -> DataFrame:
    """The `n` rows of `df` with the smallest `hashed` (a seeded 64-bit hash such as `F.xxhash64(id, seed)`: a
    sample that is the same on every run of the same data), ties by `ties`. Spark's sort-then-limit keeps `n` rows
    of every partition and merges them in one place, which is every row when partitions hold fewer than `n` (10
    million vectors through one task for a 100,000-row sample); so rows with a hash among the smallest (2n + MARGIN)
    / total share of the range are kept first, a filter that leaves the result unchanged. One extra count."""
    total = df.count()
    share = (2 * n + MARGIN) / total if total else 1.0
    if share < 1.0:
        df = df.where(hashed < F.lit(int(-(2**63) + share * 2**64)))
    return df.orderBy(hashed, *ties).limit(n)


def histogram(df: DataFrame, col: str, lo: float, hi: float, bins: int) -> list[tuple[float, int]]:
    """(bin start, count) of `col` over [lo, hi] in `bins` equal bins (values outside go to the end bins)."""
    width = (hi - lo) / bins
    idx = F.least(F.greatest(F.floor((F.col(col) - lo) / width), F.lit(0)), F.lit(bins - 1)).cast("int")
    counts = {r["b"]: r["n"] for r in df.groupBy(idx.alias("b")).agg(F.count("*").alias("n")).collect()}
    return [(lo + b * width, counts.get(b, 0)) for b in range(bins)]


def top_counts(df: DataFrame, col: str, n: int) -> list[tuple[str, int]]:
    """The `n` most frequent values of `col` (an array column counts each element), most frequent first."""
    value = F.explode(col) if df.schema[col].dataType.typeName() == "array" else F.col(col)
    rows = df.select(value.alias("v")).groupBy("v").count().orderBy(F.col("count").desc(), "v").limit(n).collect()
    return [(str(r["v"]), r["count"]) for r in rows]


def projection(vectors: DataFrame, sample: int, seed: int, groups: DataFrame | None = None, id_col: str = "user_id",
               vector_col: str = "embedding", group_col: str = "group") -> list[Point]:  # fmt: skip
    """2-D PCA coordinates of a seeded sample of at most `sample` vectors, each with its group from
    `groups(id_col, group_col)` (-1 without one); [] with fewer than 3 vectors. The sample is bounded, so its PCA is
    an SVD on the driver: one Spark job instead of MLlib PCA's several passes."""
    picked = smallest_by_hash(vectors.where(F.col(vector_col).isNotNull()), sample, F.xxhash64(id_col, F.lit(seed)))
    group = F.lit(-1)
    if groups is not None:
        picked = picked.join(groups.select(id_col, F.col(group_col).alias("_g")), id_col, "left")
        group = F.coalesce(F.col("_g").cast("int"), F.lit(-1))
    rows = picked.select(vector_col, group.alias("g")).collect()
    if len(rows) < 3:
        return []
    x = np.asarray([r[vector_col] for r in rows], dtype=np.float64)
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    return [(float(p[0]), float(p[1]), int(r["g"])) for p, r in zip(xy, rows)]


def pick_keys(df: DataFrame, n: int, seed: int, key: str = "user_id") -> list[str]:
    """`n` distinct keys of `df`, chosen by a seeded hash (the same keys on every run of the same data)."""
    keys = df.select(key).distinct().orderBy(F.xxhash64(key, F.lit(seed)), key).limit(n)
    return [r[key] for r in keys.collect()]


def rows_for_keys(frames: Mapping[str, DataFrame], keys: list[str], key: str = "user_id") -> dict[str, list[dict]]:
    """Every row of each frame whose `key` is one of `keys`, as dicts (dates as ISO strings), in one Spark job: the
    frames are filtered, turned into JSON and unioned, so their columns need not match."""
    as_json = F.to_json(F.struct("*")).alias("_row")
    parts = [df.where(F.col(key).isin(keys)).select(F.lit(n).alias("_frame"), as_json) for n, df in frames.items()]
    out: dict[str, list[dict]] = {name: [] for name in frames}
    if parts:
        for r in reduce(DataFrame.unionByName, parts).collect():
            out[r["_frame"]].append(json.loads(r["_row"]))
    return out
