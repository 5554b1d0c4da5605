"""Cold start: the thin-history blend, the cold-start slices and the item cold-start metric, on small inline data."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

from behaviorlm.coldstart import first_behaviors, item_cold_metrics, pick, without_items
from behaviorlm.scoring import Thin, blend
from jobs import params

T0 = dt.datetime(2024, 1, 1)
ROWS = "user_id string, item_id string, ts timestamp"
# u1 has seen one item, u2 five: both get the same two candidates, one backed by the item part, one by content.
CANDS = [(u, i, n, c, it) for u, n in (("u1", 1), ("u2", 5)) for i, c, it in (("a", 0.0, 1.0), ("b", 0.9, 0.0))]
CANDS_SCHEMA = "user_id string, item_id string, n_seen long, content double, items double"


def cands(spark):
    frame = spark.createDataFrame(CANDS, CANDS_SCHEMA)
    return frame.withColumn("neighbors", F.lit(0.0)).withColumn("popularity", F.lit(0.0))


def test_thin_histories_get_their_own_blend(spark):
    usual, thin = {"items": 1.0, "content": 0.2}, Thin(2, {"items": 0.5, "content": 1.0})
    top = blend(cands(spark), usual, 1, thin=thin).select("user_id", "item_id", "source")
    expected = spark.createDataFrame(
        [("u1", "b", "content"), ("u2", "a", "items")], "user_id string, item_id string, source string"
    )
    assert_df_equality(top, expected, ignore_row_order=True, ignore_nullable=True)
    # Off (max_history 0) or absent: one blend for everyone.
    for off in (None, Thin(0, thin.weights)):
        assert {r["item_id"] for r in blend(cands(spark), usual, 1, thin=off).collect()} == {"a"}


def test_thin_blend_is_configured_and_zero_turns_it_off(make_config):
    assert params.thin(make_config()).max_history == 3
    custom = make_config("recommend.thin={max_history: 5, weights: {content: 1.0}}")
    assert params.thin(custom) == Thin(5, {"content": 1.0})
    assert params.thin(make_config("recommend.thin.max_history=0")) is None


def test_first_behaviors_keep_a_new_users_first_pairs_in_time_and_score_the_later_ones(spark):
    train = spark.createDataFrame([("u1", f"i{n}", T0 + dt.timedelta(days=5 - n)) for n in range(5)]
                                  + [("u2", "i0", T0), ("u2", "i1", T0)], ROWS)  # fmt: skip
    test = spark.createDataFrame([("u1", "i9", T0), ("u1", "i8", T0 + dt.timedelta(days=9)), ("u2", "i8", T0)], ROWS)
    users = spark.createDataFrame([("u1",)], "user_id string")
    kept, truth = first_behaviors(train, test, users, 2)
    # u1's first two in time are its test pair i9 and then i4: i9 is part of the cut, never a target (a new user's
    # past is not a prediction); its later pairs, training or test, are what it is scored on; u2 is untouched.
    got = {(r["user_id"], r["item_id"]) for r in kept.collect()}
    assert got == {("u1", "i9"), ("u1", "i4"), ("u2", "i0"), ("u2", "i1")}
    assert {(r["user_id"], r["item_id"]) for r in truth.collect()} == {("u1", f"i{n}") for n in (0, 1, 2, 3, 8)}


def test_picked_slices_are_seeded_and_disjoint(spark):
    ids = spark.createDataFrame([(f"u{n}",) for n in range(400)], "user_id string")
    first = {r[0] for r in pick(ids, "user_id", 0.0, 0.1).collect()}
    second = {r[0] for r in pick(ids, "user_id", 0.1, 0.2).collect()}
    assert 20 <= len(first) <= 60 and 20 <= len(second) <= 60 and not first & second
    assert first == {r[0] for r in pick(ids, "user_id", 0.0, 0.1).collect()}


def test_cold_items_are_ranked_by_content_only_and_zero_without_it(spark):
    train = spark.createDataFrame([("u1", "a", T0), ("u1", "b", T0)], ROWS)
    test = spark.createDataFrame([("u1", "c", T0), ("u1", "d", T0)], ROWS)
    cold = spark.createDataFrame([("b",), ("c",)], "item_id string")
    kept, truth = without_items(train, test, cold)
    assert [r["item_id"] for r in kept.collect()] == ["a"]
    assert [(r["user_id"], r["item_id"]) for r in truth.collect()] == [("u1", "c")]
    # Content likes c; the item part likes d (not cold) and says nothing of c.
    scored = spark.createDataFrame([("u1", "c", 1, 0.7, 0.0), ("u1", "d", 1, 0.1, 1.0)], CANDS_SCHEMA)
    scored = scored.withColumn("neighbors", F.lit(0.0)).withColumn("popularity", F.lit(0.0))
    with_content = item_cold_metrics(scored, cold, truth, {"items": 1.0, "content": 0.2}, 10)
    assert with_content["ndcg_at_k"] == 1.0 and with_content["recall_at_k"] == 1.0
    assert item_cold_metrics(scored, cold, truth, {"items": 1.0, "content": 0.0}, 10)["ndcg_at_k"] == 0.0
