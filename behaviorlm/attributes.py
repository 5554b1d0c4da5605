"""Item attributes (genres, categories, ...) filled by k-NN voting: the k items most similar to an item, by the
embedding of its text rendered *without* the attribute, that have the attribute vote for their values with weight
max(cosine, 0) ** power; a value's confidence is its vote share. Array columns are multi-label."""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import BLOCK_SIZE
from behaviorlm.errors import ConfigError
from behaviorlm.neighbors import exact_top_k

# What `fill_attribute` returns (its first frame).
FILLED = "item_id string, attribute string, value string, confidence double, n_support int, method string"


def attribute_labels(items: DataFrame, attribute: str) -> tuple[DataFrame, bool]:
    """(item_id, value) of items that have the attribute, and whether it is multi-label (an array column)."""
    check_attributes(items, [attribute])
    multi = dict(items.dtypes)[attribute].startswith("array")
    value = F.explode(attribute) if multi else F.col(attribute).cast("string")
    labels = items.select("item_id", value.alias("value")).where(F.col("value").isNotNull() & (F.col("value") != ""))
    return labels.distinct(), multi


def lacks_attribute(items: DataFrame, attribute: str) -> bool:
    """Whether any item of `items` has no value of `attribute` (null or an empty list)."""
    labels, _ = attribute_labels(items, attribute)
    return not items.select("item_id").join(labels.select("item_id"), "item_id", "left_anti").isEmpty()


def check_attributes(items: DataFrame, attributes: list[str], fields: list[str] | None = None) -> None:
    """Raise `ConfigError` for an attribute `items` lacks, or (with the item text template `fields`) one whose removal
    leaves nothing to describe items: checked before any work, so a wrong setting fails in seconds."""
    for attribute in attributes:
        if attribute not in items.columns:
            raise ConfigError(f"complete.attributes names {attribute!r}, but table 'items' has no such column")
        if fields is not None:
            without_attribute(fields, attribute)


def without_attribute(fields: list[str], attribute: str) -> list[str]:
    """The item text template minus the entries that mention {attribute}."""
    kept = [f for f in fields if f"{{{attribute}}}" not in f]
    if not kept or not re.search(r"\{\w+\}", " ".join(kept)):
        raise ConfigError(f"embed.item_fields has nothing left to describe items once {{{attribute}}} is removed")
    return kept


def fill_attribute(
    items: DataFrame,
    attribute: str,
    vectors: DataFrame,
    hide: Column | None = None,
    k: int = 50,
    label_threshold: float = 0.25,
    power: float = 4.0,
    block_size: int = BLOCK_SIZE,
) -> tuple[DataFrame, DataFrame]:
    """(predictions for items missing the attribute (or hidden by `hide`), hidden truth labels).

    `vectors` are (item_id, embedding) of each item's text without the attribute.
    """
    labels, multi = attribute_labels(items, attribute)
    has = labels.select("item_id").distinct()
    hidden_items = items.where(hide).select("item_id").join(has, "item_id") if hide is not None else has.limit(0)
    truth = labels.join(hidden_items, "item_id")
    known = labels.join(hidden_items, "item_id", "left_anti")
    targets = items.select("item_id").join(known.select("item_id").distinct(), "item_id", "left_anti")
    threshold = label_threshold if multi else 1.0  # single-label: only the best value
    predicted = predict_labels(
        known,
        vectors.join(targets, "item_id"),
        vectors.join(known.select("item_id").distinct(), "item_id"),
        k,
        threshold,
        block_size,
        power,
    )
    method = F.lit(f"knn{k}_item_text_without_{attribute}")
    rows = predicted.select("item_id", F.lit(attribute).alias("attribute"), "value", "confidence", "n_support",
                            method.alias("method"))  # fmt: skip
    return rows, truth


def predict_labels(
    known: DataFrame,
    unknown_vectors: DataFrame,
    known_vectors: DataFrame,
    k: int,
    threshold: float,
    block: int,
    power: float = 4.0,
) -> DataFrame:
    """(item_id, value, confidence, n_support) for items in `unknown_vectors` from the labels (item_id, value) of
    their k nearest items in `known_vectors`. A value is kept when its share of the similarity mass reaches
    `threshold`; an item whose values all fall short keeps its single best value (every item gets one)."""
    found = exact_top_k(unknown_vectors, known_vectors, k, block, exclude_self=False, id_col="item_id")
    # Votes weigh max(cosine, 0) ** power: close items count far more than merely near ones; the tiny floor keeps
    # a vote when all k nearest have negative cosines (in a centred space they still are the nearest).
    votes = found.select(
        "item_id",
        F.col("neighbor_id").alias("_from"),
        (F.pow(F.greatest(F.col("similarity"), F.lit(0.0)), F.lit(power)) + 1e-9).alias("similarity"),
    )
    mass = votes.groupBy("item_id").agg(F.sum("similarity").alias("_mass"))
    labelled = votes.join(known.withColumnRenamed("item_id", "_from"), "_from")
    scored = (
        labelled.groupBy("item_id", "value")
        .agg(F.sum("similarity").alias("_votes"), F.count("*").alias("n_support"))
        .join(mass, "item_id")
        .withColumn("confidence", F.col("_votes") / F.col("_mass"))
    )
    best = Window.partitionBy("item_id").orderBy(F.col("confidence").desc(), F.col("value"))
    return (
        scored.withColumn("_rank", F.row_number().over(best))
        .where((F.col("confidence") >= threshold) | (F.col("_rank") == 1))
        .select("item_id", "value", "confidence", F.col("n_support").cast("int"))
    )


def label_f1(predicted: DataFrame, truth: DataFrame) -> float:
    """Micro-F1 over (item_id, value) pairs."""
    tp = predicted.join(truth, ["item_id", "value"]).count()
    n_pred, n_true = predicted.count(), truth.count()
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
