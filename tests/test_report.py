"""The run report: its charts render in a real headless Chromium, the quality chart compares like with like, and the
summaries behind it are small and deterministic. (A report of a whole run is opened in `test_run`.)"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import functions as F

from behaviorlm import delta, runs, summaries
from behaviorlm.config import load_config
from jobs import charts, report, report_examples
from jobs.runtime import stage_timing
from tests.browser import open_page
from tests.util import write

METRICS = [("evaluate", "behaviorlm.ndcg_at_k", 0.43), ("evaluate", "popularity.ndcg_at_k", 0.25),
           ("evaluate", "als.ndcg_at_k", 0.41), ("evaluate", "behaviorlm.users", 943.0),
           ("evaluate", "behaviorlm.precision_at_k", 0.37), ("similar_users", "recall_at_50", 0.97),
           ("complete", "holdout_rmse", 0.93), ("recommend", "users", 943.0)]  # fmt: skip


def test_quality_puts_each_metric_on_its_own_panel_and_leaves_counts_out():
    found = report.quality(METRICS, 10)
    assert found == {"precision@10": {"behaviorlm": 0.37},
                     "ndcg@10": {"behaviorlm": 0.43, "popularity": 0.25, "als": 0.41}}  # fmt: skip
    assert report.checks(METRICS) == [("similar_users", "recall_at_50", 0.97), ("complete", "holdout_rmse", 0.93)]


def test_published_anchors_only_for_their_protocol():
    movielens = load_config([], ["ingest.source=movielens"])
    assert report.anchors(movielens)["ndcg@10"]["BPR"] == 0.442
    assert report.anchors(load_config([], ["ingest.source=movielens", "evaluate.split=chronological"])) == {}
    assert report.anchors(load_config([], ["ingest.source=synthetic"])) == {}


def test_every_chart_renders_in_chromium_without_console_messages(tmp_path):
    points = [(float(i % 7), float(i % 5), i % 3 - 1) for i in range(40)]
    sections = {
        "quality": charts.grouped_bars(report.quality(METRICS, 10), report.ANCHORS, alt="quality"),
        "stages": charts.stage_bars(
            {"embed-items": 12.0, "recommend": 60.5}, {"embed-items": 18.0}, {"recommend": "9,430 rows"}, alt="stages"
        ),  # fmt: skip
        "bars": charts.hbars([("Drama", 120), ("电影 · 书籍", 3), ("x" * 200, 1)], "rows", alt="bars"),
        "histogram": charts.histogram([(-1.0 + 0.1 * i, i * i) for i in range(20)], 0.1, "cosine", alt="histogram"),
        "map": charts.scatter(points, {0: "Sci-Fi 72% · Star Wars", 1: "🎬 emoji label"}, alt="map"),
        "trends": charts.lines(
            {
                "0: Drama": [("2026-01-05", 0.2, False), ("2026-01-12", 0.4, True)],
                "1: Comedy": [("2026-01-05", 0.1, False)],
            },
            "share",
            alt="trends",
        ),  # fmt: skip
        "empty": charts.grouped_bars({}),
    }
    page = tmp_path / "report.html"
    page.write_text(report.render("test", METRICS, sections), encoding="utf-8")
    seen = open_page(page, screenshot=tmp_path / "report.png")
    assert [alt for alt, _, _ in seen.images] == ["quality", "stages", "bars", "histogram", "map", "trends"]
    assert seen.broken == [] and seen.console == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_summaries_are_bounded_and_deterministic(spark):
    df = spark.createDataFrame(
        [("u1", "a", 0.95, ["Drama", "War"], datetime(2026, 1, 1)), ("u1", "b", -1.0, ["Drama"], datetime(2026, 1, 2)),
         ("u2", "a", 0.15, [], datetime(2026, 1, 3)), ("u3", "c", 1.0, ["Comedy"], None)],
        "user_id string, item_id string, similarity double, genres array<string>, ts timestamp",
    )  # fmt: skip
    assert summaries.histogram(df, "similarity", -1.0, 1.0, 4) == [(-1.0, 1), (-0.5, 0), (0.0, 1), (0.5, 2)]
    assert summaries.top_counts(df, "genres", 2) == [("Drama", 2), ("Comedy", 1)]
    assert summaries.top_counts(df, "user_id", 1) == [("u1", 2)]
    keys = summaries.pick_keys(df, 2, seed=7)
    assert len(keys) == 2 and keys == summaries.pick_keys(df.orderBy("ts"), 2, seed=7)
    other = spark.createDataFrame([("u3", 5)], "user_id string, rank int")
    found = summaries.rows_for_keys({"a": df.drop("genres"), "b": other}, ["u1", "u3", "u9"])
    assert sorted(r["item_id"] for r in found["a"]) == ["a", "b", "c"] and found["b"] == [{"user_id": "u3", "rank": 5}]
    # Latest first, a missing time last, then by item: the examples' "latest behaviours".
    assert [r["item_id"] for r in report_examples.first(found["a"], ("-ts", "item_id"), 3)] == ["b", "a", "c"]
    # ... cut on the cluster first: a bot's million behaviours never reach the driver.
    kept = report_examples.first_per_user(df, ("-ts", "item_id"), 1).where("user_id = 'u1'").collect()
    assert [r["item_id"] for r in kept] == ["b"]
    vectors = [(f"u{i}", [float(i), float(i % 3), 1.0]) for i in range(9)]
    points = summaries.projection(spark.createDataFrame(vectors, "user_id string, embedding array<double>"), 5, seed=1)
    assert len(points) == 5 and all(g == -1 for _, _, g in points)


def test_a_hash_sample_is_what_a_plain_sort_by_the_hash_gives(spark):
    """`smallest_by_hash` keeps a hashed share of the rows before its sort (so the sort's top-n step does not take
    every row): the rows it returns must be those of a plain sort, n of them, for small and large n."""
    df = spark.range(3000).selectExpr("cast(id as string) as user_id").repartition(7)
    hashed = F.xxhash64("user_id", F.lit(5))
    for n in (1, 50, 1400, 5000):
        plain = [r[0] for r in df.orderBy(hashed, "user_id").limit(n).collect()]
        assert [r[0] for r in summaries.smallest_by_hash(df, n, hashed, "user_id").collect()] == plain


def test_stage_rows_are_the_rows_metric_when_a_stage_has_one():
    """The stage chart said "3 rows" for recommend's 30: it took the stage's first count, its users."""
    timing = stage_timing("recommend", {"seconds": "2.5"}, {"users": 3, "rows": 30, "users_short": 1})
    assert timing == {"recommend.seconds": 2.5, "recommend.rows": 30}
    assert stage_timing("ingest", {"seconds": "1"}, {"behaviors_read": 10, "behaviors_written": 9})["ingest.rows"] == 10
    # A stage whose first count is of users says users: segments wrote 28 segments for 301 users, not "301 rows".
    assert stage_timing("segments", {"seconds": "1"}, {"users": 301, "segments": 28}) == {
        "segments.seconds": 1.0,
        "segments.users": 301,
    }


def test_sections_without_a_chart_say_why(spark, make_config):
    """A run of 2 users drew "(no data in this run)" under the segment map although user_interests had rows, and an
    empty Examples section with no word at all."""
    cfg = make_config()
    write(
        spark,
        cfg,
        "user_embeddings",
        [("u1", [1.0, 0.0]), ("u2", [0.0, 1.0])],
        "user_id string, embedding array<float>",
    )
    assert "fewer than 3 users with a vector" in report.segment_map(spark, cfg)
    write(
        spark,
        cfg,
        "recommendations",
        [("u1", "i1", 1, "an older run")],
        "user_id string, item_id string, rank int, run_id string",
    )
    assert "no rows of this run in recommendations" in report_examples.examples(spark, cfg)
    assert "no rows of this run in recommendations" in report.categories_chart(spark, cfg)
    assert "no rows of this run in segment_trends, segments" in report.trend_chart(spark, cfg)


def test_the_previous_run_is_one_that_timed_the_same_stages(spark, make_config):
    """The report compared a run with the ingest run before it ("Previous run: ing1"), which timed no stage of it."""
    cfg = make_config()
    ref = delta.table_ref(cfg.tables, "run_metrics")
    runs.write_metrics(spark, ref, "older", {"run": {"recommend.seconds": 9.0}})
    runs.write_metrics(spark, ref, "ing1", {"run": {"ingest.seconds": 3.0}})
    runs.write_metrics(spark, ref, cfg.run_id, {"run": {"recommend.seconds": 8.0, "recommend.rows": 30.0}})
    assert "Previous run: older." in report.stage_times(spark, cfg)


def test_recommended_items_without_genres_are_counted_too(spark):
    """Half the recommended items had no genre; the chart showed only the other half's Drama."""
    recs = spark.createDataFrame([("u", "a"), ("u", "b"), ("v", "a"), ("v", "ghost")], "user_id string, item_id string")
    items = spark.createDataFrame([("a", ["Drama"]), ("b", None)], "item_id string, genres array<string>")
    assert report.category_counts(recs, items, 5) == [("(no genre)", 2), ("Drama", 2)]


def test_characters_no_font_draws_are_said_once(caplog):
    """A missing glyph is drawn as a box; matplotlib's warning per label was silenced, so nobody learnt why."""
    charts.hbars([("\ue000 a private-use character", 1.0)], "rows")  # no font draws it
    charts.hbars([("\ue000 again", 2.0)], "rows")
    said = [r.getMessage() for r in caplog.records if "no installed font draws" in r.getMessage()]
    assert len(said) == 1 and "\ue000" in said[0]
