"""The `onboarding` part on a hand-made catalogue: users who start with one kind of item go on to one item, users who
start with another kind to another; the item vectors of those two items cannot tell them apart, so only the learned
map from a start to what came next can."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest
from pyspark.sql import functions as F

from behaviorlm.onboarding import Onboarding, _gram, fit, id_vectors, onboarding_top, pair_scores, settle, start_vectors
from behaviorlm.schemas import BEHAVIORS
from behaviorlm.scoring import Inputs, Strength, Thin, recommend
from jobs import params

T0 = dt.datetime(2024, 1, 1)
VECTORS = "item_id string, embedding array<float>"
# a* point one way, b* another; x and y (what users went on to choose) point the same way, away from both.
ITEM_VECTORS = {"a1": [1.0, 0.0, 0.0], "a2": [0.9, 0.1, 0.0], "a3": [0.95, 0.0, 0.05], "b1": [0.0, 1.0, 0.0],
                "b2": [0.1, 0.9, 0.0], "b3": [0.0, 0.95, 0.05], "x": [0.0, 0.0, 1.0], "y": [0.0, 0.0, 1.0]}  # fmt: skip
# w1-w4 start with a1-a3 and then choose x, w5-w8 start with b1-b3 and then choose y; c1 and c2 are new.
HISTORIES = {**{f"w{n}": ["a1", "a2", "a3", "x"] for n in range(1, 5)},
             **{f"w{n}": ["b1", "b2", "b3", "y"] for n in range(5, 9)}, "c1": ["a2"], "c2": ["b3", "b1"]}  # fmt: skip


def behaviors(spark):
    rows = [
        (u, i, "click", None, T0 + dt.timedelta(days=n), None) for u, h in HISTORIES.items() for n, i in enumerate(h)
    ]
    return spark.createDataFrame(rows, BEHAVIORS)


def item_vectors(spark):
    unit = {i: (np.array(v) / np.linalg.norm(v)).tolist() for i, v in ITEM_VECTORS.items()}
    return spark.createDataFrame(list(unit.items()), VECTORS)


def test_new_users_get_what_users_with_a_similar_start_chose_next(spark):
    starts, later = start_vectors(behaviors(spark), item_vectors(spark), 3)
    # A warm user's start is its first 3 items; what came after is what the map learns to predict.
    assert {(r["user_id"], r["item_id"]) for r in later.collect()} == {(f"w{n}", "x" if n < 5 else "y")
                                                                          for n in range(1, 9)}  # fmt: skip
    pairs = spark.createDataFrame([(u, i) for u in ("c1", "c2") for i in ("x", "y")], "user_id string, item_id string")
    # reg 0: two distinct starts in 3 dimensions make X'X singular; the map is still the least-squares one.
    for reg in (1.0, 0.0):
        model = fit(starts, later, reg)
        assert model.count() == 2  # one response vector per item someone went on to choose
        raw = {(r["user_id"], r["item_id"]): r["raw"] for r in pair_scores(pairs, starts, model).collect()}
        assert raw[("c1", "x")] > raw[("c1", "y")] and raw[("c2", "y")] > raw[("c2", "x")]
    # Nobody with more than 3 items: nothing to learn from, an empty part rather than an error.
    thin = behaviors(spark).where(F.col("user_id").startswith("c"))
    assert fit(*start_vectors(thin, item_vectors(spark), 3), 1.0).count() == 0


def test_the_gram_matrix_is_summed_over_partitions_some_of_them_empty(spark):
    """X'X is summed on the driver one partition's partial at a time (bytes, not Python lists: the driver held one
    250 MB list per partition at 2,001 id dimensions); every partition must count once, an empty one not at all."""
    x = np.arange(24, dtype=np.float32).reshape(6, 4) / 10
    rows = spark.createDataFrame(
        [(f"u{n}", v.tolist()) for n, v in enumerate(x)], "user_id string, embedding array<float>"
    )
    spread = rows.repartition(8, "user_id")  # 6 rows in 8 partitions: at least 2 are empty
    gram, total = _gram(spread)
    assert gram.shape == (4, 4)
    np.testing.assert_allclose(gram, x.astype(np.float64).T @ x, rtol=1e-6)
    np.testing.assert_allclose(total, x.sum(axis=0), rtol=1e-6)


def test_ids_tell_starts_apart_where_the_text_cannot(spark):
    """A catalogue whose items all read alike (no text): the text map sees one start for everyone, the id map still
    learns that a-starters go on to x and b-starters to y."""
    ids = {r["item_id"]: r["embedding"] for r in id_vectors(behaviors(spark), 3, 4).collect()}
    # Starts: a2, b1, b3 begin 5 histories, a1, a3, b2 four; past max_ids 4 (ties by id) a3 and b2 share a dimension.
    assert ids["a2"] == [1, 0, 0, 0, 0] and ids["a1"] == [0, 0, 0, 1, 0] and ids["a3"] == ids["b2"] == [0, 0, 0, 0, 1]
    assert set(ids) == {"a1", "a2", "a3", "b1", "b2", "b3"}  # x and y start nobody's history
    alike = spark.createDataFrame([(i, [1.0, 0.0, 0.0]) for i in ITEM_VECTORS], VECTORS)
    pairs = spark.createDataFrame([(u, i) for u in ("c1", "c2") for i in ("x", "y")], "user_id string, item_id string")
    raw = {}
    for name, vectors in (("text", alike), ("ids", id_vectors(behaviors(spark), 3, 4))):
        starts, later = start_vectors(behaviors(spark), vectors, 3)
        for r in pair_scores(pairs, starts, fit(starts, later, 1.0)).collect():
            raw[name, r["user_id"], r["item_id"]] = r["raw"]
    assert raw["text", "c1", "x"] == pytest.approx(raw["text", "c2", "x"])  # one start for everyone
    assert raw["ids", "c1", "x"] > raw["ids", "c1", "y"] and raw["ids", "c2", "y"] > raw["ids", "c2", "x"]


def test_thin_users_are_recommended_by_it_with_its_reason(spark):
    vectors = item_vectors(spark)
    users = spark.createDataFrame([(u,) for u in HISTORIES], "user_id string")
    inp = Inputs(
        behaviors=behaviors(spark),
        items=spark.createDataFrame([(i, f"Title {i}") for i in ITEM_VECTORS], "item_id string, title string"),
        item_vectors=vectors,
        user_vectors=start_vectors(behaviors(spark), vectors, 10)[0],
        neighbors=spark.createDataFrame([], "user_id string, neighbor_id string, similarity double"),
        users=users,
    )
    thin = Thin(3, {"onboarding": 1.0, "popularity": 0.1})
    model = Onboarding(3, 1.0, min_users=8)
    got = recommend(inp, Strength({"click": 1.0}), {"popularity": 1.0}, 1, thin=thin, onboarding=model)
    top = {r["user_id"]: r for r in got.collect()}
    got.unpersist()
    assert (top["c1"]["item_id"], top["c2"]["item_id"]) == ("x", "y")
    assert top["c1"]["source"] == "onboarding" and "went on to choose it" in top["c1"]["reason"]
    # Users past the thin threshold keep the usual blend: popularity only here.
    assert {top[f"w{n}"]["source"] for n in range(1, 9)} == {"popularity"}
    # The start vectors are read from a checkpoint, not by re-running the per-user window over the history at each
    # read: on bench-coldstart's derived history (seed 1) those re-runs took a 4 GB local driver out of memory.
    seen = behaviors(spark).groupBy("user_id").agg(F.count_distinct("item_id").alias("n_seen"))
    thin_starts = onboarding_top(inp.behaviors, inp.item_vectors, seen, model, 4000)[0]
    assert "Window" not in thin_starts._jdf.queryExecution().analyzed().toString()
    # Eight users to learn from, nine wanted: no map (one bot among new users would otherwise give them its items).
    assert onboarding_top(inp.behaviors, inp.item_vectors, seen, Onboarding(3, 1.0, min_users=9), 4000) is None


def test_it_is_computed_only_when_the_thin_blend_weighs_it(make_config):
    assert params.onboarding(make_config("recommend.thin.weights={onboarding: 0.0, popularity: 1.0}")) is None
    on = make_config("recommend.thin={max_history: 2, weights: {onboarding: 1.0}}", "recommend.onboarding.reg=5")
    assert params.onboarding(on) == Onboarding(2, 5.0, 100)
    by_ids = make_config("recommend.onboarding={features: ids, max_ids: 50}")
    assert params.onboarding(by_ids) == Onboarding(3, 30.0, 100, "ids", 50)
    assert params.onboarding(make_config("recommend.onboarding.holdout=0.3")).holdout == 0.3
    assert params.onboarding(make_config("recommend.onboarding.min_users=5")).min_users == 5
    assert params.onboarding(make_config("recommend.thin={max_history: 0, weights: {onboarding: 1.0}}")) is None


def many_starts(spark, shared: bool):
    """(behaviours, item vectors) of 60 warm users, half starting with a-items and going on to x, half with b-items
    and going on to y, and one new user of each kind. `shared`: everyone starts from the same three items of their
    kind, which all read alike (no text); otherwise each user starts from three items of their own, which read like
    their kind (text, and ids nobody else started with)."""
    rows, vectors = [], {"x": [0.0, 0.0, 1.0], "y": [0.0, 0.0, 1.0]}
    for n in range(62):
        kind, next_item = ("a", "x") if n % 2 else ("b", "y")
        user = f"new-{kind}" if n >= 60 else f"w{n}"
        starts = [f"{kind}{j}" if shared else f"{kind}{n}-{j}" for j in range(3)]
        for j, i in enumerate(starts):
            vectors[i] = [1.0, 0.0, 0.0] if shared else ([1.0, 0.1 * j, 0.0] if kind == "a" else [0.1 * j, 1.0, 0.0])
        history = starts if n >= 60 else [*starts, next_item]
        rows += [(user, i, "click", None, T0 + dt.timedelta(days=d), None) for d, i in enumerate(history)]
    unit = {i: (np.array(v) / np.linalg.norm(v)).tolist() for i, v in vectors.items()}
    return spark.createDataFrame(rows, BEHAVIORS), spark.createDataFrame(list(unit.items()), VECTORS)


def test_auto_keeps_the_map_that_ranks_held_out_users_better(spark):
    """Items that all read alike: only ids tell an a-start from a b-start. Starts made of items nobody else started
    with: only their text places them. `auto` finds each on held-out warm users and reports what it measured."""
    model = Onboarding(3, 1.0, holdout=0.5)
    for shared, expected in ((True, "ids"), (False, "text")):
        behaviors_df, vectors = many_starts(spark, shared)
        settled, measured = settle(behaviors_df, vectors, model, 4000)
        assert settled.features == expected and measured["onboarding_ids"] == float(expected == "ids")
        assert measured[f"onboarding_ndcg_{expected}"] == pytest.approx(1.0) and measured["onboarding_held_out"] >= 20
        assert measured["onboarding_ndcg_text" if expected == "ids" else "onboarding_ndcg_ids"] < 0.9
    # Too few warm users for the part to be used, or to hold out 20 of: the text map, nothing measured; a fixed
    # choice is kept as it is.
    assert settle(behaviors(spark), item_vectors(spark), model, 4000) == (replace(model, features="text"), {})
    small = replace(model, holdout=0.1)  # 60 warm users, about 6 held out
    assert settle(behaviors_df, vectors, small, 4000) == (replace(small, features="text"), {})
    fixed = Onboarding(3, 1.0, features="ids")
    assert settle(behaviors_df, vectors, fixed, 4000) == (fixed, {})
