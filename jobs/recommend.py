"""Recommend: the top-K unseen items per user into `recommendations(user_id, item_id, rank, score, source, reason,
run_id)`, replaced per run id (a re-run leaves the same rows).

The score blends three parts, each on a 0..1-ish scale, with `recommend.weights`:
- `neighbors`: items the user's approximate neighbours (`user_neighbors`) interacted with; each neighbour votes
  similarity ** `similarity_power` x its interaction strength (event weight, moved up or down by its rating centred
  on its own mean); votes are summed and divided by the user's best item, so every user's top CF item scores 1.
- `content`: cosine of the user vector with the item vector (both centred on the catalogue mean, as embed-users
  pools them). Candidates come from a blocked user x item product (`similar_users.exact_neighbors`), so the
  catalogue never has to fit in one task, and items nobody touched yet (cold items) can be recommended.
- `popularity`: log(1 + users who interacted) / log(1 + the most), the fallback that gives users with no history
  (cold users, from the optional `recommend.users` table) K items.
Items the user already interacted with are never recommended. `source` is the part with the largest weighted
contribution; `reason` says in words why (neighbour votes, the closest item in the user's own history, popularity).
Run: `behaviorlm recommend --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import Config
from jobs.embed_users import map_lookup
from jobs.runtime import job_main, write_metrics
from jobs.validate import check_columns
from jobs.vectors import center
from udfs.device import task_device
from udfs.topk import block_scores, closest_rows

log = logging.getLogger(__name__)
PARTS = ("neighbors", "content", "popularity")
HISTORY_FOR_REASON = 50  # strongest history items per user searched for the "close to ..." part of a reason


@dataclass(frozen=True)
class Inputs:
    """What the recommender reads, already in the shape it needs."""

    behaviors: DataFrame  # canonical behaviours (the user's history)
    items: DataFrame  # item_id, title
    item_vectors: DataFrame  # item_id, embedding (unit, centred like the user vectors)
    user_vectors: DataFrame  # user_id, embedding
    neighbors: DataFrame  # user_id, neighbor_id, similarity
    users: DataFrame  # user_id: everyone to serve


def interaction_strength(
    behaviors: DataFrame, weights: dict[str, float], rating_min: float, rating_max: float, centering: float
) -> DataFrame:
    """(user_id, item_id, strength > 0): the event-type weight, times 1 + centering x (rating - the user's mean
    rating) / (rating range) for rated events; the strongest event per (user, item) counts."""
    mean = F.avg("rating").over(Window.partitionBy("user_id"))
    deviation = F.coalesce((F.col("rating") - mean) / F.lit(rating_max - rating_min), F.lit(0.0))
    weight = F.coalesce(map_lookup(weights, F.col("event_type")), F.lit(0.0))
    strength = weight * F.greatest(F.lit(0.0), 1.0 + F.lit(centering) * deviation)
    return (
        behaviors.withColumn("strength", strength.cast("double"))
        .groupBy("user_id", "item_id")
        .agg(F.max("strength").alias("strength"))
        .where(F.col("strength") > 0)
    )


def neighbor_scores(neighbors: DataFrame, strengths: DataFrame, power: float, seen: DataFrame) -> DataFrame:
    """(user_id, item_id, neighbors, voters, top_neighbor): summed neighbour votes on items the user has not `seen`,
    scaled so each user's best unseen item scores 1."""
    votes = neighbors.select(
        "user_id", "neighbor_id", F.pow(F.greatest(F.col("similarity"), F.lit(0.0)), F.lit(power)).alias("vote")
    ).join(strengths.withColumnRenamed("user_id", "neighbor_id"), "neighbor_id")
    vote = F.col("vote") * F.col("strength")
    summed = (
        votes.join(seen, ["user_id", "item_id"], "left_anti")
        .groupBy("user_id", "item_id")
        .agg(
            F.sum(vote).alias("_raw"), F.count("*").alias("voters"), F.max_by("neighbor_id", vote).alias("top_neighbor")
        )
    )
    best = F.max("_raw").over(Window.partitionBy("user_id"))
    return summed.withColumn("neighbors", F.col("_raw") / best).drop("_raw").where(F.col("neighbors") > 0)


def content_scores(
    user_vectors: DataFrame, item_vectors: DataFrame, wanted: DataFrame, m: int, block: int
) -> DataFrame:
    """(user_id, item_id, content): each user's `m` highest-cosine items plus the cosine of every (user, item) pair
    in `wanted`, from one blocked user x item product (`udfs.topk.block_scores`, BLAS per block), so neither the
    users nor the catalogue has to fit in one task."""
    n_items, n_users = item_vectors.count(), user_vectors.count()
    i_blocks, u_blocks = max(1, math.ceil(n_items / block)), max(1, math.ceil(n_users / block))
    item_block = F.pmod(F.xxhash64("item_id"), F.lit(i_blocks)).cast("int")
    lists = wanted.withColumn("ib", item_block).groupBy("user_id", "ib").agg(F.collect_list("item_id").alias("wanted"))
    users = (
        user_vectors.select(
            F.col("user_id").alias("user_id"),
            F.col("embedding").alias("embedding"),
            F.pmod(F.xxhash64("user_id"), F.lit(u_blocks)).cast("int").alias("ub"),
            F.explode(F.sequence(F.lit(0), F.lit(i_blocks - 1))).alias("ib"),
        )
        .join(lists, ["user_id", "ib"], "left")
        .select("ub", "ib", "user_id", "embedding", "wanted")
    )
    items = item_vectors.select(
        F.explode(F.sequence(F.lit(0), F.lit(u_blocks - 1))).alias("ub"),
        item_block.alias("ib"),
        F.col("item_id").alias("item_id"),
        F.col("embedding").alias("embedding"),
    )

    def score(q: pd.DataFrame, c: pd.DataFrame) -> pd.DataFrame:
        return block_scores(q, c, m, task_device())

    schema = "user_id string, item_id string, content float, top boolean, wanted boolean"
    scored = users.groupBy("ub", "ib").cogroup(items.groupBy("ub", "ib")).applyInPandas(score, schema)
    if i_blocks > 1:  # the best m of each block -> the best m overall
        order = Window.partitionBy("user_id", "top").orderBy(F.col("content").desc(), F.col("item_id"))
        scored = scored.withColumn("top", F.col("top") & (F.row_number().over(order) <= m))
    return scored.where(F.col("top") | F.col("wanted")).select("user_id", "item_id", F.col("content").cast("double"))


def popularity(strengths: DataFrame) -> DataFrame:
    """(item_id, pop_users, popularity, pop_rank): users who interacted, log-scaled to 0..1, and the rank."""
    counts = strengths.groupBy("item_id").agg(F.countDistinct("user_id").alias("pop_users"))
    top = counts.agg(F.max("pop_users").alias("_max"))
    order = Window.orderBy(F.col("pop_users").desc(), F.col("item_id"))
    return (
        counts.crossJoin(F.broadcast(top))
        .withColumn("popularity", F.log1p("pop_users") / F.log1p("_max"))
        .withColumn("pop_rank", F.row_number().over(order))
        .drop("_max")
    )


def popular_candidates(seen_counts: DataFrame, pop: DataFrame, k: int) -> DataFrame:
    """(user_id, item_id): the k + (items the user has seen) most popular items, so k remain after removing seen."""
    ranks = seen_counts.select("user_id", F.explode(F.sequence(F.lit(1), F.lit(k) + F.col("n_seen"))).alias("pop_rank"))
    return ranks.join(pop.select("item_id", "pop_rank"), "pop_rank").select("user_id", "item_id")


def candidates(inp: Inputs, cfg: Config, power: float) -> DataFrame:
    """Every (user, unseen item) any part proposes, with all three part scores (0 where a part is silent)."""
    rec = cfg.recommend
    strengths = interaction_strength(
        inp.behaviors, cfg.embed.event_weights, cfg.ingest.rating_min, cfg.ingest.rating_max, rec.rating_centering
    )
    seen = inp.behaviors.select("user_id", "item_id").distinct()
    seen_counts = inp.users.join(seen.groupBy("user_id").agg(F.count("*").alias("n_seen")), "user_id", "left")
    seen_counts = seen_counts.fillna(0, ["n_seen"])
    cf = neighbor_scores(inp.neighbors, strengths, power, seen)
    pop = popularity(strengths)
    proposed = (
        cf.select("user_id", "item_id")
        .unionByName(popular_candidates(seen_counts, pop, rec.k))
        .join(seen, ["user_id", "item_id"], "left_anti")
        .distinct()
    )
    content = content_scores(inp.user_vectors, inp.item_vectors, proposed, rec.content_candidates, rec.block_size)
    keys = proposed.unionByName(content.select("user_id", "item_id")).distinct()
    return (
        keys.join(inp.users, "user_id")
        .join(seen, ["user_id", "item_id"], "left_anti")
        .join(cf, ["user_id", "item_id"], "left")
        .join(content, ["user_id", "item_id"], "left")
        .join(pop.select("item_id", "popularity", "pop_users"), "item_id", "left")
        .fillna(0.0, ["neighbors", "content", "popularity"])
        .fillna(0, ["voters", "pop_users"])
    )


def blend(cands: DataFrame, weights: dict[str, float], k: int) -> DataFrame:
    """Top-k per user by the weighted sum of the parts (ties: item id), with `rank`, `score` and `source`."""
    parts = {p: F.lit(weights.get(p, 0.0)) * F.col(p) for p in PARTS}
    score = parts["neighbors"] + parts["content"] + parts["popularity"]
    best = F.greatest(*parts.values())
    # Nothing positive (a cold user's never-touched item): call it popularity, the part that filled the slot.
    source = (
        F.when(best <= 0, "popularity")
        .when(parts["neighbors"] == best, "neighbors")
        .when(parts["content"] == best, "content")
    )
    order = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("item_id"))
    return (
        cands.withColumn("score", score)
        .withColumn("source", source.otherwise("popularity"))
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
    )


def closest_history(top: DataFrame, inp: Inputs) -> DataFrame:
    """(user_id, item_id, close): per recommended item, the title of the most similar item (by embedding) among the
    user's strongest `HISTORY_FOR_REASON` history items; one small matrix product per user."""
    strongest = Window.partitionBy("user_id").orderBy(F.col("w").desc(), F.col("item_id"))
    history = (
        inp.behaviors.groupBy("user_id", "item_id")
        .agg(F.max(F.coalesce("rating", F.lit(0.0))).alias("w"))
        .withColumn("_r", F.row_number().over(strongest))
        .where(F.col("_r") <= HISTORY_FOR_REASON)
        .join(inp.item_vectors, "item_id")
        .join(inp.items, "item_id")
        .select("user_id", F.col("title").alias("label"), "embedding")
    )
    targets = top.select("user_id", "item_id").join(inp.item_vectors, "item_id")
    return (
        targets.groupBy("user_id")
        .cogroup(history.groupBy("user_id"))
        .applyInPandas(closest_rows, "user_id string, item_id string, label string")
        .withColumnRenamed("label", "close")
    )


def explain(top: DataFrame, inp: Inputs, n_neighbors: int) -> DataFrame:
    """Adds `reason`: neighbour votes, content cosine or popularity, and the closest item in the user's history."""
    close = F.when(F.col("close").isNotNull(), F.format_string("; close to %s from your history", "close"))
    votes = F.format_string("%d of your %d nearest users chose it (strongest vote: user %s)", "voters",
                            F.lit(n_neighbors), "top_neighbor")  # fmt: skip
    reason = (
        F.when(F.col("source") == "neighbors", votes)
        .when(F.col("source") == "content", F.format_string("matches your taste profile (cosine %.2f)", "content"))
        .otherwise(F.format_string("popular: %d users interacted with it", "pop_users"))
    )
    return (
        top.join(closest_history(top, inp), ["user_id", "item_id"], "left")
        .withColumn("reason", F.concat(reason, F.coalesce(close, F.lit(""))))
        .drop("close")
    )


def neighbors_for_run(neighbors: DataFrame, run_id: str) -> DataFrame:
    """The neighbours written under `run_id`; when that run wrote none (a stage run on its own), the latest run's."""
    if neighbors.where(F.col("run_id") == run_id).limit(1).count():
        return neighbors.where(F.col("run_id") == run_id)
    latest = neighbors.agg(F.max("run_id")).first()[0]
    log.warning("user_neighbors has no rows for run %s; using the latest run %s", run_id, latest)
    return neighbors.where(F.col("run_id") == latest)


def read_inputs(spark: SparkSession, cfg: Config) -> Inputs:
    def table(name: str) -> DataFrame:
        return delta_io.read_table(spark, delta_io.table_ref(cfg.tables, name))

    behaviors = table("behaviors")
    item_vectors = table("item_embeddings").select("item_id", "embedding")
    if cfg.embed.center_items:
        item_vectors = center(item_vectors)
    users = behaviors.select("user_id")
    if cfg.recommend.users:
        requested = delta_io.read_source(spark, cfg.recommend.users, "delta")
        check_columns(requested, f"recommend.users ({cfg.recommend.users})", {}, ["user_id"])
        users = users.unionByName(requested.select(F.col("user_id").cast("string")))
    neighbors = neighbors_for_run(table("user_neighbors"), cfg.run_id)
    return Inputs(
        behaviors=behaviors,
        items=table("items").select("item_id", "title"),
        item_vectors=item_vectors.persist(StorageLevel.MEMORY_AND_DISK),
        user_vectors=table("user_embeddings").select("user_id", "embedding"),
        neighbors=neighbors.select("user_id", "neighbor_id", "similarity"),
        users=users.where(F.col("user_id").isNotNull()).distinct().persist(StorageLevel.MEMORY_AND_DISK),
    )


def recommend(inp: Inputs, cfg: Config, weights: dict[str, float] | None = None, power: float | None = None):
    """Top-K recommendations with reasons for every user in `inp.users` (not yet written)."""
    rec = cfg.recommend
    cands = candidates(inp, cfg, rec.similarity_power if power is None else power)
    top = blend(cands, rec.weights if weights is None else weights, rec.k)
    return explain(top, inp, cfg.neighbors.k)


def summary(table: DataFrame, users: DataFrame, k: int) -> dict[str, float]:
    """Served users, users short of k items, and the share of each source."""
    per_user = table.groupBy("user_id").count()
    n_users = users.count()
    counts = {r["source"]: r["count"] for r in table.groupBy("source").count().collect()}
    total = max(sum(counts.values()), 1)
    short = n_users - per_user.where(F.col("count") >= k).count()
    return {"users": n_users, "rows": total, "users_short": short,
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


def _with_run(df: DataFrame, run_id: str) -> DataFrame:
    rank, score = F.col("rank").cast("int"), F.col("score").cast("double")
    return df.select("user_id", "item_id", rank, score, "source", "reason", F.lit(run_id).alias("run_id"))


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    inp = read_inputs(spark, cfg)
    target = delta_io.table_ref(cfg.tables, "recommendations")
    delta_io.replace_where(_with_run(recommend(inp, cfg), cfg.run_id), target, f"run_id = '{cfg.run_id}'")
    table = delta_io.read_table(spark, target).where(F.col("run_id") == cfg.run_id)
    metrics = summary(table, inp.users, cfg.recommend.k)
    log.info("recommendations for %d users: %s", metrics["users"], metrics)
    log.info("examples:\n%s", "\n".join(example_lines(table, inp.items, 3)))
    write_metrics(spark, cfg, "recommend", metrics)
    inp.item_vectors.unpersist()
    inp.users.unpersist()
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Top-K recommendations (neighbours + content + popularity) into recommendations.",
                    "recommend", run)  # fmt: skip


if __name__ == "__main__":
    main()
