"""recommend's item-item part (EASE): the Gram matrix from the cluster equals XᵀX, the closed form matches its
definition, and scores come with the history item behind them."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from behaviorlm import cooccurrence, item_model, scoring
from behaviorlm.indexing import id_index
from behaviorlm.schemas import BEHAVIORS
from behaviorlm.scoring import Inputs

# Users who chose a also chose b; c goes with d. u5 has only a, u6 only c.
PAIRS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u4", "c"),
         ("u4", "d"), ("u7", "c"), ("u7", "d"), ("u5", "a"), ("u6", "c")]  # fmt: skip


def test_gram_is_the_co_occurrence_matrix(spark):
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    index = id_index(pairs, "item_id", "ix")
    assert [(r["item_id"], r["ix"]) for r in index.orderBy("ix").collect()] == [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    x = np.zeros((7, 4))
    for user, item in PAIRS:
        x[int(user[1]) - 1, "abcd".index(item)] = 1.0
    found = item_model.gram(item_model.histories(pairs, index), 4)
    np.testing.assert_allclose(found, x.T @ x)


def test_ease_is_ridge_regression_of_each_item_on_the_others():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6)) < 0.4).astype(float)
    b = item_model.ease(x.T @ x, reg=2.0)
    assert np.all(np.diag(b) == 0)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        ridge = np.linalg.solve(x[:, others].T @ x[:, others] + 2.0 * np.eye(5), x[:, others].T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ridge, rtol=1e-4, atol=1e-5)


def test_scores_name_the_history_item_behind_them(spark):
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    rows = item_model.item_scores(pairs, reg=0.5, m=2).where("user_id in ('u5', 'u6')").collect()
    best = {r["user_id"]: (r["item_id"], r["because_item"]) for r in rows if r["items"] == 1.0}
    assert best == {"u5": ("b", "a"), "u6": ("d", "c")}
    # Seen items are never proposed; scores are scaled to the user's best.
    assert not {("u5", "a"), ("u6", "c")} & {(r["user_id"], r["item_id"]) for r in rows}
    assert all(0 < r["items"] <= 1.0 for r in rows)


def test_a_reason_names_a_history_item_missing_from_the_catalogue_by_its_id(spark):
    """Behaviours on items the catalogue lacks are kept (`ingest.unknown_items: keep`): the item model learns from
    them, and its reason named them as "popular" instead (the title join found nothing)."""
    empty = spark.createDataFrame([], "item_id string, title string")
    history = spark.createDataFrame([("u5", "a", "click", None, dt.datetime(2024, 1, 1), None)], BEHAVIORS)
    top = spark.createDataFrame(
        [("u5", "b", "items", 0, 0, None, 0.0, 3, "a")],
        "user_id string, item_id string, source string, voters int, n_neighbors int, top_neighbor string, "
        "content double, pop_users int, because_item string",
    )
    vectors = spark.createDataFrame([], "item_id string, embedding array<float>")
    inp = Inputs(history, empty, vectors, None, None, None)
    assert [r["reason"] for r in scoring.explain(top, inp).collect()] == ["because you chose a"]


def test_no_interactions_score_nothing(spark):
    """A log whose behaviours all weigh 0 leaves no pair: no scores, rather than MLlib failing to size XᵀX."""
    pairs = spark.createDataFrame([], "user_id string, item_id string")
    assert item_model.item_scores(pairs, reg=0.5, m=2).count() == 0


def test_cooccurrence_cosine_keeps_each_items_nearest(spark):
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    counts, both = cooccurrence.cooccurrence(cooccurrence.capped_histories(pairs, 500))
    sims = cooccurrence.similarities(counts, both, neighbors=2)
    got = {(r["item_id"], r["other_id"]): r["similarity"] for r in sims.collect()}
    # a: 4 users, b: 3, c: 4, d: 2; a&b share 3, a&c 1 (u3), b&c 1, c&d 2. a's third neighbour (none: d) is cut.
    expected = {("a", "b"): 3 / 12**0.5, ("a", "c"): 1 / 4, ("b", "a"): 3 / 12**0.5, ("b", "c"): 1 / 12**0.5,
                ("c", "d"): 2 / 8**0.5, ("c", "b"): 1 / 12**0.5, ("d", "c"): 2 / 8**0.5}  # fmt: skip
    assert got.keys() == expected.keys()
    assert all(abs(got[key] - value) < 1e-9 for key, value in expected.items())


def test_local_weights_with_every_item_a_neighbour_are_ease(spark):
    """EASE on neighbourhoods, with every other item in the neighbourhood, is EASE: each column is the same ridge
    regression, here solved per item on the executors from co-occurrence counts."""
    rng = np.random.default_rng(1)
    x = (rng.random((30, 6)) < 0.5).astype(float)
    x[0] = 1.0  # one user with every item: every pair co-occurs
    pairs = spark.createDataFrame(
        [(f"u{u}", f"i{i}") for u, i in zip(*np.nonzero(x))], "user_id string, item_id string"
    )
    found = cooccurrence.local_weights(cooccurrence.capped_histories(pairs, 500), neighbors=5, reg=2.0).collect()
    got = np.zeros((6, 6))
    for r in found:
        got[int(r["item_id"][1:]), int(r["other_id"][1:])] = r["weight"]
    np.testing.assert_allclose(got, item_model.ease(x.T @ x, reg=2.0), rtol=1e-4, atol=1e-6)


def test_a_catalogue_over_the_limit_takes_the_pruned_model_and_says_which_setting(spark, caplog):
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    with caplog.at_level(logging.INFO, logger="behaviorlm.item_model"):
        found = item_model.item_scores(pairs, 0.5, 2, max_items=2, setting="recommend.item_model.max_items")
    rows = {(r["user_id"], r["item_id"]): (round(r["items"], 4), r["because_item"]) for r in found.collect()}
    assert rows[("u5", "b")] == (1.0, "a") and rows[("u6", "d")] == (1.0, "c")
    assert rows[("u5", "c")][1] == "a" and 0 < rows[("u5", "c")][0] < 1.0
    assert "recommend.item_model.max_items=2" in caplog.text
