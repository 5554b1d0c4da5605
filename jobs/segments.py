"""Segments: interest segments of the catalogue, what each user is into, and how segments trend.

Item vectors (in the space users are compared in: centred when `embed.center_items`) are clustered by cosine with
MLlib (`segments.k`, or the best silhouette over `segments.k_grid`) and labelled (attribute share, central items,
distinctive terms; `behaviorlm.labels`). Writes, replaced per run id: `segments(segment_id, label, name, top_terms,
medoid_items, attribute_value, attribute_share, n_items, n_users, cohesion)`, `item_segments(item_id, segment_id,
similarity)`, `user_interests(user_id, segment_id, weight, recent_share, label, name)` and
`segment_trends(segment_id, period_start, behaviors, share, change, z_score, alert)`. Items without a valid vector
get no segment; their behaviours are skipped and counted (`skipped_behaviors`).
Run: `behaviorlm segments --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.config import Config
from behaviorlm.interests import segment_trends, segment_users, user_interests
from behaviorlm.labels import describe_segments
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.segments import choose_k, cluster_items, silhouette
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)
COLUMNS = ["segment_id", "label", "name", "top_terms", "medoid_items", "attribute_value", "attribute_share", "n_items",
           "n_users", "cohesion"]  # fmt: skip


def item_vectors(spark: SparkSession, cfg: Config) -> DataFrame:
    """Valid item vectors in the space the clustering runs in."""
    raw = params.table(spark, cfg, "item_embeddings").select("item_id", "embedding")
    valid, _ = split_valid(raw, vector_dim(raw), id_col="item_id")
    return params.item_space(cfg, valid)


def segment(cfg: Config, vectors: DataFrame) -> tuple[DataFrame, dict[str, float]]:
    """(item_segments, metrics k and silhouette) with k as configured or chosen from the grid."""
    s = cfg.segments
    k = s.k
    if k == 0:
        k, scores = choose_k(vectors, s.k_grid, s.silhouette_sample, cfg.seed, s.algorithm, s.max_iter,
                             min_size=s.min_segment_size)  # fmt: skip
        log.info("cosine silhouette by k: %s -> k=%d", {k: round(v, 4) for k, v in scores.items()}, k)
    found = cluster_items(vectors, k, cfg.seed, s.algorithm, s.max_iter, min_size=s.min_segment_size)
    found = found.persist(StorageLevel.MEMORY_AND_DISK)
    metrics = {
        "k": found.select("segment_id").distinct().count(),
        "silhouette": silhouette(vectors, found, s.silhouette_sample, cfg.seed),
    }
    if metrics["k"] < k:  # the log said k before: say why fewer segments are written
        log.info("%d segments of k=%d: k is at most the items - 1, and segments under segments.min_segment_size=%d "
                 "items are dissolved", metrics["k"], k, s.min_segment_size)  # fmt: skip
    return found, metrics


def labelled_interests(cfg: Config, behaviors: DataFrame, found: DataFrame, table: DataFrame) -> DataFrame:
    s = cfg.segments
    interests = user_interests(behaviors, found, s.per_user, s.half_life_days, s.recent_days, cfg.embed.event_weights)
    labelled = interests.join(F.broadcast(table.select("segment_id", "label", "name")), "segment_id", "left")
    return labelled.select("user_id", "segment_id", "weight", "recent_share", "label", "name")


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    s = cfg.segments
    vectors = item_vectors(spark, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    found, metrics = segment(cfg, vectors)
    # Read by four outputs: scanned once.
    columns = ["user_id", "item_id", "event_type", "rating", "ts"]
    behaviors = params.table(spark, cfg, "behaviors").select(columns).persist(StorageLevel.MEMORY_AND_DISK)
    described = describe_segments(params.table(spark, cfg, "items"), found, s.label_terms, s.label_items,
                                  s.attribute, seed=cfg.seed)  # fmt: skip
    table = described.join(segment_users(behaviors, found), "segment_id", "left").fillna(0, ["n_users"]).cache()
    interests = labelled_interests(cfg, behaviors, found, table).persist(StorageLevel.MEMORY_AND_DISK)
    trends = segment_trends(behaviors, found, s.period, s.trend_window, s.alert_z).cache()
    outputs = {"segments": table.select(*COLUMNS), "item_segments": found, "user_interests": interests,
               "segment_trends": trends}  # fmt: skip
    for name, frame in outputs.items():
        save_run(frame, cfg, name)
    metrics |= {
        "items": found.count(),
        "users": interests.select("user_id").distinct().count(),
        "alerts": trends.where("alert").count(),
        "skipped_behaviors": behaviors.join(found, "item_id", "left_anti").count(),
    }
    log.info("segments: %s", metrics)
    for row in table.orderBy(F.col("n_items").desc(), "segment_id").limit(5).collect():
        log.info("segment %d (%d items, %d users): %s", row["segment_id"], row["n_items"], row["n_users"], row["label"])
    write_metrics(spark, cfg, "segments", metrics)
    for frame in (vectors, found, behaviors, table, interests, trends):
        frame.unpersist()
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Interest segments, user interests and segment trends.", "segments", run)


if __name__ == "__main__":
    main()
