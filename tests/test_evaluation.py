"""Evaluation library: metrics by hand and against Microsoft Recommenders' numbers; splitters; the evaluate job."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.backtest import als_recommendations, grid_ndcg
from behaviorlm.metrics import (
    catalog_coverage,
    chronological_split,
    leave_last_out,
    rank_by_score,
    ranking_metrics,
    rating_errors,
    stratified_split,
)
from behaviorlm.schemas import BEHAVIORS
from behaviorlm.scoring import blend
from jobs import embed_items, evaluate, ingest
from tests.util import job_args, read, write

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
    # An item recommended but missing from the catalogue (ingest's unknown_items: keep) is not coverage: at most 1.
    unknown = reco.union(spark.createDataFrame([(1, 6), (2, 7)], "u int, item_id int"))
    assert catalog_coverage(unknown, train) == pytest.approx(0.8)


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


def test_one_pass_grid_equals_blending_each_combination_alone(spark):
    # Drawn so that the eight combinations give six different nDCGs and eleven score ties at the top-k boundary
    # (broken by item id); w has no target among its candidates (a miss, still counted).
    rows = [("u", "a", 0.5, 0.0, 0.0, 1.0), ("u", "b", 0.0, 1.0, 1.0, 0.5), ("u", "c", 0.0, 1.0, 0.0, 0.0),
            ("u", "d", 0.5, 0.5, 1.0, 1.0), ("v", "a", 1.0, 0.5, 1.0, 0.0), ("v", "c", 1.0, 0.5, 0.0, 0.5),
            ("v", "d", 1.0, 0.5, 1.0, 0.5), ("w", "a", 0.5, 1.0, 0.5, 0.5)]  # fmt: skip
    cands = spark.createDataFrame(
        rows, "user_id string, item_id string, neighbors double, content double, popularity double, items double"
    )
    truth = spark.createDataFrame([("u", "b"), ("u", "c"), ("v", "c"), ("w", "z")], "user_id string, item_id string")
    combos = [{"neighbors": 1.0, "content": c, "popularity": p, "items": i}
              for c in (0.0, 2.0) for p in (0.0, 4.0) for i in (0.0, 1.0)]  # fmt: skip
    one_pass = grid_ndcg(cands, truth, combos, 2)
    alone = [ranking_metrics(blend(cands, w, 2), truth, 2)["ndcg_at_k"] for w in combos]
    assert one_pass == pytest.approx(alone, abs=1e-12)
    assert len(set(alone)) == 6  # the combinations rank differently: the check is not vacuous


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
        # Microsoft Recommenders' rule (pair position / pairs <= ratio) keeps floor(n x 0.75) for train; the old
        # rounding half up (n=2 -> 2, n=6 -> 5) left some users no test pair at all.
        assert r["count"] == math.floor(r["n"] * 0.75)
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


def _pairs(df):
    return {(r["user_id"], r["item_id"]) for r in df.select("user_id", "item_id").distinct().collect()}


def test_splits_keep_every_event_of_a_pair_on_one_side(spark):
    t0 = dt.datetime(2024, 1, 1)
    # Each user meets items a, b, c, d in turn and comes back to `a` twice more, in between and at the very end:
    # split by row, a's early event would train and its last one test (an already seen item, never a hit).
    rows = []
    for u in range(12):
        visits = ["a", "b", "a", "c", "d", "a"]
        rows += [(f"u{u}", item, t0 + dt.timedelta(hours=h)) for h, item in enumerate(visits)]
    df = spark.createDataFrame(rows, "user_id string, item_id string, ts timestamp")
    splits = [stratified_split(df, 0.75, seed=s) for s in (1, 2, 42)] + [chronological_split(df, 0.5)]
    for train, test in [*splits, leave_last_out(df)]:
        assert train.count() + test.count() == df.count()
        assert not _pairs(train) & _pairs(test)
        assert train.where("item_id = 'a'").groupBy("user_id").count().where("count != 3").count() == 0
    # Chronological: a pair's first event places it; 4 pairs at 0.5 -> a, b train; c, d test.
    train, test = chronological_split(df, 0.5)
    assert {i for _, i in _pairs(train)} == {"a", "b"} and {i for _, i in _pairs(test)} == {"c", "d"}
    assert train.where("item_id = 'a'").count() == 36


def test_a_user_with_two_pairs_keeps_one_for_test(spark):
    t0, t1, t2 = (dt.datetime(2024, 1, 1, h) for h in range(3))
    rows = [("t", "x", t0), ("t", "y", t1), ("u", "x", t0), ("u", "x", t1), ("u", "y", t2), ("v", "x", t0),
            ("w", "x", t0), ("w", "y", t0), ("w", "z", t0), ("w", "q", t0)]  # fmt: skip
    df = spark.createDataFrame(rows, "user_id string, item_id string, ts timestamp")
    for train, test in (stratified_split(df, 0.75, seed=42), chronological_split(df, 0.75)):
        per_user = {u: (len({i for v, i in _pairs(train) if v == u}), len({i for v, i in _pairs(test) if v == u}))
                    for u in ("t", "u", "v", "w")}  # fmt: skip
        # 2 pairs at 0.75 (t; u, whose x has two events): 1 train + 1 test, where rounding 1.5 half up kept both in
        # train; 4 pairs: 3 + 1; a single pair goes to test, as in Recommenders (1 / 1 > 0.75).
        assert per_user == {"t": (1, 1), "u": (1, 1), "v": (0, 1), "w": (3, 1)}
    _, test = chronological_split(df, 0.75)
    assert {i for v, i in _pairs(test) if v == "u"} == {"y"}


def test_evaluate_with_one_item_per_user_is_skipped_with_a_reason(spark, make_config, capsys):
    # Every single pair goes to test: nothing to train on (MLlib's ALS used to fail on the empty train side).
    t0 = dt.datetime(2024, 1, 1)
    cfg = make_config()
    write(spark, cfg, "behaviors", [(u, "x", "click", None, t0, None) for u in "abcde"], BEHAVIORS)
    assert evaluate.main(job_args(cfg)) == {"skipped_too_few_pairs": 1.0}
    assert "leaves train without any (user, item) pair" in capsys.readouterr().err
    stored = read(spark, cfg, "run_metrics").where(f"stage = 'evaluate' and run_id = '{cfg.run_id}'")
    assert [(r["metric"], r["value"]) for r in stored.collect()] == [("skipped_too_few_pairs", 1.0)]


def _version(spark, cfg, name: str) -> int:
    return DeltaTable.forPath(spark, delta.table_ref(cfg.tables, name).location).history(1).first()["version"]


@pytest.mark.slow
def test_evaluate_job_backtests_without_touching_the_real_tables(spark, make_config):
    cfg = make_config()
    synthetic = ["ingest.source=synthetic", "ingest.synthetic.users=150", "ingest.synthetic.items=60",
                 "ingest.synthetic.events=3000", "ingest.synthetic.clusters=4"]  # fmt: skip
    ingest.main(job_args(cfg, *synthetic))
    embed_items.main(job_args(cfg))
    # The real neighbours table of some earlier run: evaluate rebuilds its own, elsewhere.
    real = [("u1", "u2", 1, 0.5, "earlier")]
    write(
        spark,
        cfg,
        "user_neighbors",
        real,
        "user_id string, neighbor_id string, rank int, similarity float, run_id string",
    )
    versions = {t: _version(spark, cfg, t) for t in ("behaviors", "items", "item_embeddings", "user_neighbors")}
    grid = "evaluate.grid={similarity_power: [1.0, 4.0], content: [0.0, 0.1], popularity: [0.1]}"
    metrics = evaluate.main(job_args(cfg, "neighbors.k=20", grid, "evaluate.als.iterations=5"))
    for model in ("behaviorlm", "popularity", "als"):
        for name in ("ndcg_at_k", "precision_at_k", "recall_at_k", "map", "hit_rate", "coverage"):
            assert 0.0 <= metrics[f"{model}.{name}"] <= 1.0
    # Planted taste clusters: neighbours must beat popularity.
    assert metrics["behaviorlm.ndcg_at_k"] > metrics["popularity.ndcg_at_k"]
    assert metrics["tuned.similarity_power"] in (1.0, 4.0)
    stored = read(spark, cfg, "run_metrics").where(f"stage = 'evaluate' and run_id = '{cfg.run_id}'").count()
    assert stored == len(metrics)
    # A second run id (with characters a folder name cannot hold) gets its own folder; the first run's stays as
    # it was, and the real tables were never written by either.
    root = Path(cfg.tables.root) / "_evaluate"
    first = {p: p.stat().st_mtime_ns for p in (root / "test-run").rglob("*") if p.is_file()}
    other = make_config(run_id="run:2/b")
    evaluate.main(job_args(other, "neighbors.k=20", "evaluate.tune=false", "evaluate.baselines=[popularity]"))
    # `_checkpoints` (ALS's, when this session had no checkpoint folder yet) is shared scratch, not a run's.
    assert sorted(p.name for p in root.iterdir() if p.name != "_checkpoints") == ["run_2_b", "test-run"]
    assert sorted(p.name for p in (root / "test-run").iterdir()) == ["test", "validation"]
    assert sorted(p.name for p in (root / "run_2_b").iterdir()) == ["test"]
    assert {p: p.stat().st_mtime_ns for p in (root / "test-run").rglob("*") if p.is_file()} == first
    assert {t: _version(spark, cfg, t) for t in versions} == versions
    assert [tuple(r) for r in read(spark, cfg, "user_neighbors").collect()] == real
    assert not delta.table_exists(spark, delta.table_ref(cfg.tables, "user_embeddings"))


def test_timestamp_ties_are_broken_by_a_seeded_hash_not_the_item_id(spark):
    # 40 users rate items "a" and "b" in the same second: which one is "last" must not always be "b" (the larger id).
    rows = [(f"u{u}", item, "rating", 4.0, dt.datetime(2024, 1, 1)) for u in range(40) for item in ("a", "b")]
    df = spark.createDataFrame(rows, "user_id string, item_id string, event_type string, rating double, ts timestamp")
    lasts = {s: sorted(r["item_id"] for r in leave_last_out(df, seed=s)[1].collect()) for s in (1, 42)}
    assert 5 < lasts[42].count("b") < 35
    assert lasts[1] != lasts[42]  # the seed decides, so runs with one seed agree and seeds differ


def test_als_leaves_k_unseen_items_to_light_and_heavy_users_alike(spark):
    """ALS's lists are sized per group of users by seen count (k + the next power of two), not all by the heaviest
    user's: each user still gets k items, none of them seen, ranked 1..k."""
    seen = {"light": 1, "mid": 3, "heavy": 9, "other": 2}
    pairs = [(u, f"i{(n * 7 + j) % 20:02d}") for n, (u, many) in enumerate(seen.items()) for j in range(many)]
    pairs += [("everything", f"i{j:02d}") for j in range(20)]  # 20 items known; this user has nothing left unseen
    train = spark.createDataFrame(pairs, "user_id string, item_id string")
    recs = als_recommendations(train, 5, rank=4, iterations=3).collect()
    for user in seen:
        mine = sorted((r["rank"], r["item_id"]) for r in recs if r["user_id"] == user)
        assert [rank for rank, _ in mine] == [1, 2, 3, 4, 5]
        assert not {item for _, item in mine} & {i for u, i in pairs if u == user}
