"""Similar users: for every user the K most similar other users by cosine similarity, written to
`user_neighbors(user_id, neighbor_id, rank, similarity, run_id)` (replaced per run id, so re-runs are idempotent).
The search is `behaviorlm.neighbors.top_k` (an inverted-file index, or exact with `neighbors.mode=exact` or up to
`neighbors.exact_below` users, where exact search costs less). Recall@K against exact search on a random sample of
users is measured on every approximate search and written to `run_metrics`. Users whose vector is missing, of the
wrong size, zero or not finite are not searched: they are listed in `neighbor_rejects(user_id, reason, run_id)`, as
are users of `behaviors` that embed-users gave no vector (`no_vector`).
Run: `behaviorlm similar-users --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm.config import Config
from behaviorlm.neighbors import recall_at_k, searched_exactly, split_valid, unembedded, vector_dim
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    nb = cfg.neighbors
    users = params.table(spark, cfg, "user_embeddings")
    valid, rejected = split_valid(users, vector_dim(users))
    behaviors = params.maybe_table(spark, cfg, "behaviors")
    if behaviors is not None:
        rejected = rejected.unionByName(unembedded(behaviors, users))
    valid = valid.persist(StorageLevel.MEMORY_AND_DISK)
    n = valid.count()
    found = params.neighbors(cfg, valid).persist(StorageLevel.MEMORY_AND_DISK)
    save_run(found.select("user_id", "neighbor_id", "rank", "similarity"), cfg, "user_neighbors")
    n_rejected = save_run(rejected, cfg, "neighbor_rejects")
    want = min(nb.k, max(n - 1, 0))
    underfilled = n - found.groupBy("user_id").count().where(F.col("count") >= want).count()
    exact = nb.mode == "exact" or searched_exactly(n, nb.k, nb.exact_below)
    metrics = {"users": n, "underfilled_users": underfilled, "rejected_users": n_rejected, "exact": float(exact)}
    if not exact:  # exact search is its own reference: nothing to measure
        recall = recall_at_k(found, valid, nb.k, nb.recall_sample, cfg.seed, cfg.block_size)
        metrics[f"recall_at_{nb.k}"] = recall
    found.unpersist()
    valid.unpersist()
    log.info("neighbours for %d users (k=%d, %s): %s", n, nb.k, "exact" if exact else "approx", metrics)
    write_metrics(spark, cfg, "similar_users", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Top-K similar users (approximate, distributed) into user_neighbors.", "similar-users", run)


if __name__ == "__main__":
    main()
