"""The content part's product: each user's closest items by the dot product of their vectors, computed in blocks.

`content_scores` is one blocked user x item product (`udfs.topk.block_scores`, BLAS per block): neither the users
nor the catalogue has to fit in one task. recommend's `content` part (user x item cosine), its `onboarding` part
(start vector x each item's response vector) and predict's recent-items part all rank through it.
"""

from __future__ import annotations

import math

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.indexing import by_seen_room
from udfs.device import task_device
from udfs.topk import block_scores


def content_scores(
    user_vectors: DataFrame, item_vectors: DataFrame, wanted: DataFrame, m: int, block: int
) -> DataFrame:
    """(user_id, item_id, content): each user's `m` highest-cosine items plus the cosine of every (user, item) pair
    in `wanted`, from one blocked user x item product (`udfs.topk.block_scores`, BLAS per block), so neither the
    users nor the catalogue has to fit in one task."""
    n_items, n_users = item_vectors.count(), user_vectors.count()
    i_blocks, u_blocks = max(1, math.ceil(n_items / block)), max(1, math.ceil(n_users / block))
    item_block = F.pmod(F.xxhash64("item_id"), F.lit(i_blocks)).cast("int")
    lists = wanted.withColumn("ib", item_block).groupBy("user_id", "ib").agg(F.collect_list("item_id").alias("wanted"))
    users = (
        user_vectors.select(
            F.col("user_id").alias("user_id"),
            F.col("embedding").alias("embedding"),
            F.pmod(F.xxhash64("user_id"), F.lit(u_blocks)).cast("int").alias("ub"),
            F.explode(F.sequence(F.lit(0), F.lit(i_blocks - 1))).alias("ib"),
        )
        .join(lists, ["user_id", "ib"], "left")
        .select("ub", "ib", "user_id", "embedding", "wanted")
    )
    items = item_vectors.select(
        F.explode(F.sequence(F.lit(0), F.lit(u_blocks - 1))).alias("ub"),
        item_block.alias("ib"),
        F.col("item_id").alias("item_id"),
        F.col("embedding").alias("embedding"),
    )

    def score(q: pd.DataFrame, c: pd.DataFrame) -> pd.DataFrame:
        return block_scores(q, c, m, task_device())

    schema = "user_id string, item_id string, content float, top boolean, wanted boolean"
    scored = users.groupBy("ub", "ib").cogroup(items.groupBy("ub", "ib")).applyInPandas(score, schema)
    if i_blocks > 1:  # the best m of each block -> the best m overall
        order = Window.partitionBy("user_id", "top").orderBy(F.col("content").desc(), F.col("item_id"))
        scored = scored.withColumn("top", F.col("top") & (F.row_number().over(order) <= m))
    return scored.where(F.col("top") | F.col("wanted")).select("user_id", "item_id", F.col("content").cast("double"))


def content_with_room(
    user_vectors: DataFrame, item_vectors: DataFrame, wanted: DataFrame, seen: DataFrame, seen_counts: DataFrame,
    m: int, k: int, block: int,
) -> DataFrame:  # fmt: skip
    """`content_scores`, with the lists of the users it leaves fewer than `k` unseen items (`wanted` and `seen`:
    user_id, item_id; `seen_counts`: user_id, n_seen) scored again, lengthened by what each has seen
    (`indexing.by_seen_room`): a user who has seen every one of its `m` closest items (a bot in a small catalogue)
    would otherwise get almost no recommendation while unseen items exist. Other users' lists are as
    `content_scores` gives them."""
    content = content_scores(user_vectors, item_vectors, wanted, m, block).localCheckpoint()
    # Of m closest items a user who has seen at most m - k keeps k unseen: only heavier users are counted.
    heavy = seen_counts.select("user_id", "n_seen").where(F.col("n_seen") > m - k)
    heavy = heavy.join(user_vectors.select("user_id"), "user_id").localCheckpoint()
    if heavy.isEmpty():
        return content
    ids = heavy.select("user_id")
    offered = (
        wanted.join(ids, "user_id")
        .select("user_id", "item_id")
        .unionByName(content.join(ids, "user_id").select("user_id", "item_id"))
    )
    unseen = (
        offered.distinct()
        .join(seen, ["user_id", "item_id"], "left_anti")
        .groupBy("user_id")
        .agg(F.count("*").alias("_n"))
    )
    short = heavy.join(unseen, "user_id", "left").where(F.coalesce("_n", F.lit(0)) < k).select("user_id", "n_seen")
    short = short.localCheckpoint()
    if short.isEmpty():
        return content

    def longer(rows: DataFrame, n: int) -> DataFrame:
        users = rows.select("user_id")
        return content_scores(user_vectors.join(users, "user_id"), item_vectors, wanted.join(users, "user_id"), n,
                              block)  # fmt: skip

    again = by_seen_room(short, "n_seen", m, longer)
    return content.join(short.select("user_id"), "user_id", "left_anti").unionByName(again)
