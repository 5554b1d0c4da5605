"""The run report's examples: `report.example_users` users (picked by a seeded hash among those with
recommendations) with their latest behaviours, recommendations with reasons, predicted next behaviours and completed
ratings, then a few completed item attributes. Items are shown by title where the items table has one.
"""

from __future__ import annotations

import html
import re

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from behaviorlm import delta, summaries
from behaviorlm.config import Config
from jobs import charts

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
HIDDEN = {"user_id", "run_id", "updated_at", "item_id"}
# (table, heading, order within a user ("-col": descending), rows per user); `behaviors` holds every run's data, the
# rest are per run id.
PER_USER: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("behaviors", "latest behaviours", ("-ts", "item_id"), 5),
    ("recommendations", "recommended, with reasons", ("rank",), 5),
    ("next_behaviors", "predicted next", ("rank",), 3),
    ("completed_ratings", "completed ratings", ("item_id",), 3),
)
Rows = list[dict]


def first(rows: Rows, order: tuple[str, ...], n: int) -> Rows:
    """The first `n` of `rows` by `order` (columns; "-col" descending, missing values last either way)."""
    for column in reversed(order):
        name, descending = column.lstrip("-"), column.startswith("-")
        present = sorted((r for r in rows if r.get(name) is not None), key=lambda r: r[name], reverse=descending)
        rows = present + [r for r in rows if r.get(name) is None]
    return rows[:n]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, str) and ISO_TIME.fullmatch(value):
        return html.escape(value[:16].replace("T", " "))  # JSON's 1998-04-07T03:46:03.000Z, to the minute
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(map(str, value)))
    text = "" if value is None else str(value)
    return html.escape(text if len(text) <= 120 else text[:119] + "…")


def rows_table(rows: Rows, heading: str, titles: dict[str, str]) -> str:
    """`rows` as an HTML table under `heading`: the item by title, ids and bookkeeping columns left out."""
    if not rows:
        return ""
    columns = [c for c in rows[0] if c not in HIDDEN]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["item", *columns])
    body = "".join(
        f"<tr><td>{_cell(titles.get(r.get('item_id'), r.get('item_id')))}</td>"
        + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<div><h4>{html.escape(heading)}</h4><table><tr>{head}</tr>{body}</table></div>"


def _read(spark: SparkSession, cfg: Config, name: str, per_run: bool) -> DataFrame | None:
    ref = delta.table_ref(cfg.tables, name)
    if not delta.table_exists(spark, ref):
        return None
    df = delta.read_table(spark, ref)
    return df.where(F.col("run_id") == cfg.run_id) if per_run else df


def first_per_user(df: DataFrame, order: tuple[str, ...], n: int) -> DataFrame:
    """Each user's first `n` rows by `order`, cut on the cluster: a picked user may be a bot with a million
    behaviours, and only `n` are shown. (The filter on the picked users goes below the window: it is on its key.)"""
    by = [F.col(c[1:]).desc_nulls_last() if c.startswith("-") else F.col(c).asc_nulls_last() for c in order]
    position = F.row_number().over(Window.partitionBy("user_id").orderBy(*by))
    return df.withColumn("_position", position).where(F.col("_position") <= n).drop("_position")


def _titles(spark: SparkSession, cfg: Config, ids: set[str]) -> dict[str, str]:
    items = _read(spark, cfg, "items", per_run=False)
    if items is None or "title" not in items.columns or not ids:
        return {}
    rows = items.where(F.col("item_id").isin(sorted(ids)) & F.col("title").isNotNull()).select("item_id", "title")
    return {r["item_id"]: r["title"] for r in rows.collect()}


def examples(spark: SparkSession, cfg: Config) -> str:
    """The examples section's HTML: two small Spark jobs (the users' rows of every table at once, then titles)."""
    recs = _read(spark, cfg, "recommendations", per_run=True)
    if recs is None or cfg.report.example_users == 0:
        return charts.empty("no recommendations in this run")
    users = summaries.pick_keys(recs, cfg.report.example_users, cfg.seed)
    frames = {name: (_read(spark, cfg, name, per_run=name != "behaviors"), order, n) for name, _, order, n in PER_USER}
    capped = {k: first_per_user(df.drop("text"), order, n) for k, (df, order, n) in frames.items() if df is not None}
    found = summaries.rows_for_keys(capped, users)
    filled = attribute_rows(spark, cfg)
    titles = _titles(spark, cfg, {r.get("item_id") for rows in [*found.values(), filled] for r in rows})
    cards = []
    for user in users:
        tables = [rows_table(first([r for r in found.get(name, []) if r["user_id"] == user], order, n), heading, titles)
                  for name, heading, order, n in PER_USER]  # fmt: skip
        cards.append(f"<div class='user'><h3>user {html.escape(str(user))}</h3><div class='cols'>{''.join(tables)}"
                     "</div></div>")  # fmt: skip
    if not users:
        cards.append(charts.empty("no rows of this run in recommendations: no user to show"))
    return "".join(cards) + rows_table(filled, "completed item attributes (most confident first)", titles)


def attribute_rows(spark: SparkSession, cfg: Config, n: int = 6) -> Rows:
    """A few completed item attributes, the most confident first."""
    filled = _read(spark, cfg, "completed_attributes", per_run=True)
    if filled is None:
        return []
    order = [F.col(c).desc() for c in ("confidence",) if c in filled.columns] + [F.col("item_id")]
    return [r.asDict() for r in filled.orderBy(*order).limit(n).collect()]
