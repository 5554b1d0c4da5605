"""Implicit-only behaviour logs (views, clicks, purchases; no rating anywhere) through the whole pipeline: ingest from
a table, then `behaviorlm run` on 3 users."""

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


@pytest.mark.parametrize("rating_column", [False, True], ids=["no_rating_column", "rating_all_null"])
def test_ingest_takes_a_log_without_ratings(spark, make_config, tmp_path, rating_column):
    """Both shapes of an implicit-only log become the same table: every row kept, `rating` null in each."""
    cfg = make_config()
    ingest.main(job_args(cfg, *implicit_source(spark, tmp_path / "raw", 30, 300, rating_column)))
    behaviors = read(spark, cfg, "behaviors")
    assert behaviors.count() == 300 and behaviors.where("rating is not null").count() == 0
    assert read(spark, cfg, "rejected_behaviors").count() == 0


@pytest.mark.slow
def test_run_on_an_implicit_only_log(spark, make_config, tmp_path):
    """Every stage, the backtest too, on 3 users without a rating column: almost no data is the edge case here
    (tests/test_run.py runs the pipeline on more)."""
    users, events = 3, 30
    stages = list(run.STAGES)
    cfg = make_config()
    source = implicit_source(spark, tmp_path / "raw", users, events, rating_column=False)
    args = [*source, *SETTINGS, f"report.dir={tmp_path / 'reports'}"]
    ingest.main(job_args(cfg, *args))
    assert read(spark, cfg, "behaviors").where("rating is not null").count() == 0

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
    assert 0.0 <= metrics[("evaluate", "behaviorlm.ndcg_at_k")] <= 1.0 and ("run", "evaluate.done") in metrics
    assert (Path(cfg.tables.root) / "_evaluate" / cfg.run_id / "test").is_dir()
    assert Path(results["report"]).is_file()
