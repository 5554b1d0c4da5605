"""Implicit-only behaviour logs (views, clicks, purchases; no rating anywhere) through the whole pipeline: ingest from
a table, then `behaviorlm run` (every stage but the backtest; the tiny case, 3 users, runs the backtest too, on almost
no data)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import ingest, run
from tests.util import job_args, read

T0 = dt.datetime(2024, 3, 1)
EVENTS = ["view", "click", "purchase"]
CATALOGUE = [
    ("Star Wars", ["Sci-Fi", "Action"]), ("Alien", ["Sci-Fi", "Horror"]), ("The Matrix", ["Sci-Fi", "Action"]),
    ("Blade Runner", ["Sci-Fi"]), ("Heat", None), ("Casino", ["Crime", "Drama"]), ("Goodfellas", ["Crime", "Drama"]),
    ("Fargo", ["Crime", "Comedy"]), ("Emma", ["Romance", "Drama"]), ("Sense and Sensibility", ["Romance", "Drama"]),
    ("Notting Hill", ["Romance", "Comedy"]), ("Amelie", ["Romance", "Comedy"]), ("Toy Story", ["Animation", "Comedy"]),
    ("Shrek", ["Animation", "Comedy"]), ("Up", ["Animation"]), ("Coco", None), ("Jaws", ["Thriller"]),
    ("Psycho", ["Thriller", "Horror"]), ("Vertigo", ["Thriller"]), ("Rear Window", ["Thriller"]),
]  # fmt: skip
# Small, fast settings (as tests/test_run.py's SMALL): one grid point, the popularity baseline only, a set number of
# segments and untuned predict weights (tuning on tiny data is tests/test_predict.py's).
SETTINGS = ["neighbors.k=5", "evaluate.grid={similarity_power: [2.0], content: [0.1], popularity: [0.1]}",
            "evaluate.baselines=[popularity]", "complete.holdout=0.05", "complete.attribute_neighbors=5",
            "segments.k=4", "predict.tune=false"]  # fmt: skip


def implicit_source(spark: SparkSession, folder: Path, users: int, events: int, rating_column: bool) -> list[str]:
    """Write raw Delta tables of `events` implicit events by `users` users (each meets five items, each twice: a view
    then a click or purchase) and the 20-item catalogue (two items without genres); returns the ingest settings."""
    rows = []
    for n in range(events):
        user, visit = n % users, n // users
        item = (7 * user + 3 * (visit // 2)) % len(CATALOGUE)
        rows.append((f"u{user}", f"i{item}", EVENTS[visit % 3], T0 + dt.timedelta(minutes=n)))
    behaviors = spark.createDataFrame(rows, "user_id string, item_id string, event_type string, ts timestamp")
    if rating_column:
        behaviors = behaviors.withColumn("rating", F.lit(None).cast("double"))
    items = spark.createDataFrame(
        [(f"i{n}", title, genres) for n, (title, genres) in enumerate(CATALOGUE)],
        "item_id string, title string, genres array<string>",
    )
    behaviors.write.format("delta").save(str(folder / "behaviors"))
    items.write.format("delta").save(str(folder / "items"))
    return ["ingest.source=table", f"ingest.behaviors_source={folder / 'behaviors'}",
            f"ingest.items_source={folder / 'items'}"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("users", "events", "rating_column"),
    [(30, 300, False), (3, 30, True)],
    ids=["no_rating_column", "tiny_rating_all_null"],
)
def test_run_on_an_implicit_only_log(spark, make_config, tmp_path, users, events, rating_column):
    # The backtest runs on the tiny log only: almost no data is its edge case (tests/test_run.py runs it on more).
    tiny = users == 3
    stages = list(run.STAGES) if tiny else [s for s in run.STAGES if s != "evaluate"]
    cfg = make_config()
    source = implicit_source(spark, tmp_path / "raw", users, events, rating_column)
    args = [*source, *SETTINGS, f"report.dir={tmp_path / 'reports'}"]
    ingest.main(job_args(cfg, *args))
    behaviors = read(spark, cfg, "behaviors")
    assert behaviors.count() == events and behaviors.where("rating is not null").count() == 0

    results = run.main(job_args(cfg, *args) + ["--stages", ",".join(stages)])
    assert all(results[stage] is not None for stage in stages)
    this_run = F.col("run_id") == cfg.run_id
    metrics = {(r["stage"], r["metric"]): r["value"] for r in read(spark, cfg, "run_metrics").where(this_run).collect()}
    # Nothing to learn ratings from: skipped with its metric, the rest of complete still ran.
    assert metrics[("complete", "ratings_skipped_no_ratings")] == 1.0
    assert ("complete", "ratings_filled") not in metrics
    recs = read(spark, cfg, "recommendations").where(this_run)
    assert recs.select("user_id").distinct().count() == users
    filled = read(spark, cfg, "completed_attributes").where(this_run)
    # The two items without genres (beside any the holdout hid to score the fills).
    assert {"i4", "i15"} <= {r["item_id"] for r in filled.select("item_id").distinct().collect()}
    assert read(spark, cfg, "completed_behaviors").where(this_run).count() == events  # no row had text
    if tiny:
        assert 0.0 <= metrics[("evaluate", "behaviorlm.ndcg_at_k")] <= 1.0 and ("run", "evaluate.done") in metrics
        assert (Path(cfg.tables.root) / "_evaluate" / cfg.run_id / "test").is_dir()
    assert Path(results["report"]).is_file()
