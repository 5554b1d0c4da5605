"""Ids that differ only in leading zeros or letter case ('007' and '7', '0104' and '104', 'K1' and 'k1'). Ids are
text, so each such pair names two things, which is rarely what a log means: ingest warns of them (`jobs.ingest`)."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


def near_ids(ids: DataFrame, others: DataFrame, col: str, fold_case: bool = True) -> DataFrame:
    """(`col`, other): the distinct ids of `ids` that differ from an id of `others` (both with a column `col`) only
    in leading zeros or, with `fold_case`, letter case."""
    unpadded = F.regexp_replace(F.col(col), "^0+(?=.)", "")
    unpadded = F.lower(unpadded) if fold_case else unpadded
    left = ids.select(col).distinct().select(col, unpadded.alias("_key"))
    right = others.select(col).distinct().select(F.col(col).alias("other"), unpadded.alias("_key"))
    return left.join(right, "_key").where(F.col(col) != F.col("other")).select(col, "other")


def warn_near_ids(ids: DataFrame, others: DataFrame, col: str, what: str, fix: str, fold_case: bool = True) -> None:
    """Log a warning naming how many ids of `ids` are `near_ids` of `others` (`what` says which), with up to three
    examples and the `fix`."""
    near = near_ids(ids, others, col, fold_case).localCheckpoint()
    if found := near.orderBy(col, "other").limit(3).collect():
        pairs = ", ".join(f"{r[col]!r} vs {r['other']!r}" for r in found)
        n = near.select(col).distinct().count()
        but = "leading zeros or case" if fold_case else "leading zeros"
        log.warning("%d %s but for %s, e.g. %s: ids are text, so %s", n, what, but, pairs, fix)


def warn_unknown_items(unknown: DataFrame, catalogue: DataFrame) -> None:
    """Warn when behaviours' item ids the catalogue lacks (`unknown`) are near ids of `catalogue`: such rows count as
    unknown items, in silence but for a count."""
    warn_near_ids(unknown, catalogue, "item_id", "unknown item id(s) of the behaviours match a catalogue id",
                  "these behaviours name no catalogue item; spell the ids alike in both sources")  # fmt: skip


def warn_padded_users(users: DataFrame) -> None:
    """Warn when user ids of `users` differ only in leading zeros ('0104' and '104'): they are counted as two users,
    which an appended batch whose ids came as text after numbers makes silently."""
    padded = users.where(F.col("user_id").startswith("0"))
    if padded.isEmpty():  # the usual case: one pass over one column, no join of every user id
        return
    # Only padding: every user id with a capital letter joined to all user ids, at every ingest, would cost more.
    fix = "they are counted as different users; spell the ids alike in every batch"
    warn_near_ids(padded, users, "user_id", "user id(s) of the behaviours match another user id", fix, fold_case=False)
