"""bench-embed: raw single-process encoder throughput vs the Spark pandas-UDF path, on the same cores.

Texts are MovieLens-100K item texts (rendered by embed-items' template) repeated to `--n`. The raw path encodes
them in this process with torch using all local cores; the UDF path runs the same texts through `udfs.embed` in
Spark local mode with one task per core (one torch thread each), after a warm-up pass so that both exclude model
loading. Also measures length-sorted vs unsorted batching on the raw path.

Run: `make bench-embed` (prints the `bench-embed ...` line last).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from pyspark.sql import functions as F

from behaviorlm.assets import model_dir, movielens_dir
from behaviorlm.config import load_config
from behaviorlm.embedding import make_embed_fn
from behaviorlm.schemas import ITEMS
from behaviorlm.session import get_spark
from behaviorlm.sources.movielens import read_movielens
from behaviorlm.validate import accepted, tag_items
from jobs.embed_items import item_texts
from udfs.encoder import get_encoder


def rate(n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    cfg = load_config(
        overrides=[
            f"spark.master=local[{args.cores}]",
            "spark.conf.spark.ui.enabled=false",
            "spark.conf.spark.ui.showConsoleProgress=false",
            f"model.path={model_dir()}",
            "model.dtype=float32",
        ]
    )
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    _, raw_items = read_movielens(spark, str(movielens_dir()))
    base = [r["text"] for r in item_texts(accepted(tag_items(raw_items), ITEMS), cfg.embed.item_fields, "x").collect()]
    texts = (base * (args.n // len(base) + 1))[: args.n]

    torch.set_num_threads(args.cores)
    encoder, _ = get_encoder(cfg.model.path, "cpu", "float32", cfg.model.max_length, cfg.model.pooling)
    encoder.encode(texts[:256], cfg.model.batch_size)  # warm-up
    raw = rate(len(texts), lambda: encoder.encode(texts, cfg.model.batch_size, sort_by_length=True))
    unsorted = rate(len(texts), lambda: encoder.encode(texts, cfg.model.batch_size, sort_by_length=False))

    df = spark.createDataFrame([(t,) for t in texts], "text string").repartition(args.cores).cache()
    df.count()
    m = cfg.model
    embed = make_embed_fn(spark, m.path, m.max_length, m.pooling, "float32", m.batch_size)
    out = df.select(embed(F.col("text")).alias("v"))
    out.write.format("noop").mode("overwrite").save()  # warm-up: each Python worker loads the model once
    udf = rate(len(texts), lambda: out.write.format("noop").mode("overwrite").save())
    loads = embed.report()
    print(f"texts={len(texts)} cores={args.cores} raw_unsorted_per_s={unsorted:.1f}")
    print(
        f"bench-embed raw_per_s={raw:.1f} udf_per_s={udf:.1f} udf_vs_raw={udf / raw:.3f} "
        f"sorted_gain={raw / unsorted:.3f} model_loads={loads['model_loads']} workers={loads['python_workers']}"
    )


if __name__ == "__main__":
    main()
