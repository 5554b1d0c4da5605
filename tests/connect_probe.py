"""The library parts that already run on Spark Connect, on small data: `results(spark, root)` gives the same answer
on a classic session and on a Connect one. Run as a script (`python -m tests.connect_probe MASTER ROOT`), it starts
a local Spark Connect server with Delta (pyspark's own server, in a JVM of its own) and prints that answer as JSON: a
process of its own, because a test process already holds a classic SparkContext."""

from __future__ import annotations

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.assets import model_dir
from behaviorlm.embedding import make_embed_fn
from behaviorlm.errors import TableNotFoundError
from behaviorlm.indexing import id_index
from behaviorlm.item_model import item_scores
from behaviorlm.neighbors import top_k
from behaviorlm.scoring import popularity
from behaviorlm.session import DELTA_SQL_CONF, cached_delta_jars, is_connect

# Users who chose a also chose b; c goes with d.
PAIRS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u4", "c"),
         ("u4", "d"), ("u7", "c"), ("u7", "d"), ("u5", "a"), ("u6", "c")]  # fmt: skip
# Two clusters of unit vectors, near x and near y.
VECTORS = [(f"v{n}", [1.0, n / 100, 0.0]) for n in range(6)] + [(f"w{n}", [0.0, 1.0, n / 100]) for n in range(6)]


def delta_results(spark: SparkSession, root: str) -> dict:
    """Delta writes under `root`: a merge that creates, one that updates and inserts, the rows offered to it; a
    run's rows replaced; a Parquet folder refused as an input; paths found or not."""
    ref, schema = delta.location_ref("probe", f"{root}/probe"), "k string, v int"
    first = spark.createDataFrame([("a", 1), ("b", 2)], schema)
    later = spark.createDataFrame([("a", 1), ("b", 3), ("c", 4)], schema)
    counts = [delta.table_exists(spark, ref), delta.merge(first, ref, ["k"]), delta.merge(later, ref, ["k"]),
              delta.offered_rows(spark, ref)]  # fmt: skip
    runs = delta.location_ref("runs", f"{root}/runs")
    replaced = [delta.replace_run(first, runs, "r1"), delta.replace_run(later, runs, "r1")]
    spark.range(2).write.parquet(f"{root}/parquet")
    try:
        refused = str(delta.input_exists(spark, delta.location_ref("queries", f"{root}/parquet")))
    except TableNotFoundError as exc:
        refused = "holds files but no _delta_log" in str(exc)
    paths = [delta.path_exists(spark, f"{root}/{p}") for p in ("probe", "probe/_delta_log", "nothing")]
    rows = sorted(tuple(r) for r in delta.read_table(spark, ref).collect())
    return {"merges": counts, "replaced": replaced, "refused": refused, "paths": paths, "rows": rows,
            "run_rows": delta.read_table(spark, runs).count()}  # fmt: skip


def results(spark: SparkSession, root: str) -> dict:
    """Dense ids, popularity ranks, EASE scores with their reasons (X'X summed from partitions, B shipped to the
    executors), approximate neighbours (k-means cells, centroids shipped to the executors) and text vectors of the
    real encoder (its pandas UDF, with no accumulator on Connect)."""
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    vectors = spark.createDataFrame(VECTORS, "user_id string, embedding array<float>")
    unit = vectors.select("user_id", F.transform("embedding", lambda x: x / F.sqrt(F.aggregate(
        "embedding", F.lit(0.0), lambda a, y: a + y * y))).cast("array<float>").alias("embedding"))  # fmt: skip
    scores = item_scores(pairs, reg=1.0, m=3)
    near = top_k(unit, 2, cells=2, nprobe=1, kmeans_iters=3)
    texts = spark.createDataFrame([("t1", "a funny movie for kids"), ("t2", None)], "id string, text string")
    embed = make_embed_fn(spark, str(model_dir()))
    encoded = embed.encode(texts, "text", "embedding").orderBy("id").collect()
    return {
        "connect": is_connect(spark),
        "ids": sorted(tuple(r) for r in id_index(pairs, "item_id", "ix").collect()),
        "ranks": sorted((r["item_id"], r["pop_rank"]) for r in popularity(pairs).collect()),
        "items": sorted((r["user_id"], r["item_id"], r["because_item"], r["items"]) for r in scores.collect()),
        "neighbours": sorted((r["user_id"], r["neighbor_id"]) for r in near.collect()),
        "vectors": [list(r["embedding"]) for r in encoded],
        "report": sorted(embed.report()),
        "delta": delta_results(spark, root),
    }


if __name__ == "__main__":
    builder = SparkSession.builder.remote(sys.argv[1]).config("spark.jars", ",".join(cached_delta_jars()))
    for key, value in {**DELTA_SQL_CONF, "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    try:
        print(json.dumps(results(session, sys.argv[2])))
    finally:
        session.stop()
