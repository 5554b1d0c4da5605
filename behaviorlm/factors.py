"""The latent-factor part of rating completion: Spark MLlib ALS (explicit feedback) blended with the neighbour model of
`behaviorlm.ratings`:

    prediction = ours + w x (als - ours), clipped to [rating_min, rating_max]

w in [0, 1] is fitted by least squares on a seeded share (`FactorModel.fit_share`) of the observed ratings, held out
from both models while w is fitted; both are then refitted on every observed rating. The test ratings of a benchmark
never take part. A pair ALS cannot score (its user or item has no observed rating) keeps the neighbour prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import SEED
from behaviorlm.indexing import id_index
from behaviorlm.ratings import PREDICTIONS, RatingModel, hidden, predict_ratings

KEYS = ["user_id", "item_id"]


@dataclass(frozen=True)
class FactorModel:
    """ALS's settings and the share of ratings held out to fit the blend weight."""

    rank: int = 50
    reg: float = 0.1
    iterations: int = 15
    fit_share: float = 0.1
    seed: int = SEED


def als_ratings(evidence: DataFrame, targets: DataFrame, f: FactorModel) -> DataFrame:
    """(user_id, item_id, als): MLlib ALS fitted on `evidence` (user_id, item_id, rating), for the `targets` whose
    user and item it has seen (the others are left out)."""
    rated = evidence.select(*KEYS, F.col("rating").cast("float"))
    users, items = (id_index(rated, c, f"{c}_ix") for c in KEYS)

    def index(df: DataFrame) -> DataFrame:  # a target whose user or item has no rating is left out (inner joins)
        return df.join(users, "user_id").join(items, "item_id")

    # ALS ships its input's lineage with every task of every iteration: cut it first (as backtest's ALS does).
    train = index(rated).localCheckpoint()
    model = ALS(rank=f.rank, regParam=f.reg, maxIter=f.iterations, userCol="user_id_ix", itemCol="item_id_ix",
                ratingCol="rating", seed=f.seed, coldStartStrategy="drop").fit(train)  # fmt: skip
    scored = model.transform(index(targets.select(*KEYS)))
    return scored.select(*KEYS, F.col("prediction").cast("double").alias("als"))


def blend_weight(ours: DataFrame, als: DataFrame, truth: DataFrame) -> float:
    """The least-squares w in [0, 1] of ours + w x (als - ours) against `truth`'s ratings (0 without overlap)."""
    rows = ours.join(als, KEYS).join(truth.select(*KEYS, "rating"), KEYS)
    gap, miss = F.col("als") - F.col("predicted_rating"), F.col("rating") - F.col("predicted_rating")
    row = rows.agg(F.sum(miss * gap).alias("xy"), F.sum(gap * gap).alias("xx")).first()
    return min(max(row["xy"] / row["xx"], 0.0), 1.0) if row["xx"] else 0.0


def blended_ratings(
    targets: DataFrame, ratings: DataFrame, user_neighbors: DataFrame, item_sims: DataFrame | None,
    cfg: RatingModel, f: FactorModel | None,
) -> tuple[DataFrame, float]:  # fmt: skip
    """`predict_ratings`' output with ALS blended in (method gains "+als" where it took part), and the weight w;
    without `f`, the neighbour model alone and w = 0. No target, nothing to fit: no rows and w = 0 (every behaviour of
    a fully rated log such as MovieLens already has its rating)."""
    if targets.isEmpty():
        return targets.sparkSession.createDataFrame([], PREDICTIONS), 0.0
    ours = predict_ratings(targets, ratings, user_neighbors, item_sims, cfg)
    if f is None:
        return ours, 0.0
    held = ratings.where(hidden(f.fit_share, f.seed, *KEYS))
    fit = ratings.join(held.select(*KEYS), KEYS, "left_anti")
    if held.isEmpty() or fit.isEmpty():  # too few ratings to fit w (or ALS) on: the neighbour model alone
        return ours, 0.0
    held_ours = predict_ratings(held.select(*KEYS), fit, user_neighbors, item_sims, cfg)
    w = blend_weight(held_ours, als_ratings(fit, held, f), held)
    if w == 0.0:
        return ours, 0.0
    blended = F.col("predicted_rating") + F.lit(w) * (F.col("als") - F.col("predicted_rating"))
    clipped = F.least(F.greatest(blended, F.lit(cfg.rating_min)), F.lit(cfg.rating_max))
    took_part = F.col("als").isNotNull()
    out = (
        ours.join(als_ratings(ratings, targets, f), KEYS, "left")
        .withColumn("predicted_rating", F.when(took_part, clipped).otherwise(F.col("predicted_rating")))
        .withColumn("method", F.when(took_part, F.concat("method", F.lit("+als"))).otherwise(F.col("method")))
    )
    return out.drop("als"), w
