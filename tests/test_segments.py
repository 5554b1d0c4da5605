"""segments: MLlib clustering of item vectors in three planted groups, labels, user interests, trends, bad input,
and the job's tables written idempotently."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from behaviorlm.interests import segment_trends, user_interests
from behaviorlm.labels import describe_segments, segment_terms
from behaviorlm.schemas import BEHAVIORS, ITEMS
from behaviorlm.segments import choose_k, cluster_items, silhouette
from jobs import segments
from tests.util import job_args, read, write

VECTORS = "item_id string, embedding array<float>"
FOUND = "item_id string, segment_id int, similarity double"
INTERESTS = "user_id string, segment_id int, weight double, recent_share double"
TRENDS = "segment_id int, period_start date, behaviors long, share double, change double, z_score double, alert boolean"
# Three groups around the first three axes; within a group the perturbations cancel, so each centroid is its axis.
GROUPS = {
    "a": [[1, 0, 0, 0], [1, 0.1, 0, 0], [1, -0.1, 0, 0], [1, 0, 0.3, 0], [1, 0, -0.3, 0]],
    "b": [[0, 1, 0, 0], [0.1, 1, 0, 0], [-0.1, 1, 0, 0], [0, 1, 0, 0.5]],
    "c": [[0, 0, 1, 0], [0, 0.2, 1, 0], [0, -0.2, 1, 0]],
}
TITLES = {
    "a": ["Space Alien", "Space Station", "Alien Space War", "Space Journey", "Dark Alien Moon"],
    "b": ["Love Letters", "Love in Paris", "Paris Love Song", "The Wedding"],
    "c": ["Western Town", None, "Gold Rush Western"],
}
GENRES = {
    "a": [["Sci-Fi"]] * 5,
    "b": [["Romance"], ["Comedy", "Romance"], ["Romance"], ["Comedy"]],
    "c": [["Western"], None, ["Western"]],
}
GROUP_IDS = {g: [f"{g}{i}" for i in range(len(v))] for g, v in GROUPS.items()}
T0 = dt.datetime(2024, 1, 1)  # a Monday


def assert_close(got, expected) -> None:
    """The same rows in any order, floats within 1e-6 (Spark sums floats in whatever order partitions arrive)."""
    assert_approx_df_equality(got, expected, 1e-6, ignore_row_order=True, ignore_nullable=True)


def vector_rows() -> list[tuple]:
    return [(GROUP_IDS[g][i], [float(x) for x in v]) for g, vs in GROUPS.items() for i, v in enumerate(vs)]


def item_rows() -> list[tuple]:
    return [(GROUP_IDS[g][i], TITLES[g][i], None, GENRES[g][i], None) for g in GROUPS for i in range(len(GROUPS[g]))]


def expected_similarity() -> list[tuple]:
    """Cosine of each item to its group's normalised mean unit vector, by numpy."""
    out = []
    for seg, g in enumerate(GROUPS):  # groups are listed largest first: their segment ids
        unit = np.array(GROUPS[g]) / np.linalg.norm(GROUPS[g], axis=1, keepdims=True)
        centroid = unit.mean(axis=0) / np.linalg.norm(unit.mean(axis=0))
        out += [(GROUP_IDS[g][i], seg, float(s)) for i, s in enumerate(unit @ centroid)]
    return out


@pytest.fixture(scope="module")
def catalogue(spark):
    vectors = spark.createDataFrame(vector_rows(), VECTORS).cache()
    items = spark.createDataFrame(item_rows(), ITEMS)
    return vectors, items


def test_planted_groups_their_centroid_cosines_and_k_by_silhouette(spark, catalogue):
    vectors, _ = catalogue
    # Planted groups converge in a few iterations (and each iteration is a Spark job).
    for algorithm in ("kmeans", "bisecting"):
        got = cluster_items(vectors, 3, seed=1, algorithm=algorithm, max_iter=5)
        assert_close(got, spark.createDataFrame(expected_similarity(), FOUND))
    k, scores = choose_k(vectors, [3, 40], sample=100, seed=1, max_iter=5)
    # 40 is clamped to items - 1 = 11, and past the grid's reach values from 2 to 11 are tried as well.
    assert k == 3 and {3, 11} <= set(scores) and scores[3] > max(v for k, v in scores.items() if k != 3)


def test_labels_attribute_share_medoids_and_distinctive_terms(spark, catalogue):
    _, items = catalogue
    found = spark.createDataFrame(expected_similarity(), FOUND)
    got = describe_segments(items, found, n_terms=3, n_items=3, attribute="genres")
    rows = {r["segment_id"]: r for r in got.collect()}
    assert rows[0]["label"] == "Sci-Fi 100% · Space Alien; Space Station; Alien Space War · space, alien"
    assert rows[1]["label"] == "Romance 75% · Love Letters; Love in Paris; Paris Love Song · love, paris"
    # c1 has no title: named by its id; its null genres count against the share. Words met once are no terms.
    assert rows[2]["label"] == "Western 67% · Western Town; c1; Gold Rush Western · western"
    assert [rows[s]["n_items"] for s in range(3)] == [5, 4, 3]
    assert rows[2]["medoid_items"] == ["Western Town", "c1", "Gold Rush Western"] and rows[1]["attribute_share"] == 0.75
    cohesion = {s: np.mean([x for _, seg, x in expected_similarity() if seg == s]) for s in range(3)}
    assert all(abs(rows[s]["cohesion"] - cohesion[s]) < 1e-6 for s in range(3))
    assert [rows[s]["name"] for s in range(3)] == ["Sci-Fi", "Romance", "Western"]
    bare = describe_segments(items.drop("genres", "title"), found, attribute="genres").where("segment_id = 2").first()
    assert (bare["label"], bare["name"], bare["attribute_value"]) == ("c0; c1; c2", "c0", None)
    # A title ending in a share is a name as it stands (parsing the label said "Save"); untitled items go by id.
    # Segment 1's genres tie 2 to 2: no value leads, so none is said (the label said "X 50%").
    tied = F.when(F.col("item_id").isin("b0", "b1"), "X").when(F.col("item_id").isin("b2", "b3"), "Y")
    blank = items.select("item_id", F.when(F.col("item_id") == "a0", "Save 50%").alias("title"), tied.alias("genre"))
    named = {r["segment_id"]: r for r in describe_segments(blank, found, n_items=1, attribute="genre").collect()}
    assert (named[0]["name"], named[2]["label"], named[2]["name"]) == ("Save 50%", "c0", "c0")
    assert (named[1]["label"], named[1]["attribute_value"]) == ("b0", None)


def test_terms_of_cjk_text_and_of_segments_without_any_text(spark):
    texts = [("1", "東京物語", None), ("2", "東京の夜", None), ("3", None, "Die Brücke"), ("4", "", None)]
    items = spark.createDataFrame([(*t, None, None) for t in texts], ITEMS)
    found = spark.createDataFrame([("1", 0, 1.0), ("2", 0, 1.0), ("3", 1, 1.0), ("4", 2, 1.0)], FOUND)
    terms = {r["segment_id"]: r["top_terms"] for r in segment_terms(items, found, 3, min_count=1).collect()}
    # Han runs are cut into character pairs: 東京, 京物, 物語 and 東京 (夜 alone stays one); the particle の is none.
    assert terms[0] == ["東京", "京物", "夜"] and terms[1] == ["brücke", "die"] and terms[2] == []
    # Met twice or more: only the word of the two Tokyo titles (it was its two characters, 京 and 東).
    twice = segment_terms(items, found).orderBy("segment_id").collect()
    assert [r["top_terms"] for r in twice] == [["東京"], [], []]
    nothing = items.select("item_id", F.lit(None).cast("string").alias("title"))
    assert {r["top_terms"] == [] for r in segment_terms(nothing, found).collect()} == {True}


def test_a_cluster_smaller_than_min_size_joins_the_nearest_segment(spark, catalogue):
    vectors, _ = catalogue
    # An outlier on the fourth axis, leaning a little towards group a: k-means gives it a cluster of its own.
    with_outlier = vectors.unionByName(spark.createDataFrame([("z0", [0.3, 0.0, 0.0, 1.0])], VECTORS))
    alone = {r["item_id"]: r["segment_id"] for r in cluster_items(with_outlier, 4, seed=1, max_iter=5).collect()}
    assert sum(s == alone["z0"] for s in alone.values()) == 1
    found = cluster_items(with_outlier, 4, seed=1, max_iter=5, min_size=2)
    merged = {r["item_id"]: r["segment_id"] for r in found.collect()}
    assert len(set(merged.values())) == 3 and merged["z0"] == merged["a0"] == 0
    # The silhouette that chose k is the one of the merged segments.
    k, scores = choose_k(with_outlier, [4], sample=100, seed=1, max_iter=5, min_size=2)
    assert k == 4 and scores[4] == pytest.approx(silhouette(with_outlier, found, 100, seed=1), abs=1e-12)


def test_one_or_two_items_make_one_segment_and_no_items_none(spark):
    one = spark.createDataFrame([("x", [0.0, 3.0])], VECTORS)
    assert choose_k(one, [8, 12], sample=10) == (1, {1: 0.0})
    assert [tuple(r) for r in cluster_items(one, 8).collect()] == [("x", 0, 1.0)]
    two = spark.createDataFrame([("x", [1.0, 0.0]), ("y", [0.0, 1.0])], VECTORS)
    assert {r["segment_id"] for r in cluster_items(two, 8).collect()} == {0}
    assert cluster_items(one.limit(0), 8).count() == 0
    with pytest.raises(ValueError, match="dbscan"):
        cluster_items(one, 2, algorithm="dbscan")
    with pytest.raises(ValueError, match="year"):
        segment_trends(one, one, period="year")


def interest_rows() -> list[tuple]:
    day = dt.timedelta(days=1)
    return [
        ("u1", "a0", "click", None, T0 + 60 * day, None),
        ("u1", "a1", "rating", 5.0, T0 + 60 * day, None),
        ("u1", "b0", "click", None, T0 + 30 * day, None),
        ("u1", "c0", "click", None, T0, None),
        ("u1", "x1", "click", None, T0 + 60 * day, None),  # no segment: skipped
        ("u1", "b1", "search", None, T0 + 60 * day, None),  # weight 0 in `weights`
        ("u2", "c2", "view", None, T0, None),  # one behaviour
        *[("u3", i, "click", None, T0, None) for i in ("a0", "a1", "b0", "b1")],  # one second, a tie
    ]


def test_user_interests_weigh_type_and_recency_and_renormalise(spark):
    behaviors = spark.createDataFrame(interest_rows(), BEHAVIORS)
    found = spark.createDataFrame(expected_similarity(), FOUND)
    got = user_interests(behaviors, found, per_user=2, half_life_days=30.0, recent_days=30,
                         weights={"click": 1.0, "rating": 1.0, "view": 0.3})  # fmt: skip
    # u1: a = 1 + 1, b = 0.5 (30 days back) + 0 (search); c (0.25) is third. Recent: a0, a1, b0, b1 (x1 skipped).
    expected = [("u1", 0, 0.8, 0.5), ("u1", 1, 0.2, 0.5), ("u2", 2, 1.0, 1.0), ("u3", 0, 0.5, 0.5), ("u3", 1, 0.5, 0.5)]
    assert_close(got, spark.createDataFrame(expected, INTERESTS))
    rated = user_interests(behaviors, found, per_user=1, half_life_days=0.0, weights={"click": 1.0, "rating": 1.0},
                           rating_max=10.0)  # fmt: skip
    assert [tuple(r) for r in rated.where("user_id = 'u1'").collect()] == [("u1", 0, 1.0, 0.5)]
    unweighted = user_interests(behaviors, found, per_user=3, weights={})
    assert {r["weight"] for r in unweighted.where("user_id = 'u2'").collect()} == {1.0}


def trend_rows(scale: int = 1) -> list[tuple]:
    week = dt.timedelta(days=7)
    counts = {0: (2, 2), 1: (2, 2), 3: (2, 2), 4: (4, 0)}  # week -> behaviours in (a, b); week 2 has none
    counts = {w: (a * scale, b * scale) for w, (a, b) in counts.items()}
    rows = []
    for w, (n_a, n_b) in counts.items():
        rows += [("u", "a0", "click", None, T0 + w * week + dt.timedelta(minutes=i), None) for i in range(n_a)]
        rows += [("u", "b0", "click", None, T0 + w * week + dt.timedelta(days=3), None) for _ in range(n_b)]
    return rows


def test_trends_keep_empty_periods_and_guard_a_flat_history(spark):
    behaviors = spark.createDataFrame(trend_rows(), BEHAVIORS)
    found = spark.createDataFrame([("a0", 0, 1.0), ("b0", 1, 1.0)], FOUND)
    got = segment_trends(behaviors, found, period="week", window=4, alert_z=3.0)
    week = [dt.date(2024, 1, 1) + dt.timedelta(days=7 * w) for w in range(5)]
    # Week 4: a's share 1.0 against a flat 0.5 (std 0), read off 4 behaviours: its own noise, sqrt(0.5 x 0.5 / 4) =
    # 0.25, is the spread, z = 2 and no alert (the probe's 1-behaviour week had alerted at z 50).
    expected = [
        (0, week[0], 2, 0.5, None, None, False), (1, week[0], 2, 0.5, None, None, False),
        (0, week[1], 2, 0.5, 0.0, None, False), (1, week[1], 2, 0.5, 0.0, None, False),
        (0, week[2], 0, None, None, None, False), (1, week[2], 0, None, None, None, False),
        (0, week[3], 2, 0.5, 0.0, 0.0, False), (1, week[3], 2, 0.5, 0.0, 0.0, False),
        (0, week[4], 4, 1.0, 0.5, 2.0, False), (1, week[4], 0, 0.0, -0.5, -2.0, False),
    ]  # fmt: skip
    assert_close(got, spark.createDataFrame(expected, TRENDS))
    # The same shares over 100 times the behaviours: noise 0.025, z = 20, a surge.
    surge = segment_trends(spark.createDataFrame(trend_rows(100), BEHAVIORS), found, period="week", window=4)
    last = surge.where(F.col("period_start") == week[4]).orderBy("segment_id").collect()
    assert [(r["z_score"], r["alert"]) for r in last] == [(pytest.approx(20.0), True), (pytest.approx(-20.0), True)]
    # Week 0 in January, week 4 moved to March: February is there, empty.
    moved = behaviors.where("ts >= '2024-01-29'").withColumn("ts", F.col("ts") + F.expr("interval 40 days"))
    months = segment_trends(behaviors.where("ts < '2024-01-08'").union(moved), found, period="month")
    got_months = months.where("segment_id = 0").orderBy("period_start").collect()
    assert [(str(r["period_start"]), r["behaviors"]) for r in got_months] == [
        ("2024-01-01", 2), ("2024-02-01", 0), ("2024-03-01", 4)]  # fmt: skip
    one_second = behaviors.withColumn("ts", F.lit(T0))
    assert [tuple(r)[2:] for r in segment_trends(one_second, found, period="day").orderBy("segment_id").collect()] == [
        (10, 10 / 16, None, None, False), (6, 6 / 16, None, None, False)]  # fmt: skip
    assert segment_trends(behaviors.limit(0), found).count() == 0


def write_tables(spark, cfg) -> None:
    vectors = [*vector_rows(), ("z", [0.0, 0.0, 0.0, 0.0])]  # a zero vector: no segment
    write(spark, cfg, "item_embeddings", vectors, VECTORS)
    write(spark, cfg, "items", [*item_rows(), ("z", "Zero", None, None, None)], ITEMS)
    behaviors = [*interest_rows(), ("u4", "z", "click", None, T0, None), ("u4", "c1", "click", None, T0, None)]
    write(spark, cfg, "behaviors", behaviors, BEHAVIORS)


def test_job_writes_four_tables_idempotently(spark, make_config):
    cfg = make_config()
    write_tables(spark, cfg)
    # An older version's run, before segments had names: this run adds the columns beside it.
    old = "user_id string, segment_id int, weight double, recent_share double, label string, run_id string"
    write(spark, cfg, "user_interests", [("u0", 0, 1.0, 0.0, "War 90%", "old")], old)
    # Groups of 5, 4 and 3 items: a minimum of 3 keeps the smallest (the default 4 would dissolve it).
    args = job_args(cfg, "segments.k_grid=[3]", "segments.per_user=2", "segments.period=day",
                    "segments.min_segment_size=3")  # fmt: skip
    first = segments.main(args)
    names = ("segments", "item_segments", "user_interests", "segment_trends")
    assert read(spark, cfg, "user_interests").where("run_id = 'old'").first()["name"] is None
    tables = {n: read(spark, cfg, n).where(F.col("run_id") == cfg.run_id) for n in names}
    tables = {n: spark.createDataFrame(t.collect(), t.schema) for n, t in tables.items()}
    # 61 days from the first behaviour to the last, most of them empty.
    counts = {"segments": 3, "item_segments": 12, "user_interests": 6, "segment_trends": 3 * 61}
    assert {n: t.count() for n, t in tables.items()} == counts
    assert first["silhouette"] > 0.5
    rest = {m: v for m, v in first.items() if m != "silhouette"}
    assert rest == {"k": 3, "items": 12, "users": 4, "alerts": 0, "skipped_behaviors": 2}
    by_size = {r["n_items"]: r for r in tables["segments"].collect()}
    assert by_size[5]["label"].startswith("Sci-Fi 100% · ") and by_size[3]["n_users"] == 3
    assert (by_size[5]["name"], by_size[5]["attribute_value"]) == ("Sci-Fi", "Sci-Fi")
    assert tables["user_interests"].where("label is null or name is null").count() == 0
    assert segments.main(args) == first
    for name, before in tables.items():
        assert_close(read(spark, cfg, name).where(F.col("run_id") == cfg.run_id), before)


def test_segments_do_not_depend_on_how_the_vectors_are_partitioned(spark):
    # Structureless vectors: k-means' seeded start then decides the clusters, and it must not see row order.
    rng = np.random.default_rng(3)
    rows = [(f"i{n:02d}", [float(x) for x in rng.normal(size=6)]) for n in range(60)]
    one = spark.createDataFrame(rows, VECTORS).coalesce(1)
    scattered = spark.createDataFrame(rows[::-1], VECTORS).repartition(3)
    assert_close(cluster_items(scattered, 6, seed=1, max_iter=3), cluster_items(one, 6, seed=1, max_iter=3))


def test_small_catalogue_caps_the_grid_and_the_chosen_silhouette_is_the_stored_one(spark):
    rng = np.random.default_rng(5)
    rows = [(f"i{n:02d}", [float(x) for x in rng.normal(size=6)]) for n in range(60)]
    vectors = spark.createDataFrame(rows, VECTORS).repartition(3)
    # 60 items, at least 10 per segment on average: the grid's 20 and 24 become 6, and 2 to 6 are tried.
    k, scores = choose_k(vectors, [20, 24], sample=100, seed=1, max_iter=3, min_size=10)
    assert sorted(scores) == [2, 3, 4, 5, 6] and scores[k] == max(scores.values())
    found = cluster_items(vectors, k, seed=1, max_iter=3)
    assert scores[k] == pytest.approx(silhouette(vectors, found, 100, seed=1), abs=1e-12)
