"""Synthetic behaviour logs of any size with planted taste clusters, generated inside Spark.

Every value is a hash of (seed, row id, salt), so the output depends only on the config, never on partitioning,
and 10M events need no driver memory. Each user and each item belongs to one of `clusters` taste clusters; a user's
events hit items of their own cluster with probability `in_cluster` (popular items more often), and in-cluster
ratings are high. Item titles and descriptions use the cluster's vocabulary, so a text encoder can see the
clusters too: neighbours and recommendations have a ground truth (`user_clusters`, `item_clusters`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.schemas import BEHAVIOR_COLUMNS, ITEM_COLUMNS
from behaviorlm.vectors import l2_normalize

THEMES = [
    ["space", "galaxy", "rocket", "alien", "planet", "orbit", "starship", "comet"],
    ["detective", "murder", "alibi", "clue", "suspect", "inspector", "witness", "heist"],
    ["love", "wedding", "heart", "kiss", "romance", "letters", "summer", "promise"],
    ["dragon", "wizard", "kingdom", "spell", "sword", "quest", "castle", "prophecy"],
    ["war", "soldier", "battle", "general", "front", "platoon", "empire", "siege"],
    ["ghost", "haunted", "curse", "zombie", "vampire", "nightmare", "blood", "shadow"],
    ["cowboy", "sheriff", "frontier", "outlaw", "ranch", "saloon", "desert", "gold"],
    ["comedy", "prank", "party", "roommates", "vacation", "wacky", "mixup", "fools"],
    ["music", "band", "concert", "dance", "song", "stage", "rhythm", "melody"],
    ["ocean", "pirate", "island", "sailor", "treasure", "storm", "harbor", "reef"],
    ["robot", "android", "cyber", "hacker", "machine", "virtual", "circuit", "code"],
    ["family", "puppy", "school", "holiday", "kids", "adventure", "friendship", "home"],
]
GENRES = [
    "Sci-Fi", "Mystery", "Romance", "Fantasy", "War", "Horror", "Western", "Comedy", "Musical", "Adventure",
    "Thriller", "Children's",
]  # fmt: skip
EVENTS = [("view", 0.55), ("click", 0.2), ("rating", 0.2), ("purchase", 0.05)]
_BASE_TS = 1_600_000_000
_YEAR_SECONDS = 365 * 86_400
_RES = 1 << 30


@dataclass(frozen=True)
class Spec:
    """What to generate (`ingest.synthetic` in the config has the same fields)."""

    users: int = 1000
    items: int = 500
    events: int = 20000
    clusters: int = 8
    seed: int = 42
    in_cluster: float = 0.8  # share of a user's events inside their own taste cluster
    bad_fraction: float = 0.0  # share of events corrupted on purpose
    partitions: int = 8


def _uniform(seed: int, key: Column, salt: int) -> Column:
    """A deterministic uniform [0, 1) value for (seed, key, salt)."""
    return F.pmod(F.xxhash64(F.lit(seed), key, F.lit(salt)), F.lit(_RES)) / float(_RES)


def _pick(options: list[str], index: Column) -> Column:
    return F.element_at(F.array(*[F.lit(o) for o in options]), (index % len(options) + 1).cast("int"))


def user_clusters(spark: SparkSession, cfg: Spec) -> DataFrame:
    """Ground truth: (user_id, cluster) for every synthetic user."""
    uid = F.col("id")
    cluster = (_uniform(cfg.seed, uid, 1) * cfg.clusters).cast("int")
    return spark.range(cfg.users, numPartitions=cfg.partitions).select(
        F.concat(F.lit("u"), uid.cast("string")).alias("user_id"), cluster.alias("cluster")
    )


def item_clusters(spark: SparkSession, cfg: Spec) -> DataFrame:
    """Ground truth: (item_id, cluster); item i belongs to cluster i mod clusters."""
    return spark.range(cfg.items, numPartitions=cfg.partitions).select(
        F.concat(F.lit("i"), F.col("id").cast("string")).alias("item_id"),
        (F.col("id") % cfg.clusters).cast("int").alias("cluster"),
    )


def generate_items(spark: SparkSession, cfg: Spec) -> DataFrame:
    """Raw items: cluster vocabulary in title and description, one or two genres, a year."""
    iid = F.col("id")
    theme = F.col("cluster") % len(THEMES)
    words = F.element_at(F.array(*[F.array(*[F.lit(w) for w in t]) for t in THEMES]), (theme + 1).cast("int"))

    def word(salt: int) -> Column:
        return F.element_at(words, (_uniform(cfg.seed, iid, salt) * 8).cast("int") + 1)

    genre = _pick(GENRES, F.col("cluster"))
    second = F.when(_uniform(cfg.seed, iid, 14) < 0.3, _pick(GENRES, F.col("cluster") + 5))
    return (
        spark.range(cfg.items, numPartitions=cfg.partitions)
        .withColumn("cluster", iid % cfg.clusters)
        .select(
            F.concat(F.lit("i"), iid.cast("string")).alias("item_id"),
            F.initcap(F.concat_ws(" ", F.lit("the"), word(11), word(12), F.lit("of"), word(13))).alias("title"),
            F.concat_ws(" ", F.lit("A story of"), word(15), F.lit("and"), word(16), F.lit("with a"), word(17)).alias(
                "description"
            ),
            F.filter(F.array(genre, second), lambda g: g.isNotNull()).alias("genres"),
            (F.lit(1950) + (_uniform(cfg.seed, iid, 18) * 75).cast("int")).alias("year"),
        )
        .select(ITEM_COLUMNS)
    )


def generate_behaviors(spark: SparkSession, cfg: Spec) -> DataFrame:
    """Raw behaviour events; `bad_fraction` of them are corrupted in one of five ways to exercise quarantine."""
    eid = F.col("id")
    user = (_uniform(cfg.seed, eid, 2) * cfg.users).cast("long")
    ucluster = (_uniform(cfg.seed, user, 1) * cfg.clusters).cast("long")
    in_cluster = _uniform(cfg.seed, eid, 3) < cfg.in_cluster
    # Items of cluster c are c, c + C, c + 2C, ...; squaring a uniform skews picks towards popular (low) indices.
    per_cluster = F.floor((F.lit(cfg.items - 1) - ucluster) / cfg.clusters) + 1
    local = F.floor(F.pow(_uniform(cfg.seed, eid, 4), 2) * per_cluster).cast("long")
    item = F.when(in_cluster & (per_cluster > 0), ucluster + local * cfg.clusters).otherwise(
        (_uniform(cfg.seed, eid, 5) * cfg.items).cast("long")
    )
    r = _uniform(cfg.seed, eid, 6)
    cumulative, event = 0.0, None
    for name, share in EVENTS[:-1]:  # chained when: the first bound above r wins
        cumulative += share
        event = (F.when if event is None else event.when)(r < cumulative, F.lit(name))
    event = event.otherwise(F.lit(EVENTS[-1][0]))
    noise = _uniform(cfg.seed, eid, 7)
    rating = F.when(
        F.col("event_type") == "rating",
        F.when(F.col("in_cluster"), F.lit(4.0) + (noise < 0.5).cast("double")).otherwise(
            F.lit(1.0) + F.floor(noise * 3)
        ),
    )
    ts = F.lit(_BASE_TS) + (_uniform(cfg.seed, eid, 8) * _YEAR_SECONDS).cast("long")
    events = (
        spark.range(cfg.events, numPartitions=cfg.partitions)
        .withColumn("in_cluster", in_cluster)
        .withColumn("event_type", event)
        .select(
            eid,
            F.concat(F.lit("u"), user.cast("string")).alias("user_id"),
            F.concat(F.lit("i"), item.cast("string")).alias("item_id"),
            F.col("event_type"),
            rating.alias("rating"),
            ts.cast("string").alias("ts"),
            F.lit(None).cast("string").alias("text"),
        )
    )
    return _corrupt(events, cfg).select(BEHAVIOR_COLUMNS)


def _corrupt(events: DataFrame, cfg: Spec) -> DataFrame:
    if cfg.bad_fraction <= 0:
        return events
    eid = F.col("id")
    bad = _uniform(cfg.seed, eid, 9) < cfg.bad_fraction
    kind = (_uniform(cfg.seed, eid, 10) * 4).cast("int")

    def spoil(column: str, k: int, value: object) -> Column:
        return F.when(bad & (kind == k), F.lit(value)).otherwise(F.col(column)).alias(column)

    return events.select(
        eid,
        spoil("user_id", 0, None),
        F.col("item_id"),
        F.when(bad & (kind == 1), F.lit("teleport"))
        .when(bad & (kind == 2), F.lit("rating"))
        .otherwise(F.col("event_type"))
        .alias("event_type"),
        spoil("rating", 2, 99.0),
        spoil("ts", 3, "not-a-time"),
        F.col("text"),
    )


def _normal(seed: int, key: Column, dim: Column, salt: int) -> Column:
    """A deterministic standard normal for (seed, key, dim) by Box-Muller on two hash uniforms."""
    u1 = (F.pmod(F.xxhash64(F.lit(seed), key, dim, F.lit(salt)), F.lit(_RES)) + 1) / float(_RES + 1)
    u2 = F.pmod(F.xxhash64(F.lit(seed), key, dim, F.lit(salt + 1)), F.lit(_RES)) / float(_RES)
    return F.sqrt(-2 * F.log(u1)) * F.cos(2 * 3.141592653589793 * u2)


def clustered_vectors(
    spark: SparkSession,
    users: int,
    dim: int,
    clusters: int,
    noise: float,
    seed: int,
    partitions: int = 8,
    *,
    mix: float = 0.0,
    skew: float = 1.0,
) -> DataFrame:
    """(user_id, embedding, cluster): unit vectors around `clusters` random centres, for similarity tests and
    benchmarks at any size. `noise` is the per-dimension spread relative to a centre's (1 / sqrt(dim)).

    The defaults give separate, equally likely clusters. `mix` > 0 makes them overlap: each vector also leans
    towards a second random centre with a weight drawn uniformly from [0, mix), so a vector's nearest neighbours
    are spread over several clusters. `skew` > 1 makes cluster sizes uneven (cluster = clusters x u ** skew for a
    uniform u): a few crowded clusters and a long tail, as interests are."""
    uid = F.col("id")
    cluster = (F.pow(_uniform(seed, uid, 21), F.lit(skew)) * clusters).cast("long")
    second = (_uniform(seed, uid, 23) * clusters).cast("long")
    weight = _uniform(seed, uid, 25) * mix

    def value(d: Column) -> Column:
        own = _normal(seed, cluster, d, 31) + F.lit(noise) * _normal(seed, uid, d, 41)
        return own + weight * _normal(seed, second, d, 31) if mix else own

    raw = spark.range(users, numPartitions=partitions).select(
        F.concat(F.lit("u"), uid.cast("string")).alias("user_id"),
        F.transform(F.sequence(F.lit(0), F.lit(dim - 1)), value).alias("_v"),
        cluster.cast("int").alias("cluster"),
    )
    return raw.select("user_id", l2_normalize(F.col("_v")).alias("embedding"), "cluster")
