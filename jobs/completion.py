"""Completion library: predict missing ratings and missing item attributes from observed data and embeddings.

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
Attributes: the k items most similar to an item (by the embedding of its text *without* the attribute) that have
the attribute vote for their values with weight max(cosine, 0) ** power; a value's confidence is its vote share.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.config import CompleteConfig
from jobs.similar_users import exact_neighbors


def baseline_biases(ratings: DataFrame, epochs: int, reg_user: float, reg_item: float) -> tuple[float, DataFrame]:
    """The global mean and a frame (kind 'user'|'item', key, bias) of regularised biases.

    Each round refits item biases given user biases, then user biases given item biases; `localCheckpoint` cuts
    the lineage so the plan does not grow with the rounds. Only the mean (one number) reaches the driver.
    """
    mu = float(ratings.agg(F.avg("rating")).first()[0])
    r = ratings.select("user_id", "item_id", "rating").persist(StorageLevel.MEMORY_AND_DISK)
    user_b = r.select("user_id").distinct().withColumn("b_u", F.lit(0.0))
    item_b = None
    for _ in range(epochs):
        item_b = (
            r.join(user_b, "user_id")
            .groupBy("item_id")
            .agg((F.sum(F.col("rating") - mu - F.col("b_u")) / (reg_item + F.count("*"))).alias("b_i"))
            .localCheckpoint()
        )
        user_b = (
            r.join(item_b, "item_id")
            .groupBy("user_id")
            .agg((F.sum(F.col("rating") - mu - F.col("b_i")) / (reg_user + F.count("*"))).alias("b_u"))
            .localCheckpoint()
        )
    if item_b is None:
        item_b = r.select("item_id").distinct().withColumn("b_i", F.lit(0.0))
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


def item_neighbors(item_vectors: DataFrame, k: int, block_size: int) -> DataFrame:
    """(item_id, neighbor_id, similarity): each item's k most similar items by embedding (blocked, exact)."""
    vecs = item_vectors.select(F.col("item_id").alias("user_id"), "embedding")
    n = vecs.count()
    found = exact_neighbors(vecs, vecs, k, block_size, n)
    return found.select(F.col("user_id").alias("item_id"), "neighbor_id", "similarity")


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
    cfg: CompleteConfig,
    scale: tuple[float, float],
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
        F.least(F.greatest(raw, F.lit(scale[0])), F.lit(scale[1])).alias("predicted_rating"),
        (n_support / (n_support + cfg.user_shrinkage)).alias("confidence"),
        n_support.cast("int").alias("n_support"),
        method.alias("method"),
    )


def predict_labels(
    known: DataFrame,
    unknown_vectors: DataFrame,
    known_vectors: DataFrame,
    k: int,
    threshold: float,
    block: int,
    power: float = 4.0,
) -> DataFrame:
    """(item_id, value, confidence, n_support) for items in `unknown_vectors` from the labels (item_id, value) of
    their k nearest items in `known_vectors`. A value is kept when its share of the similarity mass reaches
    `threshold`; an item whose values all fall short keeps its single best value (every item gets one)."""
    n = known_vectors.count()
    found = exact_neighbors(
        unknown_vectors.select(F.col("item_id").alias("user_id"), "embedding"),
        known_vectors.select(F.col("item_id").alias("user_id"), "embedding"),
        k,
        block,
        n,
        exclude_self=False,
    )
    # Votes weigh max(cosine, 0) ** power: close items count far more than merely near ones; the tiny floor keeps
    # a vote when all k nearest have negative cosines (in a centred space they still are the nearest).
    votes = found.select(
        F.col("user_id").alias("item_id"),
        F.col("neighbor_id").alias("_from"),
        (F.pow(F.greatest(F.col("similarity"), F.lit(0.0)), F.lit(power)) + 1e-9).alias("similarity"),
    )
    mass = votes.groupBy("item_id").agg(F.sum("similarity").alias("_mass"))
    labelled = votes.join(known.withColumnRenamed("item_id", "_from"), "_from")
    scored = (
        labelled.groupBy("item_id", "value")
        .agg(F.sum("similarity").alias("_votes"), F.count("*").alias("n_support"))
        .join(mass, "item_id")
        .withColumn("confidence", F.col("_votes") / F.col("_mass"))
    )
    best = Window.partitionBy("item_id").orderBy(F.col("confidence").desc(), F.col("value"))
    return (
        scored.withColumn("_rank", F.row_number().over(best))
        .where((F.col("confidence") >= threshold) | (F.col("_rank") == 1))
        .select("item_id", "value", "confidence", F.col("n_support").cast("int"))
    )


def label_f1(predicted: DataFrame, truth: DataFrame) -> float:
    """Micro-F1 over (item_id, value) pairs."""
    tp = predicted.join(truth, ["item_id", "value"]).count()
    n_pred, n_true = predicted.count(), truth.count()
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
