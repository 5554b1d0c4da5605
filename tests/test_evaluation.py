"""Evaluation library: metrics by hand and against Microsoft Recommenders' numbers; splitters; the evaluate job."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from behaviorlm.metrics import (
    catalog_coverage,
    chronological_split,
    leave_last_out,
    rank_by_score,
    ranking_metrics,
    rating_errors,
    stratified_split,
)
from jobs import embed_items, evaluate, ingest
from tests.util import job_args, read

# Microsoft Recommenders' evaluation test fixture (tests/unit/recommenders/evaluation/conftest.py): the same toy
# truth and predictions, for which its python_evaluation gives the numbers asserted below.
TRUE_USERS = [1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1]
TRUE_ITEMS = [3, 1, 4, 5, 6, 7, 2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 1, 2]
TRUE_RATINGS = [3, 5, 5, 3, 3, 1, 5, 5, 5, 4, 4, 3, 3, 3, 2, 1, 5, 4]
PRED_ITEMS = [12, 10, 3, 5, 11, 13, 4, 10, 7, 13, 1, 3, 5, 2, 11, 14, 3, 10]
PRED_SCORES = [12, 14, 13, 12, 11, 10, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 14, 13]
SCHEMA = "user_id string, item_id string, rating double, prediction double"


@pytest.fixture
def toy(spark):
    truth = spark.createDataFrame(
        [(str(u), str(i), float(r), float(r)) for u, i, r in zip(TRUE_USERS, TRUE_ITEMS, TRUE_RATINGS)], SCHEMA
    )
    pred = spark.createDataFrame(
        [(str(u), str(i), float(r), float(p)) for u, i, r, p in zip(TRUE_USERS, PRED_ITEMS, TRUE_RATINGS, PRED_SCORES)],
        SCHEMA,
    )
    return truth, pred


def test_ranking_metrics_match_microsoft_recommenders(toy):
    truth, pred = toy
    got = ranking_metrics(rank_by_score(pred, "prediction"), truth, 10)
    assert got["precision_at_k"] == pytest.approx(0.26666, abs=1e-5)
    assert got["recall_at_k"] == pytest.approx(0.37777, abs=1e-5)
    assert got["ndcg_at_k"] == pytest.approx(0.38172, abs=1e-5)
    assert got["map"] == pytest.approx(0.23613, abs=1e-5)
    assert got["map_at_k"] == pytest.approx(0.23613, abs=1e-5)
    perfect = ranking_metrics(rank_by_score(truth, "rating"), truth, 10)
    assert perfect["ndcg_at_k"] == pytest.approx(1.0) and perfect["map"] == pytest.approx(1.0)
    assert perfect["precision_at_k"] == pytest.approx(0.6) and perfect["recall_at_k"] == pytest.approx(1.0)
    nohit = ranking_metrics(rank_by_score(pred.withColumn("item_id", F.lit("100")), "prediction"), truth, 10)
    assert all(v == 0.0 for k, v in nohit.items() if k != "users")


def test_rating_errors_and_coverage_match_microsoft_recommenders(spark, toy):
    truth, pred = toy
    # Errors over the 8 (user, item) pairs both frames hold, as their rmse/mae do.
    errors = rating_errors(pred, truth)
    assert errors["pairs"] == 8
    assert errors["rmse"] == pytest.approx(7.254309, abs=1e-5) and errors["mae"] == pytest.approx(6.375)
    assert rating_errors(truth, truth)["rmse"] == 0.0
    # Their diversity fixture: 4 of the 5 training items are recommended.
    train = spark.createDataFrame(
        [(1, 1), (1, 2), (1, 4), (2, 3), (2, 4), (3, 3), (3, 4), (3, 5)], "u int, item_id int"
    )
    reco = spark.createDataFrame([(1, 3), (1, 5), (2, 2), (2, 5), (3, 1), (3, 2)], "u int, item_id int")
    assert catalog_coverage(reco, train) == pytest.approx(0.8)


def test_ranking_metrics_by_hand(spark):
    recs = spark.createDataFrame(
        [("u", "a", 1), ("u", "b", 2), ("u", "c", 3)], "user_id string, item_id string, rank int"
    )
    truth = spark.createDataFrame([("u", "b"), ("u", "d")], "user_id string, item_id string")
    got = ranking_metrics(recs, truth, 3)
    dcg, idcg = 1 / math.log2(3), 1 + 1 / math.log2(3)
    assert got["precision_at_k"] == pytest.approx(1 / 3) and got["recall_at_k"] == pytest.approx(0.5)
    assert got["ndcg_at_k"] == pytest.approx(dcg / idcg)
    assert got["map"] == pytest.approx((1 / 2) / 2) and got["hit_rate"] == 1.0
    # Only the top k count: at k=1 the miss at rank 1 is all there is.
    assert ranking_metrics(recs, truth, 1)["precision_at_k"] == 0.0


def test_splitters(spark):
    t0 = dt.datetime(2024, 1, 1)
    rows = [(f"u{u}", f"i{i}", t0 + dt.timedelta(hours=i)) for u in range(20) for i in range(u % 7 + 2)]
    df = spark.createDataFrame(rows, "user_id string, item_id string, ts timestamp")
    train, test = stratified_split(df, 0.75, seed=42)
    assert train.count() + test.count() == df.count()
    assert train.join(test, ["user_id", "item_id"]).count() == 0
    for r in (
        train.groupBy("user_id")
        .count()
        .join(df.groupBy("user_id").count().withColumnRenamed("count", "n"), "user_id")
        .collect()
    ):
        assert r["count"] == math.floor(r["n"] * 0.75 + 0.5)  # Spark rounds half up
    again, _ = stratified_split(df, 0.75, seed=42)
    other, _ = stratified_split(df, 0.75, seed=7)
    key = sorted((r["user_id"], r["item_id"]) for r in train.collect())
    assert key == sorted((r["user_id"], r["item_id"]) for r in again.collect())
    assert key != sorted((r["user_id"], r["item_id"]) for r in other.collect())
    early, late = chronological_split(df, 0.5)
    bounds = (
        early.groupBy("user_id")
        .agg(F.max("ts").alias("a"))
        .join(late.groupBy("user_id").agg(F.min("ts").alias("b")), "user_id")
    )
    assert bounds.where("a >= b").count() == 0
    rest, last = leave_last_out(df)
    assert last.count() == 20 and rest.count() == df.count() - 20
    assert last.join(df.groupBy("user_id").agg(F.max("ts").alias("ts")), ["user_id", "ts"]).count() == 20


@pytest.mark.slow
def test_evaluate_job_backtests_without_touching_the_real_tables(spark, make_config):
    cfg = make_config()
    synthetic = ["ingest.source=synthetic", "ingest.synthetic.users=150", "ingest.synthetic.items=60",
                 "ingest.synthetic.events=3000", "ingest.synthetic.clusters=4"]  # fmt: skip
    ingest.main(job_args(cfg, *synthetic))
    embed_items.main(job_args(cfg))
    before = read(spark, cfg, "behaviors").count()
    grid = "evaluate.grid={similarity_power: [1.0, 4.0], content: [0.0, 0.1], popularity: [0.1]}"
    metrics = evaluate.main(job_args(cfg, "neighbors.k=20", grid, "evaluate.als.iterations=5"))
    for model in ("behaviorlm", "popularity", "als"):
        for name in ("ndcg_at_k", "precision_at_k", "recall_at_k", "map", "hit_rate", "coverage"):
            assert 0.0 <= metrics[f"{model}.{name}"] <= 1.0
    # Planted taste clusters: neighbours must beat popularity.
    assert metrics["behaviorlm.ndcg_at_k"] > metrics["popularity.ndcg_at_k"]
    assert metrics["tuned.similarity_power"] in (1.0, 4.0)
    assert read(spark, cfg, "behaviors").count() == before
    stored = read(spark, cfg, "run_metrics").where("stage = 'evaluate'").count()
    assert stored == len(metrics)
