"""An implicit-only behaviour log (views, clicks, purchases; no rating anywhere) written as raw Delta tables, and
the small settings a whole run on it uses: tests/test_implicit.py ingests it, tests/test_run.py runs every stage on
it with 3 users."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

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
# Small, fast settings: a one-point validation grid (tuning still runs, on 3 users), the popularity baseline only, a
# set number of segments and untuned predict weights (tuning on tiny data is tests/test_predict.py's).
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
