"""Rating completion: predict missing ratings from observed ratings, user neighbours and item embeddings.

Ratings (the `complete` job and `bench-complete`):
    prediction = mu + b_u + b_i                                         (baseline: regularised biases)
               + user_dev x n_u / (n_u + user_shrinkage)                (approximate neighbours who rated the item)
               + item_weight x item_dev x n_i / (n_i + item_shrinkage)  (items most similar by embedding that the
                                                                         user rated)
    clipped to [rating_min, rating_max]. Each *_dev is a similarity-weighted mean of residuals r - baseline, so it
    is a mean-centred neighbour deviation. Biases are fitted the way Surprise's BaselineOnly does (alternating
    least squares, `bias_epochs` rounds, ridge terms reg_user / reg_item).
    confidence = (n_u + n_i) / (n_u + n_i + user_shrinkage): 0 when nothing supports the pair (baseline only),
    towards 1 as neighbours and similar items pile up. n_support = n_u + n_i.
Attributes are in `behaviorlm.attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import BLOCK_SIZE
from behaviorlm.errors import InputContractError
from behaviorlm.neighbors import exact_top_k

# What `predict_ratings` returns.
PREDICTIONS = ("user_id string, item_id string, predicted_rating double, confidence double, n_support int, "
               "method string")  # fmt: skip


@dataclass(frozen=True)
class RatingModel:
    """The rating model's settings (see the module docstring for the formula)."""

    bias_epochs: int = 10
    reg_user: float = 15.0
    reg_item: float = 10.0
    user_shrinkage: float = 20.0
    item_similarity_power: float = 2.0
    item_shrinkage: float = 10.0
    item_weight: float = 1.0
    rating_min: float = 1.0
    rating_max: float = 5.0


def hidden(fraction: float, seed: int, *keys: str) -> Column:
    """A seeded, deterministic pick of about `fraction` of the rows (by a hash of their keys)."""
    return (F.abs(F.xxhash64(F.lit(seed), *[F.col(k) for k in keys])) % 1_000_000) < int(fraction * 1_000_000)


def rating_targets(behaviors: DataFrame, pairs: DataFrame | None) -> DataFrame:
    """(user_id, item_id) with an interaction or a request but no observed rating."""
    rated = behaviors.where(F.col("rating").isNotNull()).select("user_id", "item_id").distinct()
    wanted = behaviors.where(F.col("rating").isNull()).select("user_id", "item_id")
    if pairs is not None:
        wanted = wanted.unionByName(pairs.select(F.col("user_id").cast("string"), F.col("item_id").cast("string")))
    return wanted.distinct().join(rated, ["user_id", "item_id"], "left_anti")


def baseline_biases(ratings: DataFrame, epochs: int, reg_user: float, reg_item: float) -> tuple[float, DataFrame]:
    """The global mean and a frame (kind 'user'|'item', key, bias) of regularised biases.

    Each round refits item biases given user biases, then user biases given item biases; one `localCheckpoint` per
    round (the user biases, which the round's item biases feed) cuts the lineage so the plan does not grow with the
    rounds, and the last item biases are checkpointed once for the returned frame. Only the mean (one number)
    reaches the driver.

    Raises:
        InputContractError: `ratings` holds no non-null rating (an implicit-only behaviour log).
    """
    mean = ratings.agg(F.avg("rating")).first()[0]
    if mean is None:
        # avg over no value is null: say why, rather than fail later on float(None).
        raise InputContractError(
            "no observed ratings to fit a rating model on: column 'rating' is null in every row or the frame is "
            "empty (an implicit-only behaviour log of views, clicks, purchases); skip rating completion instead"
        )
    mu = float(mean)
    r = ratings.select("user_id", "item_id", "rating").persist(StorageLevel.MEMORY_AND_DISK)
    user_b = r.select("user_id").distinct().withColumn("b_u", F.lit(0.0))
    item_b = None
    for _ in range(epochs):
        item_b = (
            r.join(user_b, "user_id")
            .groupBy("item_id")
            .agg((F.sum(F.col("rating") - mu - F.col("b_u")) / (reg_item + F.count("*"))).alias("b_i"))
        )
        user_b = (
            r.join(item_b, "item_id")
            .groupBy("user_id")
            .agg((F.sum(F.col("rating") - mu - F.col("b_i")) / (reg_user + F.count("*"))).alias("b_u"))
            .localCheckpoint()
        )
    item_b = r.select("item_id").distinct().withColumn("b_i", F.lit(0.0)) if item_b is None else item_b
    item_b = item_b.localCheckpoint()
    r.unpersist()
    biases = user_b.select(F.lit("user").alias("kind"), F.col("user_id").alias("key"), F.col("b_u").alias("bias"))
    biases = biases.unionByName(
        item_b.select(F.lit("item").alias("kind"), F.col("item_id").alias("key"), F.col("b_i").alias("bias"))
    )
    return mu, biases


def with_baseline(pairs: DataFrame, mu: float, biases: DataFrame) -> DataFrame:
    """Adds `baseline` = mu + b_u + b_i (a missing bias is 0: unknown users and items get mu)."""
    user_b = biases.where("kind = 'user'").select(F.col("key").alias("user_id"), F.col("bias").alias("_bu"))
    item_b = biases.where("kind = 'item'").select(F.col("key").alias("item_id"), F.col("bias").alias("_bi"))
    base = F.lit(mu) + F.coalesce("_bu", F.lit(0.0)) + F.coalesce("_bi", F.lit(0.0))
    return (
        pairs.join(user_b, "user_id", "left")
        .join(item_b, "item_id", "left")
        .withColumn("baseline", base)
        .drop("_bu", "_bi")
    )


def item_neighbors(item_vectors: DataFrame, k: int, block_size: int = BLOCK_SIZE) -> DataFrame:
    """(item_id, neighbor_id, similarity): each item's k most similar items by embedding (blocked, exact)."""
    found = exact_top_k(item_vectors, item_vectors, k, block_size, id_col="item_id")
    return found.select("item_id", "neighbor_id", "similarity")


def _weighted_deviation(contrib: DataFrame, name: str) -> DataFrame:
    """(user_id, item_id, <name>_dev, <name>_n) from rows (user_id, item_id, w, residual)."""
    return contrib.groupBy("user_id", "item_id").agg(
        (F.sum(F.col("w") * F.col("residual")) / F.sum("w")).alias(f"{name}_dev"), F.count("*").alias(f"{name}_n")
    )


def predict_ratings(
    targets: DataFrame,
    ratings: DataFrame,
    user_neighbors: DataFrame,
    item_sims: DataFrame | None,
    cfg: RatingModel,
) -> DataFrame:
    """(user_id, item_id, predicted_rating, confidence, n_support, method) for every target (user_id, item_id)."""
    mu, biases = baseline_biases(ratings, cfg.bias_epochs, cfg.reg_user, cfg.reg_item)
    residuals = (
        with_baseline(ratings.select("user_id", "item_id", "rating"), mu, biases)
        .select("user_id", "item_id", (F.col("rating") - F.col("baseline")).alias("residual"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    targets = targets.select("user_id", "item_id").distinct()
    by_users = (
        targets.join(user_neighbors.where(F.col("similarity") > 0), "user_id")
        .join(residuals.withColumnRenamed("user_id", "neighbor_id"), ["neighbor_id", "item_id"])
        .select("user_id", "item_id", F.col("similarity").alias("w"), "residual")
    )
    parts = targets.join(_weighted_deviation(by_users, "user"), ["user_id", "item_id"], "left")
    item_term = F.lit(0.0)
    n_items = F.lit(0)
    if item_sims is not None and cfg.item_weight > 0:
        sims = item_sims.where(F.col("similarity") > 0).select(
            "item_id", "neighbor_id", F.pow("similarity", cfg.item_similarity_power).alias("w")
        )
        by_items = (
            targets.join(sims, "item_id")
            .join(residuals.withColumnRenamed("item_id", "neighbor_id"), ["user_id", "neighbor_id"])
            .select("user_id", "item_id", "w", "residual")
        )
        parts = parts.join(_weighted_deviation(by_items, "item"), ["user_id", "item_id"], "left")
        n_items = F.coalesce("item_n", F.lit(0))
        item_term = F.coalesce("item_dev", F.lit(0.0)) * n_items / (n_items + cfg.item_shrinkage) * cfg.item_weight
    n_users = F.coalesce("user_n", F.lit(0))
    user_term = F.coalesce("user_dev", F.lit(0.0)) * n_users / (n_users + cfg.user_shrinkage)
    raw = F.col("baseline") + user_term + item_term
    n_support = n_users + n_items
    method = (
        F.when(n_support == 0, "baseline")
        .when(n_items == 0, "baseline+user_neighbors")
        .when(n_users == 0, "baseline+item_embeddings")
        .otherwise("baseline+user_neighbors+item_embeddings")
    )
    return with_baseline(parts, mu, biases).select(
        "user_id",
        "item_id",
        F.least(F.greatest(raw, F.lit(cfg.rating_min)), F.lit(cfg.rating_max)).alias("predicted_rating"),
        (n_support / (n_support + cfg.user_shrinkage)).alias("confidence"),
        n_support.cast("int").alias("n_support"),
        method.alias("method"),
    )
