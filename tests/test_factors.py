"""complete's latent-factor part: the least-squares blend weight, and ALS catching what biases cannot."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from behaviorlm.factors import FactorModel, blend_weight, blended_ratings
from behaviorlm.ratings import RatingModel

PAIRS = "user_id string, item_id string"


def test_blend_weight_is_the_least_squares_share_within_0_and_1(spark):
    users = ["u1", "u2", "u3"]
    ours = spark.createDataFrame([(u, "i", 3.0) for u in users], f"{PAIRS}, predicted_rating double")
    als = spark.createDataFrame([(u, "i", 4.0) for u in users], f"{PAIRS}, als double")
    truth = spark.createDataFrame([(u, "i", r) for u, r in zip(users, [3.5, 3.0, 4.0])], f"{PAIRS}, rating double")
    # (0.5 x 1 + 0 x 1 + 1 x 1) / (1 + 1 + 1)
    assert blend_weight(ours, als, truth) == pytest.approx(0.5)
    assert blend_weight(ours, als, truth.withColumn("rating", F.lit(2.0))) == 0.0  # ALS only moves away: none of it


def test_als_learns_the_taste_groups_biases_cannot(spark):
    # Users 0-9 rate items 0-9 high and 10-19 low, users 10-19 the other way round: every user and item has the same
    # mean, so the bias baseline predicts about 3 everywhere; two factors fit it.
    def rating(u: int, i: int) -> float:
        return 5.0 if (u < 10) == (i < 10) else 1.0

    asked = {(0, 1), (0, 15), (12, 3), (12, 18)}
    rows = [(f"u{u}", f"i{i}", rating(u, i)) for u in range(20) for i in range(20) if (u, i) not in asked]
    ratings = spark.createDataFrame(rows, f"{PAIRS}, rating double")
    targets = spark.createDataFrame([(f"u{u}", f"i{i}") for u, i in sorted(asked)], PAIRS)
    no_neighbours = spark.createDataFrame([], "user_id string, neighbor_id string, similarity double")
    got, w = blended_ratings(targets, ratings, no_neighbours, None, RatingModel(),
                             FactorModel(rank=4, reg=0.05, iterations=10, fit_share=0.2))  # fmt: skip
    assert w > 0.5
    found = {(r["user_id"], r["item_id"]): r for r in got.collect()}
    assert len(found) == len(asked) and all(r["method"] == "baseline+als" for r in found.values())
    for u, i in asked:
        predicted = found[(f"u{u}", f"i{i}")]["predicted_rating"]
        assert abs(predicted - rating(u, i)) < 1.5 and 1.0 <= predicted <= 5.0


def test_too_few_ratings_leave_the_neighbour_model_alone(spark):
    ratings = spark.createDataFrame([("u1", "i1", 4.0), ("u2", "i1", 2.0)], f"{PAIRS}, rating double")
    targets = spark.createDataFrame([("u1", "i2")], PAIRS)
    no_neighbours = spark.createDataFrame([], "user_id string, neighbor_id string, similarity double")
    got, w = blended_ratings(targets, ratings, no_neighbours, None, RatingModel(), FactorModel(fit_share=0.1))
    assert w == 0.0 and [r["method"] for r in got.collect()] == ["baseline"]


def test_no_target_fits_nothing_and_writes_no_rows(spark):
    """A fully rated log (MovieLens) has no rating to fill: no model is fitted, the same columns come back empty."""
    ratings = spark.createDataFrame([("u1", "i1", 4.0), ("u2", "i1", 2.0)], f"{PAIRS}, rating double")
    targets = spark.createDataFrame([], PAIRS)
    no_neighbours = spark.createDataFrame([], "user_id string, neighbor_id string, similarity double")
    got, w = blended_ratings(targets, ratings, no_neighbours, None, RatingModel(), FactorModel())
    some, _ = blended_ratings(spark.createDataFrame([("u1", "i2")], PAIRS), ratings, no_neighbours, None,
                              RatingModel(), None)  # fmt: skip
    assert w == 0.0 and got.count() == 0 and got.dtypes == some.dtypes
