"""Item attributes (genres, categories, ...) filled by k-NN voting: the k items most similar to an item, by the
embedding of its text rendered *without* the attribute, that have the attribute vote for their values with weight
max(cosine, 0) ** power; a value's confidence is its vote share. Array columns are multi-label: a value is kept from
a vote share chosen on a validation slice of the items that have the attribute (`choose_label_threshold`), and that
slice's micro-F1 is reported beside the best F1 of giving every item the same most frequent values
(`frequency_f1`), which says whether the item text predicts the attribute at all."""

from __future__ import annotations

import re
from collections import Counter

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import BLOCK_SIZE, SEED
from behaviorlm.errors import ConfigError
from behaviorlm.metrics import hashed_share
from behaviorlm.neighbors import exact_top_k
from behaviorlm.summaries import smallest_by_hash

# What `fill_attribute` returns (its first frame).
FILLED = "item_id string, attribute string, value string, confidence double, n_support int, method string"
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)  # vote shares `choose_label_threshold` tries
VALIDATION_SHARE = 0.1  # of the items with the attribute, held out to choose the threshold
MAX_VALIDATION = 5000  # at most this many of them (a seeded pick): the search over them costs held x rest
MIN_VALIDATION = 20  # validation items needed to choose; fewer: DEFAULT_THRESHOLD
DEFAULT_THRESHOLD = 0.25


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
    label_threshold: float | None = None,
    power: float = 4.0,
    block_size: int = BLOCK_SIZE,
    seed: int = SEED,
) -> tuple[DataFrame, DataFrame, dict[str, float]]:
    """(predictions for items missing the attribute (or hidden by `hide`), hidden truth labels, what choosing the
    threshold measured: `choose_label_threshold`'s, {} for a single-label attribute or a given threshold).

    `vectors` are (item_id, embedding) of each item's text without the attribute. A multi-label value is kept from
    a vote share of `label_threshold`, or None: chosen on a validation slice of the items that keep the attribute.
    """
    labels, multi = attribute_labels(items, attribute)
    has = labels.select("item_id").distinct()
    hidden_items = items.where(hide).select("item_id").join(has, "item_id") if hide is not None else has.limit(0)
    truth = labels.join(hidden_items, "item_id")
    known = labels.join(hidden_items, "item_id", "left_anti")
    targets = items.select("item_id").join(known.select("item_id").distinct(), "item_id", "left_anti")
    tuning: dict[str, float] = {}
    if not multi:
        threshold = 1.0  # single-label: only the best value
    elif label_threshold is None:
        threshold, tuning = choose_label_threshold(known, vectors, k, power, block_size, seed)
    else:
        threshold = label_threshold
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
    return rows, truth, tuning


def choose_label_threshold(
    known: DataFrame, vectors: DataFrame, k: int, power: float, block: int, seed: int = SEED
) -> tuple[float, dict[str, float]]:
    """(the vote share of THRESHOLDS with the best micro-F1 on a seeded VALIDATION_SHARE of the `known` (item_id,
    value) items, their values predicted from the others; {label_threshold, validation_items, validation_f1,
    frequency_f1}). frequency_f1 is the best micro-F1 of giving every validation item the same m most frequent
    values (m from 1 to 20): a validation_f1 not above it means the text says nothing of the attribute. Ties go to
    the higher share (fewer values); with fewer than MIN_VALIDATION items, DEFAULT_THRESHOLD and no F1."""
    items = known.select("item_id").distinct()
    share = items.where(hashed_share("item_id", 0.0, VALIDATION_SHARE, seed + 1))
    held = smallest_by_hash(share, MAX_VALIDATION, F.xxhash64("item_id", F.lit(seed)), "item_id").localCheckpoint()
    n_held = held.count()
    if n_held < MIN_VALIDATION:
        return DEFAULT_THRESHOLD, {"label_threshold": DEFAULT_THRESHOLD, "validation_items": float(n_held)}
    rest = known.join(held, "item_id", "left_anti")
    votes = predict_labels(rest, vectors.join(held, "item_id"), vectors.join(rest.select("item_id").distinct(),
                           "item_id"), k, min(THRESHOLDS), block, power).toPandas()  # fmt: skip
    truth = {(r["item_id"], r["value"]) for r in known.join(held, "item_id").collect()}
    votes["top"] = votes.index.isin(votes.sort_values(["confidence", "value"], ascending=[False, True])
                                    .groupby("item_id").head(1).index)  # fmt: skip
    pairs = list(zip(votes["item_id"], votes["value"]))
    scores = {t: _f1({p for p, keep in zip(pairs, (votes["confidence"] >= t) | votes["top"]) if keep}, truth)
              for t in THRESHOLDS}  # fmt: skip
    best = max(THRESHOLDS, key=lambda t: (scores[t], t))
    # The same m most frequent values (by the other items) for every held item: hits are those values' counts among
    # the held items' truth, so no (item, value) pair is formed.
    frequent = [r["value"] for r in rest.groupBy("value").count().orderBy(F.desc("count"), "value").limit(20).collect()]
    held_counts = Counter(value for _, value in truth)
    frequency = max(
        2 * sum(held_counts[v] for v in frequent[:m]) / (m * n_held + len(truth)) for m in range(1, len(frequent) + 1)
    )
    return best, {"label_threshold": best, "validation_items": float(n_held), "validation_f1": scores[best],
                  "frequency_f1": frequency}  # fmt: skip


def _f1(predicted: set, truth: set) -> float:
    """Micro-F1 of (item, value) pairs."""
    hits = len(predicted & truth)
    return 2 * hits / (len(predicted) + len(truth)) if hits else 0.0


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
