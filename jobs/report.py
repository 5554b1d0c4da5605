"""Run report: one self-contained HTML file per run (charts are inline SVG, no external files or libraries) with the
run's metrics from `run_metrics`, the neighbour-similarity histogram, recall@K, the segment map (a 2-D PCA of a
sample of user embeddings coloured by each user's top interest segment, the largest segments labelled), the segment
trend chart (share of behaviours per period, alerts ringed), the categories most recommended, and the rejected rows
by reason (charts: `jobs/charts.py`).

Only small aggregates reach the driver: histogram counts, per-reason counts, top categories, and at most
`report.sample_users` projected 2-D points. Written to `report.dir/run-<run_id>.html` (local path or any Hadoop file
system URI); `behaviorlm run` writes it last and logs the path. The `report` job then tracks the run in MLflow
(`jobs/tracking.py`), as `behaviorlm run` does after it.
Run: `behaviorlm report --conf conf/local.yaml --run-id <run id>`.
"""

from __future__ import annotations

import html
import logging
import os
from datetime import datetime, timezone

from pyspark.ml.feature import PCA
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from jobs import charts, tracking
from jobs.runtime import job_main

log = logging.getLogger(__name__)
BINS = 20
Point = tuple[float, float, int]


def _table(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    ref = delta.table_ref(cfg.tables, name)
    return delta.read_table(spark, ref) if delta.table_exists(spark, ref) else None


def _run_rows(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    """This run's rows of table `name`; None when the table is missing or has none."""
    df = _table(spark, cfg, name)
    df = df.where(F.col("run_id") == cfg.run_id) if df is not None else None
    return df if df is not None and not df.isEmpty() else None


def similarity_histogram(neighbors: DataFrame, bins: int = BINS) -> list[tuple[float, int]]:
    """(bin start, count) over [-1, 1] in `bins` equal bins, counted in Spark."""
    width = 2.0 / bins
    idx = F.least(F.floor((F.col("similarity") + 1.0) / width), F.lit(bins - 1)).cast("int")
    counts = {r["b"]: r["n"] for r in neighbors.groupBy(idx.alias("b")).agg(F.count("*").alias("n")).collect()}
    return [(-1.0 + b * width, counts.get(b, 0)) for b in range(bins)]


def projection(users: DataFrame, sample: int, seed: int, groups: DataFrame | None = None) -> list[Point]:
    """2-D PCA coordinates of a seeded sample of at most `sample` user vectors, each with its group from
    `groups(user_id, group)` (-1 without one)."""
    picked = users.orderBy(F.xxhash64("user_id", F.lit(seed))).limit(sample)
    if groups is not None:
        picked = picked.join(groups, "user_id", "left")
    group = F.col("group") if groups is not None else F.lit(None)
    vectors = picked.select(array_to_vector("embedding").alias("v"), F.coalesce(group, F.lit(-1)).alias("g"))
    if vectors.limit(3).count() < 3:
        return []
    model = PCA(k=2, inputCol="v", outputCol="p").fit(vectors)
    rows = model.transform(vectors).select(vector_to_array("p").alias("p"), "g").collect()
    return [(float(r["p"][0]), float(r["p"][1]), int(r["g"])) for r in rows]


def short_label(label: str, width: int = 40) -> str:
    """A segment label's first two parts (dominant value, first central item), cut to `width` characters."""
    parts = [p.split(",")[0].strip() for p in label.split(" · ")[:2]]
    text = " · ".join(p for p in parts if p)
    return text if len(text) <= width else text[: width - 1] + "…"


def segment_map(spark: SparkSession, cfg: Config, users: DataFrame, n_labels: int = 10) -> str | None:
    """Users (PCA sample) coloured by their top interest segment, the largest segments labelled; None without
    this run's segments."""
    interests, segments = _run_rows(spark, cfg, "user_interests"), _run_rows(spark, cfg, "segments")
    if interests is None or segments is None:
        return None
    top = interests.groupBy("user_id").agg(F.max_by("segment_id", "weight").alias("group"))
    points = projection(users, cfg.report.sample_users, cfg.seed, top)
    rows = segments.orderBy(F.col("n_users").desc(), "segment_id").limit(n_labels).collect()
    return charts.scatter(points, {r["segment_id"]: short_label(r["label"] or "") for r in rows})


def trend_chart(spark: SparkSession, cfg: Config, n_series: int = 6) -> str | None:
    """Each of the largest segments' share of behaviours per period, alerts ringed; None without this run's trends."""
    trends, segments = _run_rows(spark, cfg, "segment_trends"), _run_rows(spark, cfg, "segments")
    if trends is None or segments is None:
        return None
    biggest = trends.groupBy("segment_id").agg(F.sum("behaviors").alias("n")).orderBy(F.col("n").desc(), "segment_id")
    names = {r["segment_id"]: short_label(r["label"] or "") for r in segments.select("segment_id", "label").collect()}
    picked = [r["segment_id"] for r in biggest.limit(n_series).collect()]
    rows = trends.where(F.col("segment_id").isin(picked)).orderBy("period_start").collect()
    series: dict[str, list[tuple[str, float, bool]]] = {}
    for r in rows:
        name = f"{r['segment_id']}: {names.get(r['segment_id'], '')}"
        series.setdefault(name, []).append((str(r["period_start"])[:10], float(r["share"] or 0.0), bool(r["alert"])))
    return charts.lines(series)


def top_categories(recs: DataFrame, items: DataFrame, n: int = 15) -> list[tuple[str, int]]:
    """The genres (or other array category) of recommended items, most frequent first."""
    if "genres" not in items.columns:
        return []
    genres = recs.join(items.select("item_id", F.explode("genres").alias("g")), "item_id")
    rows = genres.groupBy("g").count().orderBy(F.col("count").desc(), "g").limit(n).collect()
    return [(r["g"], r["count"]) for r in rows]


def rejected_by_reason(spark: SparkSession, cfg: Config) -> list[tuple[str, str, int]]:
    out = []
    for name in ("rejected_behaviors", "rejected_items", "neighbor_rejects"):
        df = _table(spark, cfg, name)
        if df is not None:
            out += [(name, r["reason"], r["count"]) for r in df.groupBy("reason").count().orderBy("reason").collect()]
    return out


def embedding_health(metrics: list[tuple[str, str, float]], limits: dict[str, float]) -> str | None:
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


def render(run_id: str, metrics: list[tuple[str, str, float]], sections: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{html.escape(m)}</td><td>{v:.4g}</td></tr>" for s, m, v in metrics
    )
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections.items())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>behaviorlm run {html.escape(run_id)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}td,th{padding:2px 10px;text-align:left}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>behaviorlm run {html.escape(run_id)}</h1><p>written {stamp}</p>{body}"
        f"<h2>All metrics of the run</h2><table><tr><th>stage</th><th>metric</th><th>value</th></tr>{rows}</table>"
        "</body></html>"
    )


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a text file locally, or through Hadoop's file system API for URIs (dbfs:/, s3a://, abfss://...)."""
    if "://" not in path and not path.startswith("dbfs:"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    jvm = spark._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = jpath.getFileSystem(spark._jsc.hadoopConfiguration()).create(jpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def build(spark: SparkSession, cfg: Config) -> str:
    """Gather the report's aggregates and write it; returns its path."""
    run_id = cfg.run_id
    metrics_df = _table(spark, cfg, "run_metrics")
    metrics = []
    if metrics_df is not None:
        rows = metrics_df.where(F.col("run_id") == run_id).orderBy("stage", "metric").collect()
        metrics = [(r["stage"], r["metric"], r["value"] if r["value"] is not None else float("nan")) for r in rows]
    sections: dict[str, str] = {}
    headline = [(f"{s}: {m}", v) for s, m, v in metrics if m.startswith(("recall_at", "behaviorlm.", "holdout_"))]
    sections["Quality"] = charts.bars([(k, round(v, 4)) for k, v in headline])
    health = embedding_health(metrics, {"unknown_token_share": cfg.embed.max_unknown_token_share,
                                        "identical_pair_share": cfg.embed.max_identical_pair_share})  # fmt: skip
    if health is not None:
        sections["Embedding health"] = health
    neighbors = _table(spark, cfg, "user_neighbors")
    if neighbors is not None:
        hist = similarity_histogram(neighbors.where(F.col("run_id") == run_id))
        sections["Neighbour similarity"] = charts.bars([(f"{lo:+.1f}", n) for lo, n in hist if n])
    users = _table(spark, cfg, "user_embeddings")
    if users is not None:
        users = users.where(F.col("embedding").isNotNull())
        sections["Interest segments: users (2-D PCA) by top segment"] = segment_map(spark, cfg, users) or (
            charts.scatter(projection(users, cfg.report.sample_users, cfg.seed))
        )
    trends = trend_chart(spark, cfg)
    if trends is not None:
        sections["Segment trends: share of behaviours per period (alerts ringed)"] = trends
    recs, items = _table(spark, cfg, "recommendations"), _table(spark, cfg, "items")
    if recs is not None and items is not None:
        top = top_categories(recs.where(F.col("run_id") == run_id), items)
        sections["Categories recommended most"] = charts.bars([(g, n) for g, n in top])
    rejected = rejected_by_reason(spark, cfg)
    sections["Rejected rows by reason"] = charts.bars([(f"{t}: {r}", n) for t, r, n in rejected])
    path = os.path.join(cfg.report.dir, f"run-{run_id}.html")
    write_text(spark, path, render(run_id, metrics, sections))
    log.info("run report: %s", path)
    return path


def build_and_track(spark: SparkSession, cfg: Config) -> str:
    """The report (`build`), then the run tracked in MLflow with it (`jobs.tracking`; the Airflow DAG's last task is
    this job); returns the report's path."""
    path = build(spark, cfg)
    tracking.track(spark, cfg, path)
    return path


def main(argv: list[str] | None = None) -> str:
    return job_main(argv, "Write the HTML report of one run and track the run in MLflow.", "report", build_and_track)


if __name__ == "__main__":
    main()
