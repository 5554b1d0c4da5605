"""Embed items: render each item's text from the configured fields, hash it, and encode only new or changed texts
(or all of them when the model changed) into `item_embeddings(item_id, text_hash, embedding, model, dim,
updated_at)` with a Delta MERGE. Items gone from the catalogue lose their vector.

Run: `behaviorlm embed-items --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
import re

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import Config, ConfigError
from jobs.encoding import EmbedFn, make_embed_fn, model_info
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)
_FIELD = re.compile(r"\{(\w+)\}")


def _field_text(items: DataFrame, name: str) -> Column:
    if name not in items.columns:
        raise ConfigError(f"embed.item_fields names {{{name}}}, but table 'items' has no such column: {items.columns}")
    col = F.col(name)
    if dict(items.dtypes)[name].startswith("array"):
        return F.when(F.size(col) > 0, F.array_join(col, ", "))
    return F.when(F.trim(col.cast("string")) != "", F.trim(col.cast("string")))


def render_template(items: DataFrame, entry: str) -> Column:
    """One template entry as a column: null unless every {field} in it has a value (concat is null-propagating)."""
    parts: list[Column] = []
    pos = 0
    for match in _FIELD.finditer(entry):
        parts += [F.lit(entry[pos : match.start()]), _field_text(items, match.group(1))]
        pos = match.end()
    parts.append(F.lit(entry[pos:]))
    return F.concat(*parts)


def item_texts(items: DataFrame, fields: list[str], empty_text: str, item_col: str = "item_id") -> DataFrame:
    """(item_id, text, text_hash, fallback): the rendered text, its SHA-256, and whether `empty_text` was used."""
    rendered = F.trim(F.concat_ws(" ", *[render_template(items, f) for f in fields]))
    return (
        items.select(F.col(item_col).alias("item_id"), rendered.alias("_text"))
        .select(
            "item_id",
            F.when(F.col("_text") != "", F.col("_text")).otherwise(F.lit(empty_text)).alias("text"),
            (F.col("_text") == "").alias("fallback"),
        )
        .withColumn("text_hash", F.sha2(F.col("text"), 256))
    )


def mark_changed(texts: DataFrame, existing: DataFrame | None, model: str) -> DataFrame:
    """Adds `changed`: true when the item has no vector yet, its text hash differs, or the model differs."""
    if existing is None:
        return texts.withColumn("changed", F.lit(True))
    old = existing.select("item_id", F.col("text_hash").alias("_old_hash"), F.col("model").alias("_old_model"))
    changed = F.col("_old_hash").isNull() | (F.col("_old_hash") != F.col("text_hash")) | (F.col("_old_model") != model)
    return texts.join(old, "item_id", "left").withColumn("changed", changed).drop("_old_hash", "_old_model")


def embed_changed(marked: DataFrame, embed: EmbedFn, model: str, dim: int) -> DataFrame:
    """MERGE source: changed rows with fresh vectors, unchanged rows with only their key (so deletes work)."""
    fresh = marked.where("changed").withColumn("embedding", embed(F.col("text")))
    stale = marked.where("not changed").withColumn("embedding", F.lit(None).cast("array<float>"))
    return fresh.unionByName(stale).select(
        "item_id",
        "text_hash",
        "embedding",
        F.lit(model).alias("model"),
        F.lit(dim).alias("dim"),
        F.current_timestamp().alias("updated_at"),
        "changed",
    )


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    items = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "items"))
    target = delta_io.table_ref(cfg.tables, "item_embeddings")
    existing = delta_io.read_table(spark, target) if delta_io.table_exists(spark, target) else None
    model, dim = model_info(cfg)
    marked = mark_changed(item_texts(items, cfg.embed.item_fields, cfg.embed.empty_text), existing, model)
    marked = marked.persist(StorageLevel.MEMORY_AND_DISK)
    counts = {r["changed"]: (r["n"], r["fallback"]) for r in marked.groupBy("changed").agg(
        F.count("*").alias("n"), F.sum(F.col("fallback").cast("int")).alias("fallback")).collect()}  # fmt: skip
    embed = make_embed_fn(spark, cfg)
    source = embed_changed(marked, embed, model, dim).persist(StorageLevel.MEMORY_AND_DISK)
    # Encode once, here: MERGE may scan its source more than once.
    source.where("changed").count()
    delta_io.merge(source, target, ["item_id"], changed="changed", delete_missing=True)
    source.unpersist()
    marked.unpersist()
    embedded, skipped = counts.get(True, (0, 0))[0], counts.get(False, (0, 0))[0]
    fallback = sum(f or 0 for _, f in counts.values())
    log.info("items embedded=%d skipped (unchanged)=%d fallback_text=%d", embedded, skipped, fallback)
    metrics = {"items_embedded": embedded, "items_skipped": skipped, "items_fallback_text": fallback, **embed.report()}
    write_metrics(spark, cfg, "embed_items", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Embed item texts into the item_embeddings Delta table (incremental).", "embed-items", run)


if __name__ == "__main__":
    main()
