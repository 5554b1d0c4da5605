"""The item-item part for catalogues too big for EASE (whose catalogue² inverse lives on the driver): a pruned top-K
item-item model computed on the cluster from co-occurrence counts, "EASE on neighbourhoods".

c_ij counts the users who interacted with both i and j (each user adds at most `max_history` items, picked by a
seeded hash, so the heaviest user costs at most max_history² pairs). Each item j keeps its `neighbors` most similar
items N(j) by cosine, c_ij / sqrt(c_i x c_j), and is regressed (ridge) on them alone: w = (XᵀX[N, N] + λI)⁻¹
XᵀX[N, j], one K x K solve per item on the executors, from counts already at hand. With every item a neighbour this is
EASE's closed form; pruned, no catalogue² matrix exists anywhere. On ML-100K (numpy, 100 neighbours, λ 500) it
ranks nDCG@10 0.478 alone, against full EASE's 0.492 and plain cosine item-kNN's 0.382. A user's score for an unseen
item sums w(i, j) over their history items i (times each one's weight, as EASE's scores do), scaled so their best item
scores 1; the history item contributing most is the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def cooccurrence(histories: DataFrame) -> tuple[DataFrame, DataFrame]:
    """((item_id, n): users per item, (item_id, other_id, c): users with both, for every pair of distinct items
    that share a user)."""
    users = histories.select("user_id", "item_id")
    counts = users.groupBy("item_id").agg(F.count("*").alias("n"))
    both = (
        users.join(users.withColumnRenamed("item_id", "other_id"), "user_id")
        .where(F.col("item_id") != F.col("other_id"))
        .groupBy("item_id", "other_id")
        .agg(F.count("*").cast("double").alias("c"))
    )
    return counts, both


def similarities(counts: DataFrame, both: DataFrame, neighbors: int) -> DataFrame:
    """(item_id, other_id, similarity, c): each item's `neighbors` most similar items by co-occurrence cosine (ties:
    item id), with their co-occurrence count."""
    cosine = F.col("c") / F.sqrt(F.col("n") * F.col("n_other"))
    best = Window.partitionBy("item_id").orderBy(F.col("similarity").desc(), "other_id")
    return (
        both.join(counts, "item_id")
        .join(counts.select(F.col("item_id").alias("other_id"), F.col("n").alias("n_other")), "other_id")
        .withColumn("similarity", cosine)
        .withColumn("_r", F.row_number().over(best))
        .where(F.col("_r") <= neighbors)
        .select("item_id", "other_id", "similarity", "c")
    )


def _ridge(reg: float):
    def solve(block: pd.DataFrame) -> pd.DataFrame:
        """One target item: the ridge regression of its column on its neighbours' from their Gram block."""
        ids = np.sort(block["a"].unique())
        where = {item: n for n, item in enumerate(ids)}
        rows, cols = block["a"].map(where).to_numpy(), block["b"].map(where).to_numpy()
        gram = np.zeros((len(ids), len(ids)))
        gram[rows, cols] = block["g"].to_numpy()
        target = np.zeros(len(ids))
        target[rows] = block["t"].to_numpy()
        weights = np.linalg.solve(gram + reg * np.eye(len(ids)), target)
        return pd.DataFrame({"item_id": ids, "other_id": block["target"].iloc[0], "weight": weights})

    return solve


def local_weights(histories: DataFrame, neighbors: int, reg: float) -> DataFrame:
    """(item_id, other_id, weight): EASE restricted to neighbourhoods. Each item j is regressed (ridge, penalty
    `reg`) on its `neighbors` most similar items only, from the co-occurrence counts of those items (their Gram
    block XᵀX[N, N] and XᵀX[N, j]): one small solve per item, on the executors. With every item a neighbour it is
    EASE's column j exactly; pruned, the catalogue² matrix never exists."""
    counts, both = cooccurrence(histories)
    counts, both = counts.localCheckpoint(), both.localCheckpoint()
    near = similarities(counts, both, neighbors).select(
        F.col("item_id").alias("target"), F.col("other_id").alias("a"), F.col("c").alias("t")
    )
    gram = both.select(F.col("item_id").alias("a"), F.col("other_id").alias("b"), F.col("c").alias("g")).unionByName(
        counts.select(F.col("item_id").alias("a"), F.col("item_id").alias("b"), F.col("n").cast("double").alias("g"))
    )
    blocks = (
        near.join(near.select("target", F.col("a").alias("b")), "target")
        .join(gram, ["a", "b"], "left")
        .fillna(0.0, ["g"])
    )
    return blocks.groupBy("target").applyInPandas(_ridge(reg), "item_id string, other_id string, weight double")


def cooccurrence_scores(
    pairs: DataFrame, m: int, reg: float, weight: str | None = None, neighbors: int = 100, max_history: int = 500
) -> DataFrame:
    """(user_id, item_id, items, because_item): each user's `m` best unseen items by the pruned item-item model
    (`local_weights`), scaled so the user's best scores 1, with the history item that contributes most (ties: the
    larger item id)."""
    history = capped_histories(pairs, max_history, weight).localCheckpoint()
    weights = local_weights(history, neighbors, reg)
    seen = pairs.select("user_id", "item_id").distinct()
    votes = (
        history.join(weights, "item_id")
        .select(
            "user_id",
            F.col("other_id").alias("item_id"),
            F.col("item_id").alias("because_item"),
            (F.col("w") * F.col("weight")).alias("v"),
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
