"""Embed items: render each item's text from the configured fields, hash it, and encode only new or changed texts
(or all of them when the model changed) into `item_embeddings(item_id, text_hash, embedding, model, dim,
updated_at)` with a Delta MERGE. Items gone from the catalogue lose their vector. With `model.backend: auto` it first
measures, on a sample, whether model.path reads the texts and encodes them with the multilingual backend if not; the
backend is part of the model id, so switching it re-embeds every item. Then it checks, on samples, that the model can
read the texts (unknown tokens, near-identical vectors) and warns when it cannot.

Run: `behaviorlm embed-items --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.embedding import embed_changed, mark_changed
from behaviorlm.readability import readability
from behaviorlm.text import item_texts
from jobs import params
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    items = params.table(spark, cfg, "items")
    target = delta.table_ref(cfg.tables, "item_embeddings")
    existing = delta.read_table(spark, target) if delta.table_exists(spark, target) else None
    m = cfg.model
    texts = item_texts(items, cfg.embed.item_fields, cfg.embed.empty_text)
    embed = params.embed_fn(spark, cfg, texts)  # `auto` is decided here, on these texts
    marked = mark_changed(texts, existing, embed.model).persist(StorageLevel.MEMORY_AND_DISK)
    counts = {r["changed"]: (r["n"], r["fallback"]) for r in marked.groupBy("changed").agg(
        F.count("*").alias("n"), F.sum(F.col("fallback").cast("int")).alias("fallback")).collect()}  # fmt: skip
    source = embed_changed(marked, embed, embed.model, embed.dim).persist(StorageLevel.MEMORY_AND_DISK)
    # Encode once, here: MERGE may scan its source more than once.
    source.where("changed").count()
    delta.merge(source, target, ["item_id"], changed="changed", delete_missing=True)
    source.unpersist()
    e = cfg.embed
    # Measured on the stored vectors, after the MERGE: unchanged items count too, not only this run's.
    health = readability(marked.where(~F.col("fallback")), delta.read_table(spark, target), m.path, m.max_length,
                         e.max_unknown_token_share, e.max_identical_pair_share, cfg.seed, embed.backend)  # fmt: skip
    marked.unpersist()
    embedded, skipped = counts.get(True, (0, 0))[0], counts.get(False, (0, 0))[0]
    fallback = sum(f or 0 for _, f in counts.values())
    log.info("items embedded=%d skipped (unchanged)=%d fallback_text=%d model=%s unknown_token_share=%.3f "
             "identical_pair_share=%.3f", embedded, skipped, fallback, embed.model, health["unknown_token_share"],
             health["identical_pair_share"])  # fmt: skip
    metrics = {"items_embedded": embedded, "items_skipped": skipped, "items_fallback_text": fallback, **health,
               **embed.report()}  # fmt: skip
    write_metrics(spark, cfg, "embed_items", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Embed item texts into the item_embeddings Delta table (incremental).", "embed-items", run)


if __name__ == "__main__":
    main()
