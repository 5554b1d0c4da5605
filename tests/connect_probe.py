"""The library parts that already run on Spark Connect, on small data: `results(spark)` gives the same answer on a
classic session and on a Connect one. Run as a script, it starts a local Spark Connect server (pyspark's own, in a
JVM of its own) and prints that answer as JSON: a process of its own, because a test process already holds a
classic SparkContext."""

from __future__ import annotations

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm.assets import model_dir
from behaviorlm.embedding import make_embed_fn
from behaviorlm.indexing import id_index
from behaviorlm.item_model import item_scores
from behaviorlm.neighbors import top_k
from behaviorlm.scoring import popularity
from behaviorlm.session import is_connect

# Users who chose a also chose b; c goes with d.
PAIRS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u4", "c"),
         ("u4", "d"), ("u7", "c"), ("u7", "d"), ("u5", "a"), ("u6", "c")]  # fmt: skip
# Two clusters of unit vectors, near x and near y.
VECTORS = [(f"v{n}", [1.0, n / 100, 0.0]) for n in range(6)] + [(f"w{n}", [0.0, 1.0, n / 100]) for n in range(6)]


def results(spark: SparkSession) -> dict:
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
    }


if __name__ == "__main__":
    session = (
        SparkSession.builder.remote(sys.argv[1] if len(sys.argv) > 1 else "local[2]")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        print(json.dumps(results(session)))
    finally:
        session.stop()
