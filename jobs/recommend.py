"""Recommend: the top-K unseen items per user into `recommendations(user_id, item_id, rank, score, source, reason,
run_id)`, replaced per run id (a re-run leaves the same rows). The blend of neighbour CF, content and popularity,
and its reasons, are `behaviorlm.scoring`; weights in `recommend.weights`. Users come from the behaviours plus the
optional `recommend.users` table (users without history get popular items). Neighbours are this run's
`user_neighbors` rows, or (a stage run on its own) those of the run written last.
Its metrics count where the text did work: items nobody has touched that reached a list, thin-history users.
Run: `behaviorlm recommend --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.scoring import PARTS, Inputs, recommend
from behaviorlm.text import display_titles
from behaviorlm.validate import check_columns, parse_id
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)


def read_inputs(spark: SparkSession, cfg: Config, behaviors: DataFrame | None = None) -> Inputs:
    """What recommend reads: this run's neighbours, valid user vectors, centred item vectors, the users to serve."""
    behaviors = params.table(spark, cfg, "behaviors") if behaviors is None else behaviors
    users = behaviors.select("user_id")
    if cfg.recommend.users:
        requested = delta.read_source(spark, cfg.recommend.users, "delta", setting="recommend.users")
        check_columns(requested, f"recommend.users ({cfg.recommend.users})", {}, ["user_id"])
        # Ids read as ingest reads them ("  u1 " is u1, 123.0 is 123), so a requested user is found by its history.
        ids = requested.select(parse_id(F.col("user_id"), requested.schema["user_id"].dataType).alias("user_id"))
        if blank := ids.where(F.col("user_id").isNull()).count():
            log.warning("recommend.users (%s): %d row(s) with a null or blank user_id, skipped", cfg.recommend.users,
                        blank)  # fmt: skip
        users = users.unionByName(ids)
    stored_items = params.table(spark, cfg, "item_embeddings")
    user_vectors = params.stored_users(spark, cfg, stored_items)
    # Only vectors similar-users would search: a zero or NaN vector must never score (NaN sorts above every number).
    valid, _ = split_valid(user_vectors, vector_dim(user_vectors))
    neighbors = params.run_rows(spark, cfg, "user_neighbors", "similar_users")
    return Inputs(
        behaviors=behaviors,
        items=display_titles(params.table(spark, cfg, "items")),
        item_vectors=params.item_space(cfg, stored_items).persist(StorageLevel.MEMORY_AND_DISK),
        user_vectors=valid,
        neighbors=neighbors.select("user_id", "neighbor_id", "similarity"),
        users=users.where(F.col("user_id").isNotNull()).distinct().persist(StorageLevel.MEMORY_AND_DISK),
    )


def release(inp: Inputs) -> None:
    inp.item_vectors.unpersist()
    inp.users.unpersist()


def summary(table: DataFrame, inp: Inputs, k: int, thin_history: int) -> dict[str, float]:
    """Served users, users short of k items, the share of each source, and what a data team reads the text
    encoder's work from: items in the lists that no behaviour has touched (only their text can put them there),
    users with no history (popular items) and users with at most `thin_history` items (the thin blend)."""
    per_user = table.groupBy("user_id").count()
    counts = {r["source"]: r["count"] for r in table.groupBy("source").count().collect()}
    total = max(sum(counts.values()), 1)
    touched = inp.behaviors.select("item_id").distinct()
    new_items = table.select("item_id").distinct().join(touched, "item_id", "left_anti").count()
    seen = inp.behaviors.groupBy("user_id").agg(F.count_distinct("item_id").alias("n"))
    history = inp.users.join(seen, "user_id", "left").fillna(0, ["n"])
    sizes = history.agg(F.count("*").alias("all"), F.sum((F.col("n") == 0).cast("int")).alias("none"),
                        F.sum(F.col("n").between(1, thin_history).cast("int")).alias("thin")).first()  # fmt: skip
    n_users = sizes["all"]
    short = n_users - per_user.where(F.col("count") >= k).count()
    return {"users": n_users, "rows": sum(counts.values()), "users_short": short, "items_without_history": new_items,
            "users_without_history": sizes["none"] or 0, "users_thin": sizes["thin"] or 0,
            **{f"share_{p}": counts.get(p, 0) / total for p in PARTS}}  # fmt: skip


def example_lines(table: DataFrame, items: DataFrame, n_users: int) -> list[str]:
    """A few users' lists as text (deterministic pick), for the log and the demo."""
    picked = table.select("user_id").distinct().orderBy(F.xxhash64("user_id"), "user_id").limit(n_users)
    rows = (
        table.join(picked, "user_id")
        .join(items.select("item_id", "title"), "item_id", "left")
        .orderBy(F.xxhash64("user_id"), "user_id", "rank")
        .collect()
    )
    lines, last = [], None
    for r in rows:
        if r["user_id"] != last:
            lines.append(f"user {r['user_id']}:")
            last = r["user_id"]
        lines.append(f"  {r['rank']:>2}. {r['title'] or r['item_id']}  [{r['source']} {r['score']:.3f}] {r['reason']}")
    return lines


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    inp = read_inputs(spark, cfg)
    rec = cfg.recommend
    items = params.item_model(cfg, params.items_weight(cfg, rec.weights))
    onboarding, settled = params.settled_onboarding(cfg, inp.behaviors, inp.item_vectors)
    recs = recommend(inp, params.strength(cfg), rec.weights, rec.k, rec.similarity_power, rec.content_candidates,
                     cfg.block_size, items, params.thin(cfg), onboarding)  # fmt: skip
    columns = ["user_id", "item_id", F.col("rank").cast("int"), F.col("score").cast("double"), "source", "reason"]
    save_run(recs.select(columns), cfg, "recommendations")
    recs.unpersist()
    table = params.table(spark, cfg, "recommendations").where(F.col("run_id") == cfg.run_id)
    metrics = {**summary(table, inp, rec.k, rec.thin.max_history), **settled}
    log.info("recommendations for %d users: %s", metrics["users"], metrics)
    if metrics["rows"]:
        log.info("examples:\n%s", "\n".join(example_lines(table, inp.items, 3)))
    write_metrics(spark, cfg, "recommend", metrics)
    release(inp)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Top-K recommendations (neighbours + content + popularity) into recommendations.",
                    "recommend", run)  # fmt: skip


if __name__ == "__main__":
    main()
