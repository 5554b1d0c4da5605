"""Complete: fill what the behaviour data is missing, each in its own Delta table (replaced per run id), never
touching observed values:

- `completed_ratings(user_id, item_id, predicted_rating, confidence, n_support, method, run_id)`: pairs with an
  interaction but no rating (views, clicks, purchases) plus the optional `complete.pairs` table; model and
  confidence in `behaviorlm.ratings`. A behaviour log without any rating (implicit-only) fills none: this run's rows
  are replaced by none, with a logged reason and the metric `ratings_skipped_no_ratings` = 1.
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

import functools
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.attributes import (
    FILLED,
    check_attributes,
    fill_attribute,
    label_f1,
    lacks_attribute,
    without_attribute,
)
from behaviorlm.config import Config
from behaviorlm.errors import InputContractError
from behaviorlm.factors import blended_ratings
from behaviorlm.metrics import rating_errors
from behaviorlm.ratings import PREDICTIONS, hidden, item_neighbors, rating_targets
from behaviorlm.text import fill_texts, item_texts
from behaviorlm.validate import check_columns
from behaviorlm.vectors import center
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)
NO_SIGNAL_MARGIN = 0.02  # validation micro-F1 within this of the frequency baseline's: the text predicts nothing


def in_scale(rated: DataFrame, cfg: Config) -> bool:
    """Whether there is any rating (False: none); an `InputContractError` when one lies outside the scale of these
    settings: ingest read them with another, and every fill would be clipped to this one (all 5.0 on a 1-10 log)."""
    lo, hi = rated.agg(F.min("rating"), F.max("rating")).first()
    ing = cfg.ingest
    if lo is not None and (lo < ing.rating_min or hi > ing.rating_max):
        raise InputContractError(
            f"table 'behaviors': column 'rating' holds {hi if hi > ing.rating_max else lo:g}, outside the scale "
            f"{ing.rating_min:g}..{ing.rating_max:g} of ingest.rating_min / ingest.rating_max: run complete with the "
            f"settings ingest ran with (e.g. --set ingest.rating_min={lo:g} --set ingest.rating_max={hi:g})"
        )
    return lo is not None


def complete_ratings(spark: SparkSession, cfg: Config, behaviors: DataFrame) -> dict[str, float]:
    """Observed ratings minus the holdout are the evidence; unrated pairs, requests and the holdout are targets.
    A behaviour log without any rating (clicks, views) has nothing to learn ratings from: skipped, with a reason."""
    comp, run_id = cfg.complete, cfg.run_id
    # A behaviours table written outside ingest may lack the optional column altogether: the same implicit-only log.
    rated = behaviors.where(F.col("rating").isNotNull()) if "rating" in behaviors.columns else None
    if rated is None or not in_scale(rated, cfg):
        log.warning("rating completion skipped: table 'behaviors' has no rating in any row (an implicit-only log: "
                    "views, clicks, purchases); nothing to learn ratings from")  # fmt: skip
        # This run's rows are replaced by none: a re-run after the log lost its ratings must not keep old fills.
        save_run(spark.createDataFrame([], PREDICTIONS), cfg, "completed_ratings")
        return {"ratings_skipped_no_ratings": 1.0}
    held = rated.where(hidden(comp.holdout, cfg.seed, "user_id", "item_id")) if comp.holdout else None
    evidence = rated.join(held.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti") if held else rated
    pairs = delta.read_source(spark, comp.pairs, "delta", setting="complete.pairs") if comp.pairs else None
    if pairs is not None:
        check_columns(pairs, f"complete.pairs ({comp.pairs})", {}, ["user_id", "item_id"])
    targets = rating_targets(behaviors, pairs)
    if held is not None:
        targets = targets.unionByName(held.select("user_id", "item_id"))
    sims = None
    if comp.item_weight > 0:
        item_vectors = params.item_space(cfg, params.table(spark, cfg, "item_embeddings"))
        sims = item_neighbors(item_vectors, comp.item_neighbors, cfg.block_size)
    neighbors = params.run_rows(spark, cfg, "user_neighbors", "similar_users")
    model, factors = params.rating_model(cfg), params.factor_model(cfg)
    ratings, als_weight = blended_ratings(targets, evidence, neighbors, sims, model, factors)
    metrics = {"ratings_filled": save_run(ratings, cfg, "completed_ratings"), "als_weight": als_weight}
    done = params.table(spark, cfg, "completed_ratings").where(F.col("run_id") == run_id)
    if held is not None:
        errors = rating_errors(done.withColumnRenamed("predicted_rating", "prediction"), held)
        metrics.update({"holdout_rmse": errors["rmse"], "holdout_mae": errors["mae"]})
        truth = held.select("user_id", "item_id", F.col("rating").alias("hidden_rating"))
        _log_examples("ratings (with the hidden rating)", done.join(truth, ["user_id", "item_id"]))
    return metrics


def complete_attributes(spark: SparkSession, cfg: Config, items: DataFrame) -> dict[str, float]:
    """One embedding per item of its text without the attribute, then k-NN voting, per configured attribute."""
    comp = cfg.complete
    embed = params.embed_fn(spark, cfg)
    metrics: dict[str, float] = {}
    filled = []
    for attribute in comp.attributes:
        if not comp.holdout and not lacks_attribute(items, attribute):
            log.info("attribute %r: every item has it; nothing to fill", attribute)
            continue
        texts = item_texts(items, without_attribute(cfg.embed.item_fields, attribute), cfg.embed.empty_text)
        # Encoded once: the threshold's validation, the neighbour search and the scoring all read them.
        vectors = center(texts.select("item_id", embed(F.col("text")).alias("embedding"))).localCheckpoint()
        hide = hidden(comp.holdout, cfg.seed, "item_id") if comp.holdout else None
        threshold = None if comp.label_threshold == "auto" else comp.label_threshold
        rows, truth, tuning = fill_attribute(items, attribute, vectors, hide, comp.attribute_neighbors, threshold,
                                             comp.attribute_similarity_power, cfg.block_size, cfg.seed)  # fmt: skip
        metrics |= {f"{attribute}_{name}": value for name, value in tuning.items()}
        if tuning.get("validation_f1", 1.0) < tuning.get("frequency_f1", 0.0) + NO_SIGNAL_MARGIN:
            log.warning("attribute %r: on validation items the fills score micro-F1 %.3f, barely better than giving "
                        "every item the same most frequent values (%.3f): the item text says little of it", attribute,
                        tuning["validation_f1"], tuning["frequency_f1"])  # fmt: skip
        rows = rows.localCheckpoint()  # searched once: the rows are written and scored
        filled.append(rows)
        if comp.holdout:
            on_hidden = rows.join(truth.select("item_id").distinct(), "item_id")
            metrics[f"holdout_{attribute}_micro_f1"] = label_f1(on_hidden, truth)
    # Written even when nothing was filled: this run's rows are replaced by none, as a re-run must leave them.
    union = functools.reduce(DataFrame.unionByName, filled) if filled else spark.createDataFrame([], FILLED)
    metrics["attribute_values_filled"] = save_run(union, cfg, "completed_attributes")
    if filled:
        _log_examples("attributes", union)
    return {**metrics, **embed.report()}


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    behaviors, items = params.table(spark, cfg, "behaviors"), params.table(spark, cfg, "items")
    check_attributes(items, cfg.complete.attributes, cfg.embed.item_fields)
    metrics = complete_ratings(spark, cfg, behaviors)
    metrics.update(complete_attributes(spark, cfg, items))
    texts = fill_texts(behaviors, items, cfg.embed.item_fields, cfg.embed.empty_text)
    metrics["behavior_rows_missing_text"] = save_run(texts, cfg, "completed_behaviors")
    done_texts = params.table(spark, cfg, "completed_behaviors").where(F.col("run_id") == cfg.run_id)
    metrics["behavior_rows_not_completed"] = done_texts.where(F.col("reason").isNotNull()).count()
    log.debug("completion: %s", metrics)
    write_metrics(spark, cfg, "complete", metrics)
    return metrics


def _short(value: object) -> object:
    return f"{value:.3f}" if isinstance(value, float) else value


def _log_examples(what: str, df: DataFrame, n: int = 5) -> None:
    keys = [c for c in df.columns if c.endswith("_id")]
    rows = df.orderBy(F.col("confidence").desc(), *keys).limit(n).collect()
    lines = ["  " + ", ".join(f"{k}={_short(v)}" for k, v in r.asDict().items() if k != "run_id") for r in rows]
    log.info("examples of filled %s:\n%s", what, "\n".join(lines))


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Fill missing ratings, item attributes and behaviour text.", "complete", run)


if __name__ == "__main__":
    main()
