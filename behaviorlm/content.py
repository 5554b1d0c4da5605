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
