"""Similar users: for every user the K most similar other users by cosine similarity, written to
`user_neighbors(user_id, neighbor_id, rank, similarity, run_id)` (replaced per run id, so re-runs are idempotent).

Approximate mode is an inverted-file index built the Spark way. Spherical k-means centroids are trained on a
bounded random sample (the only vectors that reach the driver); every user gets a home cell (its nearest centroid)
and probes its `nprobe` nearest cells. Each (cell, chunk) is one task: the users probing the cell are scored against
the cell's members with one matrix product (`udfs.topk`, numpy BLAS or torch on a task's GPU), in
`cogroup(...).applyInPandas`, so no task holds more than one block of candidates and no N x N join exists. Cells
bigger than `max_cell_size` are split into chunks, so a popular cell does not become one skewed task. Results are
merged per user; a user who found fewer than min(K, N-1) neighbours is searched exactly (rare, and cheap for few).
Exact mode tiles all users into blocks and scores every block pair the same way: the reference, and fine for small
data. Recall@K against exact search on a random sample of users is measured on every run and written to
`run_metrics`. Users whose vector is missing, of the wrong size, zero or not finite are not searched: they are
listed in `neighbor_rejects(user_id, reason, run_id)`.

Why this design: it uses only DataFrame primitives every Spark has (no native ANN library on executors), its work
is dense BLAS that a CPU or GPU runs near peak, and its recall is tuned by one knob (`nprobe`).
Run: `behaviorlm similar-users --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from jobs import delta_io
from jobs.config import Config
from jobs.runtime import job_main, write_metrics
from udfs.device import task_device
from udfs.topk import block_topk

log = logging.getLogger(__name__)
PAIR_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("neighbor_id", StringType()),
        StructField("similarity", FloatType()),
    ]
)


def split_valid(users: DataFrame, dim: int) -> tuple[DataFrame, DataFrame]:
    """(valid users, rejected users with reason). Valid: a finite, non-zero vector of `dim` floats."""
    emb = F.col("embedding")
    norm = F.aggregate(emb, F.lit(0.0), lambda acc, x: acc + x * x)
    reason = (
        F.when(emb.isNull(), "missing_embedding")
        .when(F.size(emb) != dim, "wrong_dimension")
        .when(F.exists(emb, lambda x: F.isnan(x) | (F.abs(x) == float("inf"))), "non_finite_embedding")
        .when(norm < 1e-12, "zero_embedding")
    )
    tagged = users.select("user_id", "embedding", reason.alias("reason"))
    return tagged.where("reason is null").drop("reason"), tagged.where("reason is not null").drop("embedding")


def train_centroids(users: DataFrame, cells: int, sample: int, iterations: int, seed: int) -> np.ndarray:
    """Spherical k-means on a bounded, seeded sample of user vectors."""
    picked = users.orderBy(F.xxhash64("user_id", F.lit(seed))).limit(sample).select("embedding").collect()
    data = np.array([r["embedding"] for r in picked], dtype=np.float32)
    rng = np.random.default_rng(seed)
    cells = min(cells, len(data))
    centroids = data[rng.choice(len(data), cells, replace=False)]
    for _ in range(iterations):
        assign = np.argmax(data @ centroids.T, axis=1)
        for c in range(cells):
            members = data[assign == c]
            # An empty cell restarts at a random point rather than dying.
            mean = members.sum(axis=0) if len(members) else data[rng.integers(len(data))]
            centroids[c] = mean / max(np.linalg.norm(mean), 1e-12)
    return centroids


def assign_cells(users: DataFrame, centroids: np.ndarray, nprobe: int) -> DataFrame:
    """Adds `home` (nearest cell) and `probes` (the `nprobe` nearest cells, home first)."""
    bc = users.sparkSession.sparkContext.broadcast(centroids)
    probes = min(nprobe, len(centroids))

    def assign(batches):
        cents = bc.value
        for pdf in batches:
            sims = np.stack(pdf["embedding"].to_numpy()) @ cents.T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :probes]
            yield pdf.assign(home=top[:, 0].astype(np.int32), probes=list(top.astype(np.int32)))

    return users.mapInPandas(assign, "user_id string, embedding array<float>, home int, probes array<int>")


def topk_by_key(
    queries: DataFrame, candidates: DataFrame, keys: list[str], k: int, exclude_self: bool = True
) -> DataFrame:
    """Per key group: exact top-k candidates per query (both frames have `keys`, user_id, embedding)."""

    def score(q: pd.DataFrame, c: pd.DataFrame) -> pd.DataFrame:
        return block_topk(q, c, k, task_device(), exclude_self)

    # Fresh aliases: both sides usually derive from one DataFrame, which cogroup would reject as ambiguous.
    cols = [F.col(c).alias(c) for c in [*keys, "user_id", "embedding"]]
    return (
        queries.select(cols)
        .groupBy(*keys)
        .cogroup(candidates.select(cols).groupBy(*keys))
        .applyInPandas(score, PAIR_SCHEMA)
    )


def best_k(pairs: DataFrame, k: int) -> DataFrame:
    """Merge per-block results: the k best per user, ranked by similarity then neighbour id (deterministic)."""
    order = Window.partitionBy("user_id").orderBy(F.col("similarity").desc(), F.col("neighbor_id"))
    return pairs.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)


def exact_neighbors(
    queries: DataFrame, candidates: DataFrame, k: int, block_size: int, n: int, exclude_self: bool = True
) -> DataFrame:
    """Blockwise exact search: candidates in ceil(n / block_size) blocks, each scored against every query block.
    Also scores users against items (`exclude_self=False`, items passed with their id as `user_id`)."""
    blocks = max(1, math.ceil(n / block_size))
    q_blocks = max(1, math.ceil(queries.count() / block_size)) if blocks > 1 else 1
    # Keys must have one type on both sides (int): cogroup matches groups by their hashed key values.
    cand = candidates.withColumn("cb", F.pmod(F.xxhash64("user_id"), F.lit(blocks)).cast("int"))
    cand = cand.withColumn("qb", F.explode(F.sequence(F.lit(0), F.lit(q_blocks - 1))))
    qry = queries.withColumn("qb", F.pmod(F.xxhash64("user_id", F.lit(1)), F.lit(q_blocks)).cast("int"))
    qry = qry.withColumn("cb", F.explode(F.sequence(F.lit(0), F.lit(blocks - 1))))
    return best_k(topk_by_key(qry, cand, ["qb", "cb"], k, exclude_self), k)


def approx_neighbors(users: DataFrame, cfg: Config, n: int) -> DataFrame:
    nb = cfg.neighbors
    cells = nb.cells or max(1, round(math.sqrt(n)))
    centroids = train_centroids(users, cells, nb.train_sample, nb.kmeans_iters, nb.seed)
    assigned = assign_cells(users, centroids, nb.nprobe).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = assigned.groupBy("home").count().collect()  # one row per cell: small
    chunks = {r["home"]: max(1, math.ceil(r["count"] / nb.max_cell_size)) for r in sizes}
    chunk_df = users.sparkSession.createDataFrame(list(chunks.items()), "cell int, chunks int")
    cand = assigned.join(F.broadcast(chunk_df), assigned.home == chunk_df.cell).withColumn(
        "chunk", F.pmod(F.xxhash64("user_id"), F.col("chunks")).cast("int")
    )
    qry = (
        assigned.withColumn("cell", F.explode("probes"))
        .join(F.broadcast(chunk_df), "cell")
        .withColumn("chunk", F.explode(F.sequence(F.lit(0), F.col("chunks") - 1)))
    )
    found = best_k(topk_by_key(qry, cand, ["cell", "chunk"], nb.k), nb.k).persist(StorageLevel.MEMORY_AND_DISK)
    want = min(nb.k, n - 1)
    short = found.groupBy("user_id").count().where(F.col("count") >= want).select("user_id")
    under = assigned.join(short, "user_id", "left_anti").select("user_id", "embedding")
    n_under = under.count()
    if n_under:
        log.info(
            "%d user(s) found fewer than %d neighbours in their probed cells; searching them exactly", n_under, want
        )
        exact = exact_neighbors(under, users, nb.k, nb.block_size, n)
        found = found.join(under.select("user_id"), "user_id", "left_anti").unionByName(exact)
    assigned.unpersist()
    return found


def recall_at_k(spark_found: DataFrame, users: DataFrame, cfg: Config, n: int) -> float:
    """Share of the exact top-K that the result holds, over a seeded random sample of users."""
    nb = cfg.neighbors
    sample = users.orderBy(F.xxhash64("user_id", F.lit(nb.seed + 1))).limit(nb.recall_sample)
    truth = exact_neighbors(sample, users, nb.k, nb.block_size, n).select("user_id", "neighbor_id")
    hits = truth.join(spark_found.select("user_id", "neighbor_id"), ["user_id", "neighbor_id"]).count()
    total = truth.count()
    return hits / total if total else 1.0


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    nb = cfg.neighbors
    users = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "user_embeddings"))
    first = users.where(F.col("embedding").isNotNull()).select(F.size("embedding").alias("d")).limit(1).collect()
    dim = first[0]["d"] if first else 0
    valid, rejected = split_valid(users, dim)
    valid = valid.persist(StorageLevel.MEMORY_AND_DISK)
    n = valid.count()
    if nb.mode == "exact" or n <= nb.k + 1:
        found = exact_neighbors(valid, valid, nb.k, nb.block_size, n)
    else:
        found = approx_neighbors(valid, cfg, n)
    found = found.persist(StorageLevel.MEMORY_AND_DISK)
    run_id = F.lit(cfg.run_id)
    table = found.select("user_id", "neighbor_id", F.col("rank").cast("int"), "similarity", run_id.alias("run_id"))
    delta_io.replace_where(table, delta_io.table_ref(cfg.tables, "user_neighbors"), f"run_id = '{cfg.run_id}'")
    rejects_ref = delta_io.table_ref(cfg.tables, "neighbor_rejects")
    delta_io.replace_where(rejected.withColumn("run_id", run_id), rejects_ref, f"run_id = '{cfg.run_id}'")
    # Delta counted the rows it wrote; no second pass over user_embeddings.
    n_rejected = int(delta_io.last_operation_metrics(spark, rejects_ref).get("numOutputRows", 0))
    want = min(nb.k, max(n - 1, 0))
    counts = found.groupBy("user_id").count()
    underfilled = n - counts.where(F.col("count") >= want).count()
    recall = recall_at_k(found, valid, cfg, n) if nb.mode == "approx" else 1.0
    found.unpersist()
    valid.unpersist()
    log.info("neighbours for %d users (k=%d, %s): recall@%d=%.4f underfilled=%d rejected=%d", n, nb.k, nb.mode,
             nb.k, recall, underfilled, n_rejected)  # fmt: skip
    metrics = {f"recall_at_{nb.k}": recall, "users": n, "underfilled_users": underfilled, "rejected_users": n_rejected}
    write_metrics(spark, cfg, "similar_users", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Top-K similar users (approximate, distributed) into user_neighbors.", "similar-users", run)


if __name__ == "__main__":
    main()
