"""The item-item part for catalogues too big for EASE (whose catalogue² inverse lives on the driver): a pruned top-K
item-item model computed on the cluster from co-occurrence counts, as item-based CF has done since Sarwar et al.

similarity(i, j) = c_ij / sqrt(c_i x c_j), the cosine of the two items' binary user columns, where c_ij counts the
users who interacted with both. Each user adds at most `max_history` items (a seeded hash picks which, so the
heaviest user costs at most max_history² pairs, not the square of their whole history) and each item keeps only its
`neighbors` most similar items. A user's score for an unseen item sums similarity(i, j) over their history items i
(times each one's weight, as EASE's scores do), scaled so their best item scores 1; the history item contributing
most is the reason. Every step is a join or an aggregation: nothing of catalogue size reaches the driver.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import SEED


def capped_histories(pairs: DataFrame, max_history: int, weight: str | None = None, seed: int = SEED) -> DataFrame:
    """(user_id, item_id, w): each user's distinct items (w: the largest `weight` of its rows, 1 without one), at
    most `max_history` per user, picked by a seeded hash."""
    w = F.col(weight) if weight else F.lit(1.0)
    per_item = pairs.groupBy("user_id", "item_id").agg(F.max(w).cast("double").alias("w"))
    order = Window.partitionBy("user_id").orderBy(F.xxhash64(F.lit(seed), "item_id"), "item_id")
    return per_item.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= max_history).drop("_n")


def similarities(histories: DataFrame, neighbors: int) -> DataFrame:
    """(item_id, other_id, similarity): each item's `neighbors` most similar items by co-occurrence cosine (ties:
    item id)."""
    users = histories.select("user_id", "item_id")
    counts = users.groupBy("item_id").agg(F.count("*").alias("n"))
    both = (
        users.join(users.withColumnRenamed("item_id", "other_id"), "user_id")
        .where(F.col("item_id") != F.col("other_id"))
        .groupBy("item_id", "other_id")
        .agg(F.count("*").alias("c"))
    )
    cosine = F.col("c") / F.sqrt(F.col("n") * F.col("n_other"))
    best = Window.partitionBy("item_id").orderBy(F.col("similarity").desc(), "other_id")
    return (
        both.join(counts, "item_id")
        .join(counts.select(F.col("item_id").alias("other_id"), F.col("n").alias("n_other")), "other_id")
        .withColumn("similarity", cosine)
        .withColumn("_r", F.row_number().over(best))
        .where(F.col("_r") <= neighbors)
        .select("item_id", "other_id", "similarity")
    )


def cooccurrence_scores(
    pairs: DataFrame, m: int, weight: str | None = None, neighbors: int = 100, max_history: int = 500
) -> DataFrame:
    """(user_id, item_id, items, because_item): each user's `m` best unseen items by the pruned item-item model,
    scaled so the user's best scores 1, with the history item that contributes most (ties: the larger item id)."""
    history = capped_histories(pairs, max_history, weight).localCheckpoint()
    sims = similarities(history, neighbors)
    seen = pairs.select("user_id", "item_id").distinct()
    votes = (
        history.join(sims, "item_id")
        .select(
            "user_id",
            F.col("other_id").alias("item_id"),
            F.col("item_id").alias("because_item"),
            (F.col("w") * F.col("similarity")).alias("v"),
        )
        .join(seen, ["user_id", "item_id"], "left_anti")
        .groupBy("user_id", "item_id")
        .agg(F.sum("v").alias("raw"), F.max(F.struct("v", "because_item")).alias("_top"))
        .where(F.col("raw") > 0)
    )
    order = Window.partitionBy("user_id").orderBy(F.col("raw").desc(), "item_id")
    best = F.max("raw").over(Window.partitionBy("user_id"))
    return (
        votes.withColumn("_r", F.row_number().over(order))
        .where(F.col("_r") <= m)
        .select(
            "user_id", "item_id", (F.col("raw") / best).alias("items"), F.col("_top.because_item").alias("because_item")
        )
        .localCheckpoint()  # computed once, though candidates read it twice
    )
