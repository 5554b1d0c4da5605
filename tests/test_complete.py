"""complete: ratings (baseline + neighbours + embedding item-item), attributes by k-NN on text, behaviour text."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.attributes import MIN_VALIDATION, choose_label_threshold, lacks_attribute, predict_labels
from behaviorlm.errors import ConfigError, InputContractError, TableNotFoundError
from behaviorlm.ratings import PREDICTIONS, RatingModel, baseline_biases, predict_ratings
from behaviorlm.schemas import BEHAVIORS, ITEMS
from jobs import complete
from tests.util import assert_same_rows, job_args, read, write

T0 = dt.datetime(2024, 1, 1)
ITEMS_ROWS = [
    ("sw1", "Star Wars: A New Hope", None, ["Action", "Sci-Fi"], 1977),
    ("sw2", "Star Wars: The Empire Strikes Back", None, ["Action", "Sci-Fi"], 1980),
    ("sw3", "Star Wars: Return of the Jedi", None, None, 1983),  # genres missing: to be filled
    ("pp", "Pride and Prejudice", None, ["Drama", "Romance"], 1995),
    ("em", "Emma", None, ["Drama", "Romance"], 1996),
    ("blank", "", None, None, None),  # no text at all
]
RATED = [("a", "sw1", 5.0), ("a", "sw2", 5.0), ("a", "pp", 2.0), ("b", "sw1", 4.0), ("b", "sw2", 5.0),
         ("b", "sw3", 5.0), ("b", "em", 1.0), ("c", "pp", 5.0), ("c", "em", 4.0), ("c", "sw1", 2.0)]  # fmt: skip
# Unrated interactions to fill; one for an item the catalogue does not know, one for the text-less item.
UNRATED = [("a", "sw3", "view"), ("c", "sw2", "click"), ("a", "pp", "view"), ("c", "ghost", "view"),
           ("b", "blank", "view")]  # fmt: skip
VECTORS = {"sw1": [1.0, 0.0, 0.0], "sw2": [0.95, 0.31, 0.0], "sw3": [0.9, 0.44, 0.0], "pp": [0.0, 0.0, 1.0],
           "em": [0.0, 0.31, 0.95], "blank": [0.58, 0.58, 0.58]}  # fmt: skip
NEIGHBORS = [("a", "b", 1, 0.9), ("a", "c", 2, 0.1), ("b", "a", 1, 0.9), ("c", "b", 1, 0.2)]


@pytest.fixture
def data(spark, make_config, tmp_path):
    cfg = make_config()
    rows = [(u, i, "rating", r, T0 + dt.timedelta(hours=n), None) for n, (u, i, r) in enumerate(RATED)]
    rows += [(u, i, e, None, T0 + dt.timedelta(days=n), None) for n, (u, i, e) in enumerate(UNRATED)]
    write(spark, cfg, "behaviors", rows, BEHAVIORS)
    write(spark, cfg, "items", ITEMS_ROWS, ITEMS)
    write(spark, cfg, "item_embeddings", list(VECTORS.items()), "item_id string, embedding array<float>")
    nb = [(*r, cfg.run_id) for r in NEIGHBORS]
    write(
        spark,
        cfg,
        "user_neighbors",
        nb,
        "user_id string, neighbor_id string, rank int, similarity float, run_id string",
    )
    pairs = str(tmp_path / "pairs")
    spark.createDataFrame([("nobody", "new_item"), ("a", "sw1")], "user_id string, item_id string").write.format(
        "delta"
    ).save(pairs)
    overrides = [f"complete.pairs={pairs}", "complete.attribute_neighbors=2", "complete.item_neighbors=3",
                 "embed.center_items=false"]  # fmt: skip
    return cfg, overrides


def test_complete_fills_without_touching_observed_values_and_reruns_idempotently(spark, data):
    """One job run checked for ratings, attributes and text, then the same run id again: the same rows."""
    cfg, overrides = data
    before = read(spark, cfg, "behaviors")
    before_rows = before.collect()
    metrics = complete.main(job_args(cfg, *overrides))
    assert_df_equality(read(spark, cfg, "behaviors"), spark.createDataFrame(before_rows, BEHAVIORS),
                       ignore_row_order=True)  # fmt: skip
    assert metrics["ratings_filled"] == 5
    # Four items with genres are too few to hold 20 out: the default share, and no validation F1 to report.
    assert metrics["genres_label_threshold"] == 0.25 and "genres_validation_f1" not in metrics
    check_ratings(spark, cfg)
    check_attributes_and_text(spark, cfg)
    first = {n: read(spark, cfg, n).collect() for n in ("completed_ratings", "completed_attributes",
                                                          "completed_behaviors")}  # fmt: skip
    complete.main(job_args(cfg, *overrides))
    for name, rows in first.items():
        again = read(spark, cfg, name)
        assert_same_rows(again, spark.createDataFrame(rows, again.schema))


def check_ratings(spark, cfg) -> None:
    ratings = read(spark, cfg, "completed_ratings")
    got = {(r["user_id"], r["item_id"]): r for r in ratings.collect()}
    # Targets: unrated interactions and requests, never a pair with an observed rating (a/pp, a/sw1).
    assert set(got) == {("a", "sw3"), ("c", "sw2"), ("c", "ghost"), ("b", "blank"), ("nobody", "new_item")}
    assert all(1.0 <= r["predicted_rating"] <= 5.0 for r in got.values())
    # No support at all: the global mean (plus no bias), confidence 0, not NaN.
    mu = sum(r for *_, r in RATED) / len(RATED)
    cold = got[("nobody", "new_item")]
    assert cold["predicted_rating"] == pytest.approx(mu) and cold["confidence"] == 0.0 and cold["n_support"] == 0
    assert cold["method"] == "baseline"
    # a's closest neighbour b loved sw3, and a rated the items most like sw3 highly: above a's baseline.
    assert got[("a", "sw3")]["predicted_rating"] > 4.0 and got[("a", "sw3")]["confidence"] > 0
    assert "user_neighbors" in got[("a", "sw3")]["method"] and "item_embeddings" in got[("a", "sw3")]["method"]


def check_attributes_and_text(spark, cfg) -> None:
    attrs = read(spark, cfg, "completed_attributes").where("item_id = 'sw3'")
    # Its two nearest by title are the other Star Wars films: both their genres come back, with full confidence.
    assert {r["value"]: r["confidence"] for r in attrs.collect()} == pytest.approx({"Action": 1.0, "Sci-Fi": 1.0})
    assert {r["attribute"] for r in attrs.collect()} == {"genres"}
    # "blank" has no genres either, and gets at least its single best value.
    assert read(spark, cfg, "completed_attributes").where("item_id = 'blank'").count() >= 1
    rows = read(spark, cfg, "completed_behaviors").collect()
    assert len(rows) == len(RATED) + len(UNRATED)  # every behaviour row here lacked text
    texts = {r["item_id"]: r for r in rows}
    assert texts["sw3"]["text"].startswith("Star Wars: Return of the Jedi (1983)")
    assert texts["sw3"]["method"] == "item_catalogue_text" and texts["sw3"]["reason"] is None
    assert texts["ghost"]["text"] is None and texts["ghost"]["reason"] == "item_not_in_catalogue"
    assert texts["blank"]["text"] is None and texts["blank"]["reason"] == "item_has_no_text"


def test_baseline_biases_match_closed_form_for_one_round(spark):
    ratings = spark.createDataFrame(
        [("u", "i", 5.0), ("u", "j", 3.0), ("v", "i", 4.0)], "user_id string, item_id string, rating double"
    )
    mu, biases = baseline_biases(ratings, 1, reg_user=1.0, reg_item=1.0)
    got = {(r["kind"], r["key"]): r["bias"] for r in biases.collect()}
    assert mu == pytest.approx(4.0)
    # Round 1: item biases with user biases 0, then user biases given those.
    b_i, b_j = (1.0 + 0.0) / (1 + 2), (-1.0) / (1 + 1)
    assert got[("item", "i")] == pytest.approx(b_i) and got[("item", "j")] == pytest.approx(b_j)
    assert got[("user", "u")] == pytest.approx(((1.0 - b_i) + (-1.0 - b_j)) / (1 + 2))
    assert got[("user", "v")] == pytest.approx((0.0 - b_i) / (1 + 1))


def test_predictions_are_clipped_to_the_scale(spark):
    ratings = spark.createDataFrame(
        [("a", "x", 5.0), ("b", "x", 5.0), ("b", "y", 5.0), ("c", "y", 1.0), ("c", "z", 1.0)],
        "user_id string, item_id string, rating double",
    )
    neighbors = spark.createDataFrame([("a", "b", 1.0)], "user_id string, neighbor_id string, similarity double")
    targets = spark.createDataFrame([("a", "y")], "user_id string, item_id string")
    cfg = RatingModel(bias_epochs=1, reg_user=0.0, reg_item=0.0, user_shrinkage=0.0, item_weight=0.0)

    def predicted(model: RatingModel) -> float:
        return predict_ratings(targets, ratings, neighbors, None, model).first()["predicted_rating"]

    # By hand: mu 3.4, b_u(a) 0, b_i(y) -0.4, b's residual on y +1.0 -> 4.0 before clipping.
    assert predicted(cfg) == pytest.approx(4.0)
    assert predicted(replace(cfg, rating_max=3.5)) == 3.5
    assert predicted(replace(cfg, rating_min=4.5)) == 4.5


def test_single_label_attribute_gets_one_value_by_weighted_vote(spark):
    vectors = "item_id string, embedding array<float>"
    known_vectors = spark.createDataFrame(
        [("k1", [1.0, 0.0]), ("k2", [0.9, 0.44]), ("k3", [0.0, 1.0]), ("k4", [-1.0, 0.0])], vectors
    )
    known = spark.createDataFrame(
        [("k1", "red"), ("k2", "red"), ("k3", "blue"), ("k4", "blue")], "item_id string, value string"
    )
    unknown = spark.createDataFrame([("q", [0.8, 0.6])], vectors)
    got = predict_labels(known, unknown, known_vectors, 3, 1.0, 100).collect()
    # Nearest three: k1 (0.8), k2 (~0.98), k3 (0.6); red's weighted share wins, one value only.
    assert [(r["item_id"], r["value"], r["n_support"]) for r in got] == [("q", "red", 2)]
    w = {"k1": 0.8**4, "k2": (0.8 * 0.9 + 0.6 * 0.44) ** 4, "k3": 0.6**4}
    assert got[0]["confidence"] == pytest.approx((w["k1"] + w["k2"]) / sum(w.values()), rel=1e-4)


def test_label_threshold_is_chosen_on_validation_items_and_no_signal_shows(spark):
    rng = np.random.default_rng(7)
    ids = [f"i{n:03d}" for n in range(300)]
    # Planted: three groups on three axes, labelled A, B and both; their neighbours agree, so every share is exact.
    planted = {"A": 0, "B": 1, "AB": 2}
    groups = [list(planted)[n % 3] for n in range(300)]
    axes = [[float(planted[g] == d) + 0.01 * float(x) for d, x in enumerate(rng.normal(size=3))] for g in groups]
    # Random: two of four values per item, whatever its vector.
    noise = [[str(v) for v in rng.choice(list("WXYZ"), 2, replace=False)] for _ in ids]
    for labels, vectors, signal in ((groups, axes, True), (noise, rng.normal(size=(300, 8)).tolist(), False)):
        known = spark.createDataFrame([(i, v) for i, g in zip(ids, labels) for v in g], "item_id string, value string")
        frame = spark.createDataFrame(list(zip(ids, vectors)), "item_id string, embedding array<double>")
        threshold, found = choose_label_threshold(known, frame, 10, 4.0, 100)
        assert found["validation_items"] >= MIN_VALIDATION and threshold == found["label_threshold"]
        if signal:
            # Perfect at every share: the highest wins the tie. The same values for all: A and B, F1 0.8.
            assert (threshold, found["validation_f1"]) == (0.5, 1.0)
            assert found["frequency_f1"] == pytest.approx(0.8, abs=0.05)
        else:
            assert found["validation_f1"] < found["frequency_f1"] + complete.NO_SIGNAL_MARGIN


def test_pairs_table_without_item_id_is_a_clear_error(spark, data, tmp_path):
    cfg, overrides = data
    bad = str(tmp_path / "bad_pairs")
    spark.createDataFrame([("a",)], "user_id string").write.format("delta").save(bad)
    with pytest.raises(InputContractError, match=r"complete.pairs .*required column 'item_id'"):
        complete.main(job_args(cfg, *overrides, f"complete.pairs={bad}"))
    # A path that is not there names the setting that gave it.
    with pytest.raises(TableNotFoundError, match=r"complete.pairs '.*no_pairs' does not exist"):
        complete.main(job_args(cfg, *overrides, f"complete.pairs={tmp_path / 'no_pairs'}"))


def test_a_wrong_attribute_setting_fails_before_any_work(spark, data):
    cfg, overrides = data
    with pytest.raises(ConfigError, match="table 'items' has no such column"):
        complete.main(job_args(cfg, *overrides, "complete.attributes=[no_such_column]"))
    # Raised before the ratings were filled: nothing written (it used to fail only after minutes of ratings).
    assert not delta.table_exists(spark, delta.table_ref(cfg.tables, "completed_ratings"))
    with pytest.raises(ConfigError, match="nothing left to describe items"):
        complete.main(job_args(cfg, *overrides, "embed.item_fields=['{genres}']"))


def test_an_attribute_every_item_has_needs_no_fill(spark):
    items = spark.createDataFrame(
        [("a", ["Drama"]), ("b", ["Comedy", "Drama"])], "item_id string, genres array<string>"
    )
    assert not lacks_attribute(items, "genres")
    # A null or an empty list is a missing attribute.
    for gap in (None, []):
        more = items.unionByName(spark.createDataFrame([("c", gap)], items.schema))
        assert lacks_attribute(more, "genres")


def test_rating_model_without_any_rating_is_a_clear_error(spark):
    schema = "user_id string, item_id string, rating double"
    targets = spark.createDataFrame([("u", "i")], "user_id string, item_id string")
    neighbors = spark.createDataFrame([], "user_id string, neighbor_id string, similarity double")
    # No rows at all, and rows whose rating is null (what ingest writes for a log of views and clicks).
    for rows in ([], [("u", "i", None), ("v", "i", None)]):
        ratings = spark.createDataFrame(rows, schema)
        with pytest.raises(InputContractError, match=r"no observed ratings .*implicit-only"):
            baseline_biases(ratings, 1, reg_user=1.0, reg_item=1.0)
        with pytest.raises(InputContractError, match=r"no observed ratings"):
            predict_ratings(targets, ratings, neighbors, None, RatingModel())


@pytest.mark.parametrize("rating_column", [True, False], ids=["rating_all_null", "no_rating_column"])
def test_implicit_only_log_skips_rating_completion(spark, make_config, rating_column):
    cfg = make_config("complete.holdout=0.5")
    rows = [(u, i, e, T0 + dt.timedelta(hours=n)) for n, (u, i, e) in enumerate(UNRATED)]
    schema = "user_id string, item_id string, event_type string, ts timestamp"
    behaviors = spark.createDataFrame(rows, schema)
    if rating_column:
        behaviors = behaviors.withColumn("rating", F.lit(None).cast("double"))
    # A fill this run id wrote when the log still had ratings: it must go, or a re-run would keep it.
    stale = [("u1", "i9", 4.0, 0.5, 3, "baseline", cfg.run_id), ("u1", "i9", 4.0, 0.5, 3, "baseline", "other-run")]
    write(spark, cfg, "completed_ratings", stale, f"{PREDICTIONS}, run_id string")
    # Returns before reading any other table: nothing to learn from, this run's rows replaced by none.
    assert complete.complete_ratings(spark, cfg, behaviors) == {"ratings_skipped_no_ratings": 1.0}
    assert [r["run_id"] for r in read(spark, cfg, "completed_ratings").collect()] == ["other-run"]


def test_ratings_outside_the_scale_of_the_settings_are_a_clear_error(spark, make_config):
    """A log ingested with rating_max 10, completed with the default 5: every fill was clipped to 5.0, silently."""
    behaviors = spark.createDataFrame(
        [("u", "i", 8.0), ("v", "i", 2.0)], "user_id string, item_id string, rating double"
    )
    with pytest.raises(InputContractError, match=r"'behaviors': column 'rating' holds 8, outside the scale 1..5"):
        complete.complete_ratings(spark, make_config(), behaviors)


def test_complete_job_on_an_implicit_only_log_fills_the_rest(spark, data):
    cfg, overrides = data
    rows = [(u, i, e, None, T0 + dt.timedelta(days=n), None) for n, (u, i, e) in enumerate(UNRATED)]
    write(spark, cfg, "behaviors", rows, BEHAVIORS)
    metrics = complete.main(job_args(cfg, *overrides, "complete.holdout=0.2"))
    assert metrics["ratings_skipped_no_ratings"] == 1.0 and "ratings_filled" not in metrics
    assert read(spark, cfg, "completed_attributes").where("item_id = 'sw3'").count() >= 1
    assert read(spark, cfg, "completed_behaviors").count() == len(UNRATED)
    stored = read(spark, cfg, "run_metrics").where("stage = 'complete' and metric = 'ratings_skipped_no_ratings'")
    assert [r["value"] for r in stored.collect()] == [1.0]


def test_nothing_missing_fits_and_embeds_nothing(spark, data):
    """Every behaviour rated, every item with genres, no holdout: no model fitted, no text embedded, and this run's
    rows of both tables replaced by none (a re-run after the gaps were filled must not keep the old fills)."""
    cfg, overrides = data
    write(spark, cfg, "behaviors", [(u, i, "rating", r, T0, None) for u, i, r in RATED], BEHAVIORS)
    write(spark, cfg, "items", [row for row in ITEMS_ROWS if row[3]], ITEMS)
    metrics = complete.main(job_args(cfg, *overrides[1:]))
    assert (metrics["ratings_filled"], metrics["attribute_values_filled"], metrics["python_workers"]) == (0, 0, 0)
    for table in ("completed_ratings", "completed_attributes"):
        assert read(spark, cfg, table).count() == 0
