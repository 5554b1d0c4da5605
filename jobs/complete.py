"""Complete: fill what the behaviour data is missing, each in its own Delta table (replaced per run id), never
touching observed values:

- `completed_ratings(user_id, item_id, predicted_rating, confidence, n_support, method, run_id)`: pairs with an
  interaction but no rating (views, clicks, purchases) plus the optional `complete.pairs` table; model and
  confidence in `jobs.completion`.
- `completed_attributes(item_id, attribute, value, confidence, n_support, method, run_id)`: items whose configured
  attribute (e.g. genres; array = multi-label) is missing, from the most similar items that have it, compared by the
  embedding of the item text rendered *without* that attribute.
- `completed_behaviors(user_id, item_id, event_type, ts, text, method, reason, run_id)`: behaviour rows without text
  get the item's catalogue text; rows that cannot be completed keep text null and say why in `reason`.

`complete.holdout` > 0 hides that seeded share of observed ratings and attribute values first, fills them like
missing ones and reports the error against the hidden truth (`holdout_rmse`, `holdout_<attribute>_micro_f1` in
run_metrics): how good the fills are on this very data.
Run: `behaviorlm complete --conf conf/local.yaml [--set complete.holdout=0.02]`.
"""

from __future__ import annotations

import logging
import re

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.completion import item_neighbors, label_f1, predict_labels, predict_ratings
from jobs.config import Config, ConfigError
from jobs.embed_items import item_texts
from jobs.encoding import make_embed_fn
from jobs.evaluation import rating_errors
from jobs.recommend import neighbors_for_run
from jobs.runtime import job_main, write_metrics
from jobs.validate import check_columns
from jobs.vectors import center

log = logging.getLogger(__name__)


def hidden(fraction: float, seed: int, *keys: str) -> Column:
    """A seeded, deterministic pick of about `fraction` of the rows (by a hash of their keys)."""
    return (F.abs(F.xxhash64(F.lit(seed), *[F.col(k) for k in keys])) % 1_000_000) < int(fraction * 1_000_000)


def rating_targets(behaviors: DataFrame, pairs: DataFrame | None) -> DataFrame:
    """(user_id, item_id) with an interaction or a request but no observed rating."""
    rated = behaviors.where(F.col("rating").isNotNull()).select("user_id", "item_id").distinct()
    wanted = behaviors.where(F.col("rating").isNull()).select("user_id", "item_id")
    if pairs is not None:
        wanted = wanted.unionByName(pairs.select(F.col("user_id").cast("string"), F.col("item_id").cast("string")))
    return wanted.distinct().join(rated, ["user_id", "item_id"], "left_anti")


def fill_texts(behaviors: DataFrame, items: DataFrame, fields: list[str], empty_text: str) -> DataFrame:
    """Behaviour rows with a missing/blank `text`, filled from the item catalogue text or given a reason."""
    texts = item_texts(items, fields, empty_text).select("item_id", F.col("text").alias("_t"), "fallback")
    missing = behaviors.where(F.col("text").isNull() | (F.trim("text") == ""))
    joined = missing.drop("text").join(texts, "item_id", "left")
    reason = F.when(F.col("_t").isNull(), "item_not_in_catalogue").when(F.col("fallback"), "item_has_no_text")
    return joined.select(
        "user_id",
        "item_id",
        "event_type",
        "ts",
        F.when(reason.isNull(), F.col("_t")).alias("text"),
        F.when(reason.isNull(), "item_catalogue_text").alias("method"),
        reason.alias("reason"),
    )


def attribute_labels(items: DataFrame, attribute: str) -> tuple[DataFrame, bool]:
    """(item_id, value) of items that have the attribute, and whether it is multi-label (an array column)."""
    if attribute not in items.columns:
        raise ConfigError(f"complete.attributes names {attribute!r}, but table 'items' has no such column")
    multi = dict(items.dtypes)[attribute].startswith("array")
    value = F.explode(attribute) if multi else F.col(attribute).cast("string")
    labels = items.select("item_id", value.alias("value")).where(F.col("value").isNotNull() & (F.col("value") != ""))
    return labels.distinct(), multi


def without_attribute(fields: list[str], attribute: str) -> list[str]:
    """The item text template minus the entries that mention {attribute}."""
    kept = [f for f in fields if f"{{{attribute}}}" not in f]
    if not kept or not re.search(r"\{\w+\}", " ".join(kept)):
        raise ConfigError(f"embed.item_fields has nothing left to describe items once {{{attribute}}} is removed")
    return kept


def fill_attribute(
    items: DataFrame, attribute: str, hide: Column | None, cfg: Config, vectors: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """(predictions for items missing the attribute (or hidden by `hide`), hidden truth labels)."""
    labels, multi = attribute_labels(items, attribute)
    has = labels.select("item_id").distinct()
    hidden_items = items.where(hide).select("item_id").join(has, "item_id") if hide is not None else has.limit(0)
    truth = labels.join(hidden_items, "item_id")
    known = labels.join(hidden_items, "item_id", "left_anti")
    targets = items.select("item_id").join(known.select("item_id").distinct(), "item_id", "left_anti")
    comp = cfg.complete
    threshold = comp.label_threshold if multi else 1.0  # single-label: only the best value
    predicted = predict_labels(
        known,
        vectors.join(targets, "item_id"),
        vectors.join(known.select("item_id").distinct(), "item_id"),
        comp.attribute_neighbors,
        threshold,
        comp.block_size,
        comp.attribute_similarity_power,
    )
    method = F.lit(f"knn{comp.attribute_neighbors}_item_text_without_{attribute}")
    rows = predicted.select("item_id", F.lit(attribute).alias("attribute"), "value", "confidence", "n_support",
                            method.alias("method"))  # fmt: skip
    return rows, truth


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    comp, run_id = cfg.complete, cfg.run_id

    def table(name: str) -> DataFrame:
        return delta_io.read_table(spark, delta_io.table_ref(cfg.tables, name))

    def save(df: DataFrame, name: str) -> int:
        ref = delta_io.table_ref(cfg.tables, name)
        delta_io.replace_where(df.withColumn("run_id", F.lit(run_id)), ref, f"run_id = '{run_id}'")
        return int(delta_io.last_operation_metrics(spark, ref).get("numOutputRows", 0))

    behaviors, items = table("behaviors"), table("items")
    metrics: dict[str, float] = {}
    # Ratings: observed minus the holdout are the evidence; unrated pairs, requests and the holdout are targets.
    rated = behaviors.where(F.col("rating").isNotNull())
    held = rated.where(hidden(comp.holdout, cfg.evaluate.seed, "user_id", "item_id")) if comp.holdout else None
    evidence = rated.join(held.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti") if held else rated
    pairs = delta_io.read_source(spark, comp.pairs, "delta") if comp.pairs else None
    if pairs is not None:
        check_columns(pairs, f"complete.pairs ({comp.pairs})", {}, ["user_id", "item_id"])
    targets = rating_targets(behaviors, pairs)
    if held is not None:
        targets = targets.unionByName(held.select("user_id", "item_id"))
    item_vectors = table("item_embeddings").select("item_id", "embedding")
    if cfg.embed.center_items:
        item_vectors = center(item_vectors)
    sims = item_neighbors(item_vectors, comp.item_neighbors, comp.block_size) if comp.item_weight > 0 else None
    neighbors = neighbors_for_run(table("user_neighbors"), run_id)
    scale = (cfg.ingest.rating_min, cfg.ingest.rating_max)
    ratings = predict_ratings(targets, evidence, neighbors, sims, comp, scale)
    metrics["ratings_filled"] = save(ratings, "completed_ratings")
    done = table("completed_ratings").where(F.col("run_id") == run_id)
    if held is not None:
        errors = rating_errors(done.withColumnRenamed("predicted_rating", "prediction"), held)
        metrics.update({"holdout_rmse": errors["rmse"], "holdout_mae": errors["mae"]})
        truth = held.select("user_id", "item_id", F.col("rating").alias("hidden_rating"))
        _log_examples("ratings (with the hidden rating)", done.join(truth, ["user_id", "item_id"]))
    # Attributes: one embedding per item of its text without the attribute, then k-NN voting.
    embed = make_embed_fn(spark, cfg)
    filled = []
    for attribute in comp.attributes:
        fields = without_attribute(cfg.embed.item_fields, attribute)
        texts = item_texts(items, fields, cfg.embed.empty_text)
        vectors = center(texts.select("item_id", embed(F.col("text")).alias("embedding")))
        hide = hidden(comp.holdout, cfg.evaluate.seed, "item_id") if comp.holdout else None
        rows, truth = fill_attribute(items, attribute, hide, cfg, vectors)
        rows = rows.localCheckpoint()  # encode once: the rows are written and scored
        filled.append(rows)
        if comp.holdout:
            on_hidden = rows.join(truth.select("item_id").distinct(), "item_id")
            metrics[f"holdout_{attribute}_micro_f1"] = label_f1(on_hidden, truth)
    if filled:
        union = filled[0]
        for rows in filled[1:]:
            union = union.unionByName(rows)
        metrics["attribute_values_filled"] = save(union, "completed_attributes")
        _log_examples("attributes", union)
    # Behaviour text.
    texts = fill_texts(behaviors, items, cfg.embed.item_fields, cfg.embed.empty_text)
    metrics["behavior_rows_missing_text"] = save(texts, "completed_behaviors")
    done_texts = table("completed_behaviors").where(F.col("run_id") == run_id)
    metrics["behavior_rows_not_completed"] = done_texts.where(F.col("reason").isNotNull()).count()
    metrics.update(embed.report())
    log.info("completion: %s", metrics)
    write_metrics(spark, cfg, "complete", metrics)
    return metrics


def _log_examples(what: str, df: DataFrame, n: int = 5) -> None:
    keys = [c for c in df.columns if c.endswith("_id")]
    rows = df.orderBy(F.col("confidence").desc(), *keys).limit(n).collect()
    lines = ["  " + ", ".join(f"{k}={v}" for k, v in r.asDict().items() if k != "run_id") for r in rows]
    log.info("examples of filled %s:\n%s", what, "\n".join(lines))


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Fill missing ratings, item attributes and behaviour text.", "complete", run)


if __name__ == "__main__":
    main()
