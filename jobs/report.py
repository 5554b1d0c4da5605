"""Run report: one self-contained HTML file per run (charts are inline SVG, no external files or libraries) with the
run's metrics from `run_metrics`, the neighbour-similarity histogram, recall@K, a 2-D projection (PCA) of a sample of
user embeddings, the categories most recommended, and the rejected rows by reason.

Only small aggregates reach the driver: histogram counts, per-reason counts, top categories, and at most
`report.sample_users` projected 2-D points. Written to `report.dir/run-<run_id>.html` (local path or any Hadoop file
system URI); `behaviorlm run` writes it last and logs the path.
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
from jobs.runtime import job_main

log = logging.getLogger(__name__)
BINS = 20


def _table(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    ref = delta.table_ref(cfg.tables, name)
    return delta.read_table(spark, ref) if delta.table_exists(spark, ref) else None


def similarity_histogram(neighbors: DataFrame, bins: int = BINS) -> list[tuple[float, int]]:
    """(bin start, count) over [-1, 1] in `bins` equal bins, counted in Spark."""
    width = 2.0 / bins
    idx = F.least(F.floor((F.col("similarity") + 1.0) / width), F.lit(bins - 1)).cast("int")
    counts = {r["b"]: r["n"] for r in neighbors.groupBy(idx.alias("b")).agg(F.count("*").alias("n")).collect()}
    return [(-1.0 + b * width, counts.get(b, 0)) for b in range(bins)]


def projection(users: DataFrame, sample: int, seed: int) -> list[tuple[float, float]]:
    """2-D PCA coordinates of a seeded sample of at most `sample` user vectors."""
    picked = users.orderBy(F.xxhash64("user_id", F.lit(seed))).limit(sample)
    vectors = picked.select(array_to_vector("embedding").alias("v"))
    if vectors.limit(3).count() < 3:
        return []
    model = PCA(k=2, inputCol="v", outputCol="p").fit(vectors)
    rows = model.transform(vectors).select(vector_to_array("p").alias("p")).collect()
    return [(float(r["p"][0]), float(r["p"][1])) for r in rows]


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


def _bars(items: list[tuple[str, float]], width: int = 640, bar: int = 18) -> str:
    """Horizontal bar chart as inline SVG."""
    if not items:
        return "<p>(no data)</p>"
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        w = (width - 260) * value / top
        y = i * (bar + 4)
        rows.append(
            f'<text x="0" y="{y + bar - 4}" font-size="12">{html.escape(str(label))}</text>'
            f'<rect x="170" y="{y}" width="{w:.1f}" height="{bar}" fill="#4c78a8"/>'
            f'<text x="{175 + w:.1f}" y="{y + bar - 4}" font-size="12">{value:g}</text>'
        )
    return f'<svg width="{width}" height="{len(items) * (bar + 4)}">{"".join(rows)}</svg>'


def _scatter(points: list[tuple[float, float]], size: int = 420) -> str:
    if not points:
        return "<p>(no user vectors)</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def scale(v: float, lo: float, hi: float) -> float:
        return 10 + (size - 20) * (v - lo) / ((hi - lo) or 1)

    dots = "".join(
        f'<circle cx="{scale(x, x0, x1):.1f}" cy="{size - scale(y, y0, y1):.1f}" r="2" fill="#e45756" '
        f'fill-opacity="0.5"/>'
        for x, y in points
    )
    return f'<svg width="{size}" height="{size}" style="border:1px solid #ccc">{dots}</svg>'


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
    sections["Quality"] = _bars([(k, round(v, 4)) for k, v in headline])
    health = embedding_health(metrics, {"unknown_token_share": cfg.embed.max_unknown_token_share,
                                        "identical_pair_share": cfg.embed.max_identical_pair_share})  # fmt: skip
    if health is not None:
        sections["Embedding health"] = health
    neighbors = _table(spark, cfg, "user_neighbors")
    if neighbors is not None:
        hist = similarity_histogram(neighbors.where(F.col("run_id") == run_id))
        sections["Neighbour similarity"] = _bars([(f"{lo:+.1f}", n) for lo, n in hist if n])
    users = _table(spark, cfg, "user_embeddings")
    if users is not None:
        points = projection(users.where(F.col("embedding").isNotNull()), cfg.report.sample_users, 42)
        sections[f"User embeddings, 2-D PCA of {len(points)} users"] = _scatter(points)
    recs, items = _table(spark, cfg, "recommendations"), _table(spark, cfg, "items")
    if recs is not None and items is not None:
        top = top_categories(recs.where(F.col("run_id") == run_id), items)
        sections["Categories recommended most"] = _bars([(g, n) for g, n in top])
    rejected = rejected_by_reason(spark, cfg)
    sections["Rejected rows by reason"] = _bars([(f"{t}: {r}", n) for t, r, n in rejected])
    path = os.path.join(cfg.report.dir, f"run-{run_id}.html")
    write_text(spark, path, render(run_id, metrics, sections))
    log.info("run report: %s", path)
    return path


def main(argv: list[str] | None = None) -> str:
    return job_main(argv, "Write the HTML report of one run.", "report", build)


if __name__ == "__main__":
    main()
