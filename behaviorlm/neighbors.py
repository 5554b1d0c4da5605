"""k-nearest neighbours by cosine for any keyed unit vectors (users, items, queries): exact blockwise search and an
approximate inverted-file index, both built from DataFrame primitives and one BLAS kernel (`udfs.topk`).

Approximate search: spherical k-means centroids are trained on a bounded random sample (the only vectors that reach
the driver); every vector gets a home cell (its nearest centroid) and probes its `nprobe` nearest cells. Each
(cell, chunk) is one task: the vectors probing the cell are scored against the cell's members with one matrix
product inside `cogroup(...).applyInPandas`, so no task holds more than one block of candidates and no N x N join
exists. Cells bigger than `max_cell_size` are split into chunks. Results are merged per key; a key that found fewer
than min(k, n - 1) neighbours is searched exactly. Exact search tiles both sides into blocks and scores every block
pair the same way: the reference, and fine for small data.

From a notebook: `from behaviorlm.neighbors import top_k; top_k(vectors, k=10)` is the engine `similar-users` runs.
Every result frame is (<id_col>, neighbor_id, similarity, rank), ranked by similarity then neighbour id.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from behaviorlm.constants import BLOCK_SIZE, NORM_EPSILON, SEED, USER_COL, VECTOR_COL
from behaviorlm.partials import Shipped
from behaviorlm.summaries import smallest_by_hash
from udfs.device import task_device
from udfs.topk import block_topk, top_columns

log = logging.getLogger(__name__)
ASSIGN_CHUNK = 2**25  # similarities per chunk of k-means' assignment step (128 MB of float32)
PAIR_SCHEMA = StructType(
    [StructField("id", StringType()), StructField("neighbor_id", StringType()), StructField("similarity", FloatType())]
)


def vector_dim(vectors: DataFrame, vector_col: str = VECTOR_COL) -> int:
    """The vector length most rows have (ties: the smaller), 0 for no vectors: the same answer on every run, unlike
    the first row's length."""
    row = (
        vectors.where(F.col(vector_col).isNotNull())
        .groupBy(F.size(vector_col).alias("d"))
        .count()
        .orderBy(F.col("count").desc(), "d")
        .first()
    )
    return int(row["d"]) if row else 0


def split_valid(
    vectors: DataFrame, dim: int, id_col: str = USER_COL, vector_col: str = VECTOR_COL
) -> tuple[DataFrame, DataFrame]:
    """(valid (id_col, vector_col), rejected (id_col, reason)). Valid: a finite, non-zero vector of `dim` floats."""
    emb = F.col(vector_col)
    norm = F.aggregate(emb, F.lit(0.0), lambda acc, x: acc + x * x)
    reason = (
        F.when(emb.isNull(), "missing_embedding")
        .when(F.size(emb) != dim, "wrong_dimension")
        .when(F.exists(emb, lambda x: F.isnan(x) | (F.abs(x) == float("inf"))), "non_finite_embedding")
        .when(norm < NORM_EPSILON, "zero_embedding")
    )
    tagged = vectors.select(id_col, vector_col, reason.alias("reason"))
    return tagged.where("reason is null").drop("reason"), tagged.where("reason is not null").drop(vector_col)


def unembedded(users: DataFrame, vectors: DataFrame, id_col: str = USER_COL) -> DataFrame:
    """(id_col, reason `no_vector`): the distinct ids of `users` without a row in `vectors`, such as users none of
    whose items has a vector."""
    return (
        users.select(id_col)
        .distinct()
        .join(vectors.select(id_col), id_col, "left_anti")
        .withColumn("reason", F.lit("no_vector"))
    )


def _keyed(vectors: DataFrame, id_col: str, vector_col: str) -> DataFrame:
    """The internal shape (id string, embedding): fresh aliases, so two sides of one frame never clash."""
    return vectors.select(F.col(id_col).cast("string").alias("id"), F.col(vector_col).alias("embedding"))


def _named(pairs: DataFrame, id_col: str) -> DataFrame:
    return pairs.select(F.col("id").alias(id_col), "neighbor_id", "similarity", F.col("rank").cast("int"))


def default_cells(n: int) -> int:
    """Cells for n vectors when none are set: 2 sqrt(n). FAISS advises 4-16 sqrt(n) for its inverted files; on
    bench-ann's overlapping 1M set (1,000 clusters) 1,000 cells probed 8 at a time found 92% of the exact neighbours,
    2,000 cells 98% while scoring half the candidates per query (bench/results/bench_ann_2026-11-30.log)."""
    return max(1, round(2 * math.sqrt(n)))


def train_centroids(vectors: DataFrame, cells: int, sample: int, iterations: int, seed: int = SEED) -> np.ndarray:
    """Spherical k-means on a bounded, seeded sample of (id, embedding) rows (fetched as Arrow, not as Python
    lists: 100k vectors of 384 floats are 150 MB)."""
    picked = smallest_by_hash(vectors, sample, F.xxhash64("id", F.lit(seed))).select("embedding").toArrow()
    flat = picked.column("embedding").combine_chunks()
    data = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(flat), -1)
    rng = np.random.default_rng(seed)
    cells = min(cells, len(data))
    centroids = data[rng.choice(len(data), cells, replace=False)]
    chunks = max(1, len(data) * cells // ASSIGN_CHUNK)
    for _ in range(iterations):
        # In chunks: the whole sample x cells product is 2.5 GB at 100,000 rows and 6,325 cells (10 million users).
        assign = np.concatenate([np.argmax(c @ centroids.T, axis=1) for c in np.array_split(data, chunks)])
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, data)
        # An empty cell restarts at a random point rather than dying.
        empty = np.flatnonzero(np.bincount(assign, minlength=cells) == 0)
        sums[empty] = data[rng.integers(len(data), size=len(empty))]
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), NORM_EPSILON)
    return centroids


def nearest_cells(vectors: np.ndarray, centroids: np.ndarray, probes: int) -> np.ndarray:
    """Each row's `probes` most similar centroids, most similar first (equal similarities: lower cell first)."""
    return top_columns(vectors @ centroids.T, probes)


def assign_cells(vectors: DataFrame, centroids: np.ndarray, nprobe: int) -> DataFrame:
    """Adds `home` (nearest cell) and `probes` (the `nprobe` nearest cells, home first) to (id, embedding)."""
    cells = Shipped(vectors.sparkSession, centroids)
    probes = min(nprobe, len(centroids))

    def assign(batches):
        cents = cells()
        for pdf in batches:
            top = nearest_cells(np.stack(pdf["embedding"].to_numpy()), cents, probes).astype(np.int32)
            yield pdf.assign(home=top[:, 0], probes=list(top))

    return vectors.mapInPandas(assign, "id string, embedding array<float>, home int, probes array<int>")


def _score_groups(queries: DataFrame, candidates: DataFrame, keys: list[str], k: int, exclude_self: bool) -> DataFrame:
    """Per key group: exact top-k candidates per query (both frames have `keys`, id, embedding)."""

    def score(q: pd.DataFrame, c: pd.DataFrame) -> pd.DataFrame:
        return block_topk(q, c, k, task_device(), exclude_self)

    cols = [F.col(c).alias(c) for c in [*keys, "id", "embedding"]]
    return (
        queries.select(cols)
        .groupBy(*keys)
        .cogroup(candidates.select(cols).groupBy(*keys))
        .applyInPandas(score, PAIR_SCHEMA)
    )


def best_k(pairs: DataFrame, k: int) -> DataFrame:
    """Merge per-block results: the k best per id, ranked by similarity then neighbour id (deterministic)."""
    order = Window.partitionBy("id").orderBy(F.col("similarity").desc(), F.col("neighbor_id"))
    return pairs.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)


def _exact(queries: DataFrame, candidates: DataFrame, k: int, block_size: int, exclude_self: bool) -> DataFrame:
    n = candidates.count()
    blocks = max(1, math.ceil(n / block_size))
    q_blocks = max(1, math.ceil(queries.count() / block_size)) if blocks > 1 else 1
    # Keys must have one type on both sides (int): cogroup matches groups by their hashed key values.
    cand = candidates.withColumn("cb", F.pmod(F.xxhash64("id"), F.lit(blocks)).cast("int"))
    cand = cand.withColumn("qb", F.explode(F.sequence(F.lit(0), F.lit(q_blocks - 1))))
    qry = queries.withColumn("qb", F.pmod(F.xxhash64("id", F.lit(1)), F.lit(q_blocks)).cast("int"))
    qry = qry.withColumn("cb", F.explode(F.sequence(F.lit(0), F.lit(blocks - 1))))
    return best_k(_score_groups(qry, cand, ["qb", "cb"], k, exclude_self), k)


def exact_top_k(
    queries: DataFrame,
    candidates: DataFrame,
    k: int,
    block_size: int = BLOCK_SIZE,
    exclude_self: bool = True,
    id_col: str = USER_COL,
    vector_col: str = VECTOR_COL,
    candidate_id_col: str | None = None,
) -> DataFrame:
    """Each query's k most similar candidates (blockwise exact search). Queries and candidates may be different
    kinds (users against items: `exclude_self=False`, `candidate_id_col="item_id"`)."""
    cand = _keyed(candidates, candidate_id_col or id_col, vector_col)
    return _named(_exact(_keyed(queries, id_col, vector_col), cand, k, block_size, exclude_self), id_col)


def _approx(
    vectors: DataFrame, k: int, n: int, cells: int, nprobe: int, max_cell_size: int, train_sample: int,
    kmeans_iters: int, seed: int, block_size: int,
) -> DataFrame:  # fmt: skip
    centroids = train_centroids(vectors, cells or default_cells(n), train_sample, kmeans_iters, seed)
    assigned = assign_cells(vectors, centroids, nprobe).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = assigned.groupBy("home").count().collect()  # one row per cell: small
    chunks = {r["home"]: max(1, math.ceil(r["count"] / max_cell_size)) for r in sizes}
    chunk_df = vectors.sparkSession.createDataFrame(list(chunks.items()), "cell int, chunks int")
    cand = assigned.join(F.broadcast(chunk_df), assigned.home == chunk_df.cell).withColumn(
        "chunk", F.pmod(F.xxhash64("id"), F.col("chunks")).cast("int")
    )
    qry = (
        assigned.withColumn("cell", F.explode("probes"))
        .join(F.broadcast(chunk_df), "cell")
        .withColumn("chunk", F.explode(F.sequence(F.lit(0), F.col("chunks") - 1)))
    )
    found = best_k(_score_groups(qry, cand, ["cell", "chunk"], k, True), k).persist(StorageLevel.MEMORY_AND_DISK)
    want = min(k, n - 1)
    full = found.groupBy("id").count().where(F.col("count") >= want).select("id")
    under = assigned.join(full, "id", "left_anti").select("id", "embedding")
    n_under = under.count()
    if n_under:
        log.info("%d vector(s) found fewer than %d neighbours in their probed cells; searched exactly", n_under, want)
        exact = _exact(under, vectors, k, block_size, True)
        found = found.join(under.select("id"), "id", "left_anti").unionByName(exact)
    assigned.unpersist()
    return found


def searched_exactly(n: int, k: int, exact_below: int) -> bool:
    """Whether `top_k` takes the exact path for n vectors even when asked to approximate."""
    return n <= max(k + 1, exact_below)


def top_k(
    vectors: DataFrame,
    k: int,
    approximate: bool = True,
    id_col: str = USER_COL,
    vector_col: str = VECTOR_COL,
    *,
    cells: int = 0,
    nprobe: int = 8,
    max_cell_size: int = 4000,
    train_sample: int = 100000,
    kmeans_iters: int = 10,
    seed: int = SEED,
    block_size: int = BLOCK_SIZE,
    exact_below: int = 0,
) -> DataFrame:
    """Each vector's k most similar others among `vectors` (valid unit vectors, see `split_valid`).

    Approximate (an inverted-file index: `cells` k-means cells, 0 = `default_cells(n)`; each vector probes
    `nprobe`)
    unless `approximate` is False or the set is small enough that exact search costs less: at most `exact_below`
    vectors (training and probing cells is a fixed cost exact search does not pay), or n <= k + 1.
    """
    keyed = _keyed(vectors, id_col, vector_col)
    n = keyed.count()
    if not approximate or searched_exactly(n, k, exact_below):
        found = _exact(keyed, keyed, k, block_size, True)
    else:
        found = _approx(keyed, k, n, cells, nprobe, max_cell_size, train_sample, kmeans_iters, seed, block_size)
    return _named(found, id_col)


def recall_at_k(
    found: DataFrame,
    vectors: DataFrame,
    k: int,
    sample: int = 200,
    seed: int = SEED,
    block_size: int = BLOCK_SIZE,
    id_col: str = USER_COL,
    vector_col: str = VECTOR_COL,
) -> float:
    """Share of the exact top-k that `found` holds, over a seeded random sample of `sample` ids."""
    picked = smallest_by_hash(vectors, sample, F.xxhash64(id_col, F.lit(seed + 1)))
    truth = exact_top_k(picked, vectors, k, block_size, True, id_col, vector_col).select(id_col, "neighbor_id")
    hits = truth.join(found.select(id_col, "neighbor_id"), [id_col, "neighbor_id"]).count()
    total = truth.count()
    return hits / total if total else 1.0
