"""Run report: one self-contained HTML file per run, for a reader. Charts are matplotlib PNGs embedded as data URIs
(`jobs/charts.py`), so the file opens offline, from a mail attachment or in Databricks `displayHTML`. Sections:
- quality: each backtest metric as bars of ours vs popularity vs ALS (one scale per metric; the published anchors as
  dashed lines where the run used their protocol), and the run's own checks (ANN recall, holdout errors);
- stages: seconds and rows per stage of this run beside the previous run of the same tables;
- examples: a few users with their latest behaviours, recommendations with reasons, predicted next behaviours and
  completed ratings; completed item attributes (`jobs/report_examples.py`);
- users: a 2-D PCA map coloured by top interest segment, the largest segments labelled; segment trends with alerts;
- neighbour-similarity histogram, categories recommended most, rejected rows by reason, embedding health, and every
  metric of the run in a table.

Only small aggregates reach the driver (`behaviorlm.summaries`): histogram counts, top-n counts, at most
`report.sample_users` projected points and `report.example_users` users' rows. Written to
`report.dir/run-<run_id>.html` (a local path, or a Hadoop file system URI except on Spark Connect:
`behaviorlm.files`); `behaviorlm run` writes it last and logs the path. The `report` job then tracks the run in MLflow
(`jobs/tracking.py`), as `behaviorlm run` does after it.
Run: `behaviorlm report --conf conf/local.yaml --run-id <run id>`.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import runs, summaries
from behaviorlm.config import Config
from behaviorlm.files import check_writable, read_text, write_text
from jobs import charts, params, report_examples, tracking
from jobs.runtime import job_main

log = logging.getLogger(__name__)
BINS = 20
NO_GENRE = "(no genre)"
MODELS = ("behaviorlm", "popularity", "als")
INGEST_REJECTS = ("rejected_behaviors", "rejected_items")
RANKING = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate", "coverage")
# Microsoft Recommenders' published ML-100K results (stratified 75/25 split, k=10): drawn only for that protocol.
ANCHORS = {"ndcg_at_k": {"BPR": 0.442, "BiVAE": 0.475}, "precision_at_k": {"BPR": 0.388, "BiVAE": 0.412}}
# The run's own checks, by (stage, metric prefix): ANN recall against exact search, holdout errors, validation hits.
CHECKS = (("similar_users", "recall_at_"), ("complete", "holdout_"), ("predict", "validation_hr"),
          ("segments", "silhouette"), ("intents", "in_scope"))  # fmt: skip
Metric = tuple[str, str, float]
# The report's fingerprint (see `fingerprint`), in its head: a build for the same metrics keeps the file.
_STAMP = "<meta name='behaviorlm-fingerprint' content='%s'>"
STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}"
         "td,th{padding:2px 10px;text-align:left;vertical-align:top}tr:nth-child(even){background:#f4f4f4}"
         "img.chart{max-width:100%}.empty{color:#888}.user{border:1px solid #ddd;border-radius:6px;padding:0 1em;"
         "margin:1em 0}.cols{display:flex;flex-wrap:wrap;gap:1.5em}.note{color:#555}")  # fmt: skip


def _run_rows(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    """This run's rows of table `name`; None when the table is missing or has none."""
    df = params.maybe_table(spark, cfg, name)
    df = df.where(F.col("run_id") == cfg.run_id) if df is not None else None
    return df if df is not None and not df.isEmpty() else None


def _no_rows(**frames: DataFrame | None) -> str:
    """A section's note naming the tables among `frames` that have no rows in this run."""
    return charts.empty(f"no rows of this run in {', '.join(name for name, df in frames.items() if df is None)}")


def short_label(label: str, width: int = 40) -> str:
    """A segment label's first two parts (dominant value, first central item), cut to `width` characters."""
    parts = [p.split(",")[0].strip() for p in label.split(" · ")[:2]]
    text = " · ".join(p for p in parts if p)
    return text if len(text) <= width else text[: width - 1] + "…"


def quality(metrics: list[Metric], k: int) -> dict[str, dict[str, float]]:
    """Backtest metric -> {model: value} from the evaluate stage's `<model>.<metric>` rows."""
    ev = {m: v for s, m, v in metrics if s == "evaluate"}
    found = {name: {m: ev[f"{m}.{name}"] for m in MODELS if f"{m}.{name}" in ev} for name in RANKING}
    return {name.replace("_at_k", f"@{k}"): row for name, row in found.items() if row}


def anchors(cfg: Config) -> dict[str, dict[str, float]]:
    """The published anchors, keyed like `quality`, when this run's data and split are their protocol."""
    ev = cfg.evaluate
    same = cfg.ingest.source == "movielens" and ev.split == "stratified" and ev.ratio == 0.75 and ev.k == 10
    return {name.replace("_at_k", "@10"): values for name, values in ANCHORS.items()} if same else {}


def checks(metrics: list[Metric]) -> list[Metric]:
    """The metrics named in `CHECKS`, in that order."""
    return [(s, m, v) for stage, prefix in CHECKS for s, m, v in metrics if s == stage and m.startswith(prefix)]


def metrics_table(metrics: list[Metric]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{html.escape(m)}</td><td>{v:.4g}</td></tr>" for s, m, v in metrics
    )
    return f"<table><tr><th>stage</th><th>metric</th><th>value</th></tr>{rows}</table>"


def stage_times(spark: SparkSession, cfg: Config) -> str:
    """Seconds and rows (or users) per stage (stage `run`'s `<stage>.seconds` / `.rows` / `.users`) in the order the
    stages finished, beside the previous run of the same tables (of the other runs that timed one of these stages,
    the one whose timings were written last)."""
    table = params.maybe_table(spark, cfg, "run_metrics")
    if table is None:
        return charts.EMPTY
    timed = table.where((F.col("stage") == "run") & F.col("metric").rlike(r"\.(seconds|rows|users)$"))
    # Only a run that timed one of this run's stages compares (not the ingest run before it, say).
    mine = timed.where(F.col("run_id") == cfg.run_id).select("metric").distinct()
    previous = (timed.where(F.col("run_id") != cfg.run_id).join(mine, "metric").groupBy("run_id")
                .agg(F.max("updated_at").alias("t")).orderBy(F.col("t").desc(), "run_id").first())  # fmt: skip
    runs = [cfg.run_id] + ([previous["run_id"]] if previous else [])
    rows = timed.where(F.col("run_id").isin(runs)).orderBy("updated_at", "metric").collect()
    values: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        stage, kind = r["metric"].rsplit(".", 1)
        values.setdefault((r["run_id"], kind), {})[stage] = r["value"]
    seconds = values.get((cfg.run_id, "seconds"), {})
    before = values.get((runs[-1], "seconds")) if previous else None
    counted = {unit: values.get((cfg.run_id, unit), {}) for unit in ("users", "rows")}  # rows win: listed last
    notes = {stage: f"{n:,.0f} {unit}" for unit, found in counted.items() for stage, n in found.items()}
    chart = charts.stage_bars(seconds, before, notes, alt="seconds per stage")
    note = f"<p class='note'>Previous run: {html.escape(runs[-1])}.</p>" if previous else ""
    return chart + note


def similarity_chart(spark: SparkSession, cfg: Config) -> str:
    neighbors = _run_rows(spark, cfg, "user_neighbors")
    if neighbors is None:
        return _no_rows(user_neighbors=None)
    bins = summaries.histogram(neighbors, "similarity", -1.0, 1.0, BINS)
    return charts.histogram(bins, 2.0 / BINS, "cosine similarity of each user to a neighbour", alt="similarity")


def segment_map(spark: SparkSession, cfg: Config, n_labels: int = 10) -> str:
    """Users (PCA sample) coloured by their top interest segment, the largest segments labelled."""
    users = params.maybe_table(spark, cfg, "user_embeddings")
    if users is None:
        return charts.empty("no user_embeddings table")
    interests, segments = _run_rows(spark, cfg, "user_interests"), _run_rows(spark, cfg, "segments")
    top = None
    if interests is not None and segments is not None:
        top = interests.groupBy("user_id").agg(F.max_by("segment_id", "weight").alias("group"))
    points = summaries.projection(users, cfg.report.sample_users, cfg.seed, top)
    if not points:
        return charts.empty("fewer than 3 users with a vector: too few to map")
    if top is None:
        return charts.scatter(points, alt="users")
    rows = segments.orderBy(F.col("n_users").desc(), "segment_id").limit(n_labels).collect()
    return charts.scatter(points, {r["segment_id"]: short_label(r["label"] or "") for r in rows}, alt="segment map")


def trend_chart(spark: SparkSession, cfg: Config, n_series: int = 6) -> str:
    """Each of the largest segments' share of behaviours per period, alerts ringed."""
    trends, segments = _run_rows(spark, cfg, "segment_trends"), _run_rows(spark, cfg, "segments")
    if trends is None or segments is None:
        return _no_rows(segment_trends=trends, segments=segments)
    biggest = trends.groupBy("segment_id").agg(F.sum("behaviors").alias("n")).orderBy(F.col("n").desc(), "segment_id")
    names = {r["segment_id"]: short_label(r["label"] or "") for r in segments.select("segment_id", "label").collect()}
    picked = [r["segment_id"] for r in biggest.limit(n_series).collect()]
    rows = trends.where(F.col("segment_id").isin(picked)).orderBy("period_start").collect()
    series: dict[str, list[tuple[str, float, bool]]] = {}
    for r in rows:
        name = f"{r['segment_id']}: {names.get(r['segment_id'], '')}"
        series.setdefault(name, []).append((str(r["period_start"])[:10], float(r["share"] or 0.0), bool(r["alert"])))
    return charts.lines(series, "share of behaviours", alt="segment trends")


def categories_chart(spark: SparkSession, cfg: Config, n: int = 15) -> str:
    """The genres (or other array category) of this run's recommended items, most frequent first."""
    recs, items = _run_rows(spark, cfg, "recommendations"), params.maybe_table(spark, cfg, "items")
    if recs is None:
        return _no_rows(recommendations=None)
    if items is None or "genres" not in items.columns:
        return charts.empty("the items have no genres column")
    return charts.hbars(category_counts(recs, items, n), "recommendations", alt="categories")


def category_counts(recs: DataFrame, items: DataFrame, n: int) -> list[tuple[str, int]]:
    """The `n` most frequent genres of the recommended items; an item without any (or unknown to the catalogue) is
    counted under `NO_GENRE`: a chart of the others alone would overstate them."""
    joined = recs.select("item_id").join(items.select("item_id", "genres"), "item_id", "left")
    has = F.coalesce(F.size("genres"), F.lit(0)) > 0
    genres = F.when(has, F.col("genres")).otherwise(F.array(F.lit(NO_GENRE)))
    return summaries.top_counts(joined.withColumn("genres", genres), "genres", n)


def rejected_counts(spark: SparkSession, cfg: Config) -> tuple[str | None, list[tuple[str, int]]]:
    """(ingest's latest run, [("table: reason", rows)]): ingest's rejected rows of its latest run only (in
    `ingest.mode: append` each day's batch adds its own rows to the rejected tables, and a reader wants today's, not
    the sum of every day's), and similar-users' rejects."""
    metrics = params.maybe_table(spark, cfg, "run_metrics")
    batch = runs.latest_stage_run(metrics, "ingest") if metrics is not None else None
    found = []
    for name in (*INGEST_REJECTS, "neighbor_rejects"):
        df = params.maybe_table(spark, cfg, name)
        if df is None:
            continue
        if name in INGEST_REJECTS and batch is not None and "run_id" in df.columns:
            df = df.where(F.col("run_id") == batch)
        found += [(f"{name}: {reason}", n) for reason, n in sorted(summaries.top_counts(df, "reason", 50))]
    return batch, found


def rejected_chart(spark: SparkSession, cfg: Config) -> str:
    batch, found = rejected_counts(spark, cfg)
    note = f"<p class='note'>ingest's rows: its latest run, {html.escape(batch)}</p>" if batch else ""
    return note + (charts.hbars(found, "rows", alt="rejected rows") if found else "<p>No rejected rows.</p>")


def embedding_health(metrics: list[Metric], limits: dict[str, float]) -> str | None:
    """A small table of embed-items' readability shares against their limits; None when the run has none."""
    rows = [(m, v) for s, m, v in metrics if s == "embed_items" and m in limits]
    if not rows:
        return None
    cells = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{v:.3f}</td><td>{limits[m]:.3f}</td>"
        f"<td>{'over the limit: the model cannot read most of the item text' if v > limits[m] else 'ok'}</td></tr>"
        for m, v in rows
    )
    return f"<table><tr><th>metric</th><th>value</th><th>limit</th><th></th></tr>{cells}</table>"


def render(run_id: str, metrics: list[Metric], sections: dict[str, str], key: str = "") -> str:
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections.items())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{_STAMP % key}"
        f"<title>behaviorlm run {html.escape(run_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>behaviorlm run {html.escape(run_id)}</h1><p>written {stamp}</p>"
        f"{body}<h2>All metrics of the run</h2><details><summary>{len(metrics)} metrics</summary>"
        f"{metrics_table(metrics)}</details></body></html>"
    )


def fingerprint(cfg: Config, metrics: list[Metric]) -> str:
    """What the report is a function of: the run's metrics (every stage that runs writes its seconds there, so any
    stage run changes them) and the report's own settings."""
    return hashlib.sha1(repr((metrics, cfg.report.model_dump())).encode()).hexdigest()[:16]


def run_metrics(spark: SparkSession, cfg: Config) -> list[Metric]:
    table = params.maybe_table(spark, cfg, "run_metrics")
    if table is None:
        return []
    rows = table.where(F.col("run_id") == cfg.run_id).orderBy("stage", "metric").collect()
    return [(r["stage"], r["metric"], r["value"] if r["value"] is not None else float("nan")) for r in rows]


def build(spark: SparkSession, cfg: Config) -> str:
    """Gather the report's aggregates and write it; returns its path. A report already written for the same metrics
    (a re-run that ran no stage: a stage notebook or task finding its stage done) is kept as it is."""
    check_writable(spark, cfg.report.dir, "report.dir")
    metrics = run_metrics(spark, cfg)
    path = os.path.join(cfg.report.dir, f"run-{cfg.run_id}.html")
    stamp = fingerprint(cfg, metrics)
    if _STAMP % stamp in (read_text(spark, path) or "")[:2000]:
        log.info("run report: %s (up to date: no stage wrote metrics since)", path)
        return path
    sections = {
        "Quality: offline backtest, ours beside popularity and ALS": charts.grouped_bars(
            quality(metrics, cfg.evaluate.k), anchors(cfg), alt="quality"),
        "This run's own checks: ANN recall, holdout errors, validation hits": metrics_table(checks(metrics)),
        "Stages: seconds and rows": stage_times(spark, cfg),
        "Examples": report_examples.examples(spark, cfg),
        "Interest segments: users (2-D PCA) by top segment": segment_map(spark, cfg),
        "Segment trends: share of behaviours per period (alerts ringed)": trend_chart(spark, cfg),
        "Neighbour similarity": similarity_chart(spark, cfg),
        "Categories recommended most": categories_chart(spark, cfg),
        "Rejected rows by reason": rejected_chart(spark, cfg),
    }  # fmt: skip
    health = embedding_health(metrics, {"unknown_token_share": cfg.embed.max_unknown_token_share,
                                        "identical_pair_share": cfg.embed.max_identical_pair_share})  # fmt: skip
    if health is not None:
        sections["Embedding health"] = health
    write_text(spark, path, render(cfg.run_id, metrics, sections, stamp))
    log.info("run report: %s", path)
    return path


def build_and_track(spark: SparkSession, cfg: Config) -> str:
    """The report (`build`), then the run tracked in MLflow with it (`jobs.tracking`; the Airflow DAG's last task is
    this job); returns the report's path."""
    path = build(spark, cfg)
    tracking.track(spark, cfg, path)
    return path


def main(argv: list[str] | None = None) -> str:
    return job_main(argv, "Write the HTML report of one run and track the run in MLflow.", "report", build_and_track,
                    timed_stage=False)  # fmt: skip
