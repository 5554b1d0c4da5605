"""bench-ann: the similar-users job (approximate) vs its exact mode vs Spark MLlib's BucketedRandomProjectionLSH, on
the same synthetic 384-d unit vectors, at several sizes, in one Spark session.

The vectors are the hard set by default: overlapping clusters of uneven size (`clustered_vectors` with `mix` and
`skew`), so about a third of a vector's exact neighbours lie outside its own cluster (`same_cluster` in the
output) and the search is not trivially separable. They are written to Delta first (not timed).

Exact search is timed as the job's exact mode up to `--exact-max` users (each mode twice, alternating, the faster
run counted). Above that (1M users would take hours on 2
cores) it is timed on two seeded samples of queries against every vector and extrapolated linearly to all n
queries: t(n) = a + b n from the two runs. The fixed part `a` covers one pass over the candidates, which all-n exact
search repeats once per block of queries, so the extrapolation is a lower bound on exact time and the speed-up an
underestimate; the line says `exact=extrapolated`. Recall@10 of the approximate job is measured against the exact
neighbours of the larger sample there, against the full exact result below.

LSH finds neighbours with a self `approxSimilarityJoin` under a Euclidean threshold, then keeps each user's 10
nearest; it runs up to `--lsh-max` users (at 100k it did not finish in 420 s, bench/results/ann_cpu2_2026-11-28.log)
and is cancelled after `--lsh-timeout` seconds: its figures then read `timeout`, never a number. At the largest size
`--kmeans-sample N` also trains the k-means cells with MLlib `KMeans` (cosine) on N sampled vectors, for the time and
the mean cosine of a vector to its centre against the driver-side loop the job uses (2026-11-30, 1M set, 1,000 cells
on 20k vectors: 86.3 s for MLlib against 2.9 s, mean cosine 0.552 against 0.540).

Run: `make bench-ann` (prints the `bench-ann ...` line last); `BENCH_ANN_ARGS="--sizes 20000,1000000"` for 1M.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import time

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import load_config
from behaviorlm.constants import SEED
from behaviorlm.neighbors import best_k, default_cells, exact_top_k, train_centroids
from behaviorlm.session import get_spark
from behaviorlm.sources.synthetic import clustered_vectors
from jobs import similar_users

K = 10


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def recall(found: DataFrame, truth: DataFrame) -> float:
    hits = truth.join(found.select("user_id", "neighbor_id"), ["user_id", "neighbor_id"]).count()
    return hits / truth.count()


def underfilled(found: DataFrame, n: int) -> int:
    return n - found.groupBy("user_id").count().where(F.col("count") >= K).count()


def same_cluster(truth: DataFrame, users: DataFrame) -> float:
    """Share of exact neighbours in the query's own cluster: 1.0 is a trivially separable set."""
    own = users.select("user_id", "cluster")
    other = own.select(F.col("user_id").alias("neighbor_id"), F.col("cluster").alias("n_cluster"))
    row = (
        truth.join(own, "user_id")
        .join(other, "neighbor_id")
        .agg(F.avg((F.col("cluster") == F.col("n_cluster")).cast("double")))
    )
    return float(row.first()[0])


def sampled_exact(stored: DataFrame, n: int, samples: tuple[int, int]) -> tuple[DataFrame, float]:
    """(exact neighbours of the larger sample of queries, extrapolated seconds for all n queries)."""
    seconds, truth = [], None
    for s in samples:
        picked = stored.orderBy(F.xxhash64("user_id", F.lit(SEED))).limit(s).select("user_id", "embedding")
        picked = picked.localCheckpoint(eager=True)
        truth, t = timed(
            lambda q=picked: exact_top_k(q, stored, K).select("user_id", "neighbor_id").localCheckpoint(eager=True)
        )
        seconds.append(t)
        print(f"  exact on {s} sampled queries: {t:.1f}s", flush=True)
    slope = max((seconds[1] - seconds[0]) / (samples[1] - samples[0]), 0.0)
    return truth, seconds[0] + slope * (n - samples[0])


def lsh_neighbors(spark: SparkSession, users: DataFrame, bucket: float, tables: int, timeout: float):
    vecs = users.select("user_id", array_to_vector("embedding").alias("v")).cache()
    vecs.count()
    model = BucketedRandomProjectionLSH(inputCol="v", outputCol="h", bucketLength=bucket, numHashTables=tables, seed=1)
    fitted = model.fit(vecs)
    hashed = fitted.transform(vecs).cache()
    pairs = fitted.approxSimilarityJoin(hashed, hashed, 1.3, distCol="dist").select(
        F.col("datasetA.user_id").alias("user_id"), F.col("datasetB.user_id").alias("neighbor_id"), "dist"
    )
    pairs = pairs.where("user_id != neighbor_id").select(
        F.col("user_id").alias("id"), "neighbor_id", (1 - F.col("dist") ** 2 / 2).alias("similarity")
    )
    found = best_k(pairs, K).withColumnRenamed("id", "user_id")
    group = f"lsh-{time.time()}"
    spark.sparkContext.setJobGroup(group, "bench-ann LSH", interruptOnCancel=True)
    fired = threading.Event()

    def cancel() -> None:
        fired.set()
        spark.sparkContext.cancelJobGroup(group)

    timer = threading.Timer(timeout, cancel)
    timer.start()
    try:
        found = found.localCheckpoint(eager=True)
    except Exception:
        if not fired.is_set():  # a real failure, not the timeout: never report it as a slow run
            raise
        return None
    finally:
        timer.cancel()
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    return found


def lsh_figures(
    lsh: DataFrame | None, exact: DataFrame, n: int, speedup: float, seconds: float, timeout: float
) -> tuple[str, str, str, str]:
    """(recall@10, speed-up vs the approximate job, underfilled users, time note) of the LSH run, as text. A run
    cancelled at the timeout measured nothing (its time is the timeout's), so its figures are the word `timeout`."""
    if lsh is None:
        return "timeout", "timeout", "timeout", f"cancelled after {timeout:.0f}s"
    return f"{recall(lsh, exact):.4f}", f"{speedup:.2f}", str(underfilled(lsh, n)), f"{seconds:.1f}s"


def kmeans_compare(stored: DataFrame, n: int, sample: int = 20000, iters: int = 10) -> str:
    """The job's driver-side spherical k-means vs MLlib KMeans (cosine) on the same sample: seconds, fit quality."""
    cells = default_cells(n)
    keyed = stored.select(F.col("user_id").alias("id"), "embedding")
    data = keyed.orderBy(F.xxhash64("id", F.lit(SEED))).limit(sample).localCheckpoint(eager=True)
    x = np.array([r["embedding"] for r in data.select("embedding").collect()], dtype=np.float32)
    cents, t_loop = timed(lambda: train_centroids(data, cells, sample, iters, SEED))
    vecs = data.select(array_to_vector("embedding").alias("features")).cache()
    vecs.count()
    km = KMeans(k=cells, maxIter=iters, seed=SEED, distanceMeasure="cosine")
    model, t_mllib = timed(lambda: km.fit(vecs))
    centres = np.array([c / np.linalg.norm(c) for c in model.clusterCenters()], dtype=np.float32)
    fit = [float(np.max(x @ c.T, axis=1).mean()) for c in (cents, centres)]
    vecs.unpersist()
    return (f"cells={cells} on {len(x)} vectors: driver loop {t_loop:.1f}s mean_cos={fit[0]:.4f} | "
            f"MLlib KMeans {t_mllib:.1f}s mean_cos={fit[1]:.4f}")  # fmt: skip


def write_vectors(spark: SparkSession, cfg, n: int, args) -> DataFrame:
    users = clustered_vectors(spark, n, args.dim, max(10, n // args.cluster_size), args.noise, seed=11,
                              partitions=max(8, n // 25000), mix=args.mix, skew=args.skew)  # fmt: skip
    ref = delta.table_ref(cfg.tables, "user_embeddings")
    delta.overwrite(users.select("user_id", "embedding", "cluster"), ref)
    return delta.read_table(spark, ref)


def measure(spark: SparkSession, root: str, n: int, args) -> tuple[str, str]:
    """(detail line, bench-ann line) for n users."""
    cfg = load_config(overrides=[f"tables.root={root}", f"neighbors.k={K}"])
    stored = write_vectors(spark, cfg, n, args)
    approx_cfg = load_config(overrides=[f"tables.root={root}", f"run_id=approx-{n}", f"neighbors.k={K}"])
    exact_cfg = load_config(overrides=[f"tables.root={root}", f"run_id=exact-{n}", "neighbors.mode=exact",
                                       f"neighbors.k={K}"])  # fmt: skip
    measured = n <= args.exact_max
    # Where exact search is timed in full, each mode runs twice, alternating, and its faster run counts: the first
    # job on a new table also pays for warming up, which would fall on whichever mode ran first.
    t_approx = t_exact = math.inf
    for _ in range(2 if measured else 1):
        metrics, t = timed(lambda: similar_users.run(spark, approx_cfg))
        t_approx = min(t_approx, t)
        if measured:
            t_exact = min(t_exact, timed(lambda: similar_users.run(spark, exact_cfg))[1])
    table = delta.read_table(spark, delta.table_ref(cfg.tables, "user_neighbors"))
    approx = table.where(F.col("run_id") == f"approx-{n}")
    if measured:
        truth = table.where(F.col("run_id") == f"exact-{n}").select("user_id", "neighbor_id").cache()
        how = "measured_best_of_2"
    else:
        truth, t_exact = sampled_exact(stored, n, (args.exact_sample // 4, args.exact_sample))
        how = "extrapolated"
    r_approx, u_approx, hard = recall(approx, truth), underfilled(approx, n), same_cluster(truth, stored)
    lsh_note, r_lsh, s_lsh = "not run (above --lsh-max)", "not_run", "not_run"
    if n <= args.lsh_max:
        lsh, t_lsh = timed(lambda: lsh_neighbors(spark, stored, args.lsh_bucket, args.lsh_tables, args.lsh_timeout))
        r_lsh, s_lsh, _, lsh_note = lsh_figures(lsh, truth, n, t_lsh / t_approx, t_lsh, args.lsh_timeout)
    detail = (
        f"n={n} same_cluster={hard:.2f} approx: {t_approx:.1f}s recall@10={r_approx:.4f} (job's sample "
        f"{metrics.get('recall_at_10', float('nan')):.4f}, exact path={bool(metrics['exact'])}) underfilled={u_approx} "
        f"| exact ({how}): {t_exact:.1f}s | BRP-LSH(bucket={args.lsh_bucket}, tables={args.lsh_tables}): {lsh_note} "
        f"recall@10={r_lsh}"
    )
    line = (
        f"n={n} recall_at_10={r_approx:.4f} speedup_vs_exact={t_exact / t_approx:.2f} exact={how} "
        f"approx_s={t_approx:.1f} exact_s={t_exact:.1f} same_cluster={hard:.2f} underfilled_users={u_approx} "
        f"lsh_recall_at_10={r_lsh} speedup_vs_lsh={s_lsh}"
    )
    return detail, line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--cluster-size", type=int, default=1000, help="users per cluster (on average)")
    parser.add_argument("--noise", type=float, default=1.5)
    parser.add_argument(
        "--mix", type=float, default=1.5, help="0 with --skew 1 --noise 1 --cluster-size 100: the old easy set"
    )
    parser.add_argument("--skew", type=float, default=2.0)
    parser.add_argument("--exact-max", type=int, default=100000, help="above: exact timed on samples, extrapolated")
    parser.add_argument("--exact-sample", type=int, default=2000)
    parser.add_argument("--kmeans-sample", type=int, default=0, help="> 0: also time MLlib KMeans on this sample")
    parser.add_argument("--lsh-max", type=int, default=20000)
    parser.add_argument("--lsh-bucket", type=float, default=0.01)
    parser.add_argument("--lsh-tables", type=int, default=4)
    parser.add_argument("--lsh-timeout", type=float, default=420)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = tempfile.mkdtemp(prefix="bench-ann-")
    cfg = load_config(
        overrides=[
            f"spark.master=local[{os.cpu_count() or 2}]",
            "spark.conf.spark.driver.memory=12g",
            f"spark.conf.spark.sql.shuffle.partitions={max(8, max(sizes) // 20000)}",
            "spark.conf.spark.ui.showConsoleProgress=false",
            f"tables.root={root}",
        ]
    )
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    lines = []
    for n in sizes:
        detail, line = measure(spark, root, n, args)
        print(detail, flush=True)
        lines.append(line)
    if args.kmeans_sample:
        largest = delta.read_table(spark, delta.table_ref(cfg.tables, "user_embeddings"))
        print(kmeans_compare(largest, sizes[-1], args.kmeans_sample), flush=True)
    small = f" small_n={sizes[0]} small_speedup_vs_exact={lines[0].split('speedup_vs_exact=')[1].split()[0]}"
    print(f"bench-ann {lines[-1]}{small if len(sizes) > 1 else ''}")


if __name__ == "__main__":
    main()
