"""bench-ann: the similar-users job (approximate) vs its exact mode vs Spark MLlib's BucketedRandomProjectionLSH, on
the same synthetic clustered 384-d unit vectors, at several sizes, in one Spark session.

For each size the vectors are written to Delta first (not timed). Recall@10 of the approximate job and of LSH is
measured against the exact mode's full result; "underfilled" counts users with fewer than 10 neighbours. LSH finds
neighbours with a self `approxSimilarityJoin` under a Euclidean threshold (for unit vectors, distance
sqrt(2 - 2 cos)), then keeps each user's 10 nearest. A 384-d unit vector projects onto a random direction with a
spread of about 1/sqrt(384) = 0.05, so the bucket length sets the trade-off: at 0.05 (4 tables) the 20k
self-join did not finish in 300 s on 2 cores; the default 0.01 finishes but misses neighbours that fall into
adjacent buckets.
An LSH run longer than `--lsh-timeout` seconds is cancelled: its recall and speed-up are reported as `timeout`, not
as numbers measured on a run that never finished.

Run: `make bench-ann` (prints the `bench-ann ...` line last); `--sizes 20000,100000,1000000` for the 1M run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import load_config
from behaviorlm.neighbors import best_k
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--lsh-bucket", type=float, default=0.01)
    parser.add_argument("--lsh-tables", type=int, default=4)
    parser.add_argument("--lsh-timeout", type=float, default=420)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-ann-")
    cfg = load_config(
        overrides=[
            f"spark.master=local[{os.cpu_count() or 2}]",
            "spark.conf.spark.driver.memory=8g",
            "spark.conf.spark.sql.shuffle.partitions=8",
            "spark.conf.spark.ui.showConsoleProgress=false",
            f"tables.root={root}",
            f"neighbors.k={K}",
        ]
    )
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    line = ""
    for n in [int(s) for s in args.sizes.split(",")]:
        users = clustered_vectors(spark, n, args.dim, max(10, n // 100), 1.0, seed=11, partitions=8)
        ref = delta.table_ref(cfg.tables, "user_embeddings")
        delta.overwrite(users.select("user_id", "embedding"), ref)
        stored = delta.read_table(spark, ref)
        approx_cfg = load_config(overrides=[f"tables.root={root}", f"run_id=approx-{n}", f"neighbors.k={K}"])
        exact_cfg = load_config(overrides=[f"tables.root={root}", f"run_id=exact-{n}", "neighbors.mode=exact",
                                           f"neighbors.k={K}"])  # fmt: skip
        metrics, t_approx = timed(lambda c=approx_cfg: similar_users.run(spark, c))
        _, t_exact = timed(lambda c=exact_cfg: similar_users.run(spark, c))
        table = delta.read_table(spark, delta.table_ref(cfg.tables, "user_neighbors"))
        exact = table.where(F.col("run_id") == f"exact-{n}").select("user_id", "neighbor_id").cache()
        approx = table.where(F.col("run_id") == f"approx-{n}")
        r_approx = recall(approx, exact)
        u_approx = underfilled(approx, n)
        lsh, t_lsh = timed(lambda s=stored: lsh_neighbors(spark, s, args.lsh_bucket, args.lsh_tables, args.lsh_timeout))
        r_lsh, s_lsh, u_lsh, lsh_note = lsh_figures(lsh, exact, n, t_lsh / t_approx, t_lsh, args.lsh_timeout)
        print(
            f"n={n} approx: {t_approx:.1f}s recall@10={r_approx:.4f} (job's sample {metrics['recall_at_10']:.4f}) "
            f"underfilled={u_approx} | exact: {t_exact:.1f}s | BRP-LSH(bucket={args.lsh_bucket}, "
            f"tables={args.lsh_tables}): {lsh_note} recall@10={r_lsh} underfilled={u_lsh}",
            flush=True,
        )
        line = (
            f"bench-ann n={n} recall_at_10={r_approx:.4f} speedup_vs_exact={t_exact / t_approx:.2f} "
            f"lsh_recall_at_10={r_lsh} speedup_vs_lsh={s_lsh} underfilled_users={u_approx}"
        )
        exact.unpersist()
    print(line)


if __name__ == "__main__":
    main()
