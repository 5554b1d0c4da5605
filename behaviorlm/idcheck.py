"""Ids that differ only in leading zeros ('007' and '7', '0104' and '104'). Ids are text, so each such pair names two
things, which is rarely what a log means: ingest warns of them (`jobs.ingest`)."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


def near_ids(ids: DataFrame, others: DataFrame, col: str) -> DataFrame:
    """(`col`, other): the distinct ids of `ids` that differ from an id of `others` (both with a column `col`) only
    in leading zeros."""
    unpadded = F.regexp_replace(F.col(col), "^0+(?=.)", "")
    left = ids.select(col).distinct().select(col, unpadded.alias("_key"))
    right = others.select(col).distinct().select(F.col(col).alias("other"), unpadded.alias("_key"))
    return left.join(right, "_key").where(F.col(col) != F.col("other")).select(col, "other")


def warn_near_ids(ids: DataFrame, others: DataFrame, col: str, what: str, fix: str) -> None:
    """Log a warning naming how many ids of `ids` are `near_ids` of `others` (`what` says which), with up to three
    examples and the `fix`."""
    near = near_ids(ids, others, col).localCheckpoint()
    if found := near.orderBy(col, "other").limit(3).collect():
        pairs = ", ".join(f"{r[col]!r} vs {r['other']!r}" for r in found)
        log.warning("%d %s but for leading zeros, e.g. %s: ids are text, so %s", near.select(col).distinct().count(),
                    what, pairs, fix)  # fmt: skip
