"""bench-search: natural-language search on MovieLens-100K, judged by genre.

Items are embedded WITHOUT their genres (title and year only: `embed.item_fields=["{title}", "({year})"]`), so a
genre can only be found through what the model knows about the titles. For each genre one plain-English query,
written once below and never tuned, goes through the `search` job; an item is relevant when it has the genre.
Precision@10 and nDCG@10 (binary relevance, ideal = min(10, items of the genre)) are averaged over genres, beside a
keyword baseline on the same texts (Spark ML `RegexTokenizer` -> `HashingTF` -> `IDF`, cosine of the TF-IDF vectors,
ranked by the same blocked k-NN) and random (the genre's share of the catalogue: the expected precision of a random
top 10). The search job runs twice: as configured (items and queries centred on the catalogue mean) and uncentred.
Run: `make bench-search` (prints the `bench-search ...` line last).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

from pyspark.ml.feature import IDF, HashingTF, Normalizer, RegexTokenizer
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config, load_config
from behaviorlm.logs import setup_logging
from behaviorlm.neighbors import exact_top_k
from behaviorlm.session import get_spark
from behaviorlm.text import item_texts
from jobs import embed_items, ingest, params, search

K = 10
QUERIES = {
    "Action": "an action movie with fights and explosions",
    "Adventure": "an adventure film",
    "Animation": "an animated cartoon",
    "Children's": "a film for children",
    "Comedy": "a funny comedy",
    "Crime": "a crime movie about gangsters",
    "Documentary": "a documentary",
    "Drama": "a drama",
    "Fantasy": "a fantasy film with magic",
    "Film-Noir": "a film noir",
    "Horror": "a scary horror movie",
    "Musical": "a musical with songs",
    "Mystery": "a mystery",
    "Romance": "a romantic love story",
    "Sci-Fi": "a science fiction movie",
    "Thriller": "a suspenseful thriller",
    "War": "a war movie",
    "Western": "a western with cowboys",
}
FIELDS = ["{title}", "({year})"]


def judged(found: DataFrame, items: DataFrame) -> dict[str, float]:
    """Mean precision@K and nDCG@K over the genres of (query_id = genre, item_id, rank) rows."""
    genres = items.select("item_id", "genres")
    hits = found.join(genres, "item_id").select(
        "query_id", "rank", F.coalesce(F.array_contains("genres", F.col("query_id")), F.lit(False)).alias("hit")
    )
    rows = hits.collect()
    sizes = {g: items.where(F.array_contains("genres", g)).count() for g in QUERIES}
    precision, ndcg = [], []
    for genre in QUERIES:
        ranked = sorted((r["rank"], r["hit"]) for r in rows if r["query_id"] == genre)[:K]
        gains = [1.0 / math.log2(rank + 1) for rank, hit in ranked if hit]
        ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(K, sizes[genre]) + 1))
        precision.append(sum(hit for _, hit in ranked) / K)
        ndcg.append(sum(gains) / ideal if ideal else 0.0)
    return {"precision": sum(precision) / len(precision), "ndcg": sum(ndcg) / len(ndcg)}


def keyword_top(spark: SparkSession, texts: DataFrame) -> DataFrame:
    """TF-IDF cosine top-K per query, fitted on the item texts (the same texts the model embedded)."""
    tokens = RegexTokenizer(inputCol="text", outputCol="tokens", pattern=r"\W+")
    tf = HashingTF(inputCol="tokens", outputCol="tf", numFeatures=1 << 12)
    items = tf.transform(tokens.transform(texts))
    idf = IDF(inputCol="tf", outputCol="tfidf").fit(items)
    queries = spark.createDataFrame(list(QUERIES.items()), "query_id string, text string")
    queries = tf.transform(tokens.transform(queries))
    norm = Normalizer(inputCol="tfidf", outputCol="unit")

    def dense(df: DataFrame, key: str) -> DataFrame:
        return norm.transform(idf.transform(df)).select(key, vector_to_array("unit", "float32").alias("embedding"))

    found = exact_top_k(dense(queries, "query_id"), dense(items, "item_id"), K, exclude_self=False,
                        id_col="query_id", candidate_id_col="item_id")  # fmt: skip
    return found.select("query_id", F.col("neighbor_id").alias("item_id"), "rank")


def search_run(spark: SparkSession, cfg: Config) -> DataFrame:
    search.run(spark, cfg)
    return params.table(spark, cfg, "query_results").where(F.col("run_id") == cfg.run_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="", help="table folder (default: a new temporary folder)")
    args = parser.parse_args()
    setup_logging()
    root = args.root or tempfile.mkdtemp(prefix="bench-search-")
    cfg = load_config(["conf/local.yaml"], [f"spark.master=local[{os.cpu_count() or 2}]", f"tables.root={root}",
                      "spark.conf.spark.ui.showConsoleProgress=false", "run_id=bench-search", f"search.k={K}",
                      f"embed.item_fields={FIELDS}"])  # fmt: skip
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    start = time.perf_counter()
    ingest.run(spark, cfg)
    embed_items.run(spark, cfg)
    queries = spark.createDataFrame(
        [(g, q, None) for g, q in QUERIES.items()], "query_id string, text string, user_id string"
    )
    delta.overwrite(queries, delta.table_ref(cfg.tables, "queries"))
    items = params.table(spark, cfg, "items")
    model = judged(search_run(spark, cfg), items)
    raw = judged(
        search_run(spark, cfg.but(run_id="bench-search-raw", embed={**cfg.embed.model_dump(), "center_items": False})),
        items,
    )
    texts = item_texts(items, FIELDS, cfg.embed.empty_text).select("item_id", "text")
    keyword = judged(keyword_top(spark, texts), items)
    n = items.count()
    rand = sum(items.where(F.array_contains("genres", g)).count() / n for g in QUERIES) / len(QUERIES)
    print(f"uncentred items and queries: precision_at_10={raw['precision']:.4f} ndcg_at_10={raw['ndcg']:.4f}")
    print(f"keyword (TF-IDF): ndcg_at_10={keyword['ndcg']:.4f}; tables under {root}; "
          f"{time.perf_counter() - start:.0f} s in all", flush=True)  # fmt: skip
    print(
        f"bench-search precision_at_10={model['precision']:.4f} ndcg_at_10={model['ndcg']:.4f} "
        f"keyword_precision_at_10={keyword['precision']:.4f} random_precision_at_10={rand:.4f}"
    )


if __name__ == "__main__":
    main()
