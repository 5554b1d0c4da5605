"""Intents: match each message of `messages(message_id, text, user_id?)` to an intent learnt from the labelled
`intent_examples(text, intent)` and answer it from `intent_answers(intent, answer_template)` (optional) into
`message_intents(message_id, intent, confidence, answer, fallback, run_id)`, replaced per run id. The classifier
(`behaviorlm.intents`, on frozen embeddings) is saved under `<tables.root>/<intents.model_dir>/<run_id>` and
reloaded for scoring; a message below the confidence threshold (chosen on held-out examples unless
`intents.threshold` is set) is out of scope: `intent` null, `fallback` true, no answer; so is a blank one, or one the
encoders read too little of (under `model.min_readable_share` of its letters in known tokens, e.g. a script they do
not know: `messages_unreadable`), without a confidence: its vector would mean nothing, and the threshold is no guard
against it. Templates
use `{user_id}` and `{interest}` (the user's top interest from `user_interests`, when the segments stage wrote it).
Without `intent_examples` or `messages` the stage logs one line and writes nothing.
Run: `behaviorlm intents --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.answers import check_templates, render_answers, top_interest
from behaviorlm.config import Config
from behaviorlm.embedding import Embedder
from behaviorlm.intents import (
    UNCHOSEN_THRESHOLD,
    IntentModel,
    choose_threshold,
    decide,
    example_ids,
    fit_intents,
    load_intents,
    save_intents,
    score_intents,
    split_examples,
)  # fmt: skip
from behaviorlm.search import UNREADABLE, encode_texts, one_per_id, require_columns
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)
COLUMNS = {"intent_examples": ["text", "intent"], "messages": ["message_id", "text"]}


def read_inputs(spark: SparkSession, cfg: Config) -> tuple[DataFrame, DataFrame] | None:
    """(examples, messages) with their required columns checked; None when either table does not exist."""
    frames = []
    for name, required in COLUMNS.items():
        ref = delta.table_ref(cfg.tables, name)
        if not delta.input_exists(spark, ref):
            log.info("intents: no %s table %s; nothing to match", name, ref)
            return None
        frame = delta.read_table(spark, ref)
        require_columns(frame, name, required)
        frames.append(frame)
    examples, messages = frames
    messages = one_per_id(messages, "message_id")
    examples = examples.select(F.col("text").cast("string"), F.col("intent").cast("string"))
    return examples, messages


def model_path(cfg: Config) -> str:
    return f"{delta.location_ref('model_dir', cfg.intents.model_dir, cfg.tables.root).location}/{cfg.run_id}"


def train(cfg: Config, examples: DataFrame, embed: Embedder) -> tuple[IntentModel, dict[str, float], DataFrame]:
    """(model, metrics, the encoded examples, cached): fit on every usable example; unless `intents.threshold` is
    set, first fit without the held-out share and choose the threshold on it."""
    it = cfg.intents
    labelled = example_ids(examples.where(F.trim("intent") != ""))
    encoded, _ = encode_texts(labelled, embed)
    encoded = split_examples(encoded, it.validation_share, cfg.seed).persist(StorageLevel.MEMORY_AND_DISK)
    start = time.perf_counter()
    threshold, chosen = it.threshold, None
    if threshold is None:
        held_out = fit_intents(encoded.where(~F.col("validation")), it.method, it.reg, it.max_iter, it.oos_label)
        scored = score_intents(held_out, encoded.where("validation"), "example_id", cfg.block_size)
        truth = encoded.select("example_id", F.col("intent").alias("truth"))
        chosen = choose_threshold(scored.join(truth, "example_id"), "truth", it.oos_label)
        threshold = UNCHOSEN_THRESHOLD[it.method] if chosen is None else chosen
        if chosen is None:
            log.warning("intents: no held-out example to choose the threshold on (too few examples per intent, or "
                        "none held out was matched right); using %.2f for %s: set intents.threshold to choose another",
                        threshold, it.method)  # fmt: skip
    model = replace(fit_intents(encoded, it.method, it.reg, it.max_iter, it.oos_label), threshold=threshold)
    stats = encoded.agg(F.count("*").alias("n"), F.sum(F.col("validation").cast("int")).alias("held"),
                        F.sum((F.col("intent") == it.oos_label).cast("int")).alias("oos")).first()  # fmt: skip
    metrics = {"examples": stats["n"], "examples_unusable": examples.count() - stats["n"],
               "examples_held_out": stats["held"] or 0, "examples_oos": stats["oos"] or 0,
               "intents": len([x for x in model.labels if x != it.oos_label]), "threshold": threshold,
               "threshold_chosen": int(chosen is not None), "train_s": time.perf_counter() - start}  # fmt: skip
    return model, metrics, encoded


def answers(spark: SparkSession, cfg: Config, examples: DataFrame) -> tuple[DataFrame | None, DataFrame | None, dict]:
    """(templates, interests, counts): the usable answer templates of the examples' intents (checked before any
    training) and each user's top interest (None when absent)."""
    ref = delta.table_ref(cfg.tables, "intent_answers")
    templates, counts = None, {}
    if delta.input_exists(spark, ref):
        table = delta.read_table(spark, ref)
        require_columns(table, "intent_answers", ["intent", "answer_template"])
        known = [
            r[0] for r in examples.where(F.col("intent") != cfg.intents.oos_label).select("intent").distinct().collect()
        ]
        templates, counts = check_templates(table, known)
    ref = delta.table_ref(cfg.tables, "user_interests")
    interests = None
    if delta.table_exists(spark, ref):
        interests = top_interest(params.run_rows(spark, cfg, "user_interests", "segments"))
    return templates, interests, counts


def match(
    cfg: Config, picked: DataFrame, encoded: DataFrame, blank: DataFrame, model: IntentModel,
    templates: DataFrame | None, interests: DataFrame | None,
) -> DataFrame:  # fmt: skip
    """(message_id, intent, confidence, answer, fallback) for every message with an id (a blank one: fallback, no
    confidence)."""
    scored = score_intents(model, encoded.select("message_id", "embedding"), "message_id", cfg.block_size)
    decided = decide(scored, model.threshold).join(picked.select("message_id", "user_id"), "message_id")
    if templates is None:
        found = decided.withColumn("answer", F.lit(None).cast("string"))
    else:
        found = render_answers(decided, templates, interests)
    empty = blank.select("message_id", F.lit(None).cast("string").alias("intent"),
                         F.lit(None).cast("double").alias("confidence"), F.lit(None).cast("string").alias("answer"),
                         F.lit(True).alias("fallback"))  # fmt: skip
    columns = ["message_id", "intent", F.col("confidence").cast("double"), "answer", "fallback"]
    return found.select(columns).unionByName(empty)


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    inputs = read_inputs(spark, cfg)
    if inputs is None:
        metrics = {"messages": 0}
        write_metrics(spark, cfg, "intents", metrics)
        return metrics
    examples, messages = inputs
    templates, interests, counts = answers(spark, cfg, examples)
    embed = params.intents_embed(spark, cfg)
    fitted, metrics, encoded = train(cfg, examples, embed)
    metrics["encoders"] = len(getattr(embed, "parts", [embed]))
    path = model_path(cfg)
    save_intents(fitted, path)
    encoded.unpersist()
    model = load_intents(spark, path)
    picked = messages.where("_n = 1").drop("_n")
    encoded, blank = encode_texts(picked, embed, min_readable=cfg.model.min_readable_share)
    unreadable = blank.where(F.col("_why") == UNREADABLE).count()
    encoded = encoded.persist(StorageLevel.MEMORY_AND_DISK)
    found = match(cfg, picked, encoded, blank, model, templates, interests)
    save_run(found, cfg, "message_intents")
    encoded.unpersist()
    own = params.table(spark, cfg, "message_intents").where(F.col("run_id") == cfg.run_id)
    metrics |= counts | message_metrics(messages, own, templates is not None, unreadable)
    if metrics["messages_unanswered"]:
        log.warning("intents: %d matched message(s) got no answer: their intent has no template, or every sentence of "
                    "it names {user_id} or {interest} and the message has no user or the user no interest",
                    metrics["messages_unanswered"])  # fmt: skip
    log.info("intents: threshold %.3f, model %s: %s", model.threshold, path, metrics)
    write_metrics(spark, cfg, "intents", metrics)
    return metrics


def message_metrics(
    messages: DataFrame, written: DataFrame, answering: bool = True, unreadable: int = 0
) -> dict[str, float]:
    """Messages matched, skipped (a duplicate or no id), blank, unreadable (`unreadable` of those written without a
    confidence the encoders read too little of), out of scope, answered, and matched (in scope) but left without an
    answer (0 when not `answering`: there is no answers table to answer from)."""
    read = messages.agg(F.count("*").alias("rows"), F.sum((F.col("_n") == 1).cast("int")).alias("ids")).first()
    out = written.agg(F.count("*").alias("n"), F.sum(F.col("fallback").cast("int")).alias("fallback"),
                      F.sum(F.col("confidence").isNull().cast("int")).alias("blank"),
                      F.count("answer").alias("answered")).first()  # fmt: skip
    unanswered = (out["n"] or 0) - (out["fallback"] or 0) - out["answered"] if answering else 0
    return {"messages": out["n"], "messages_skipped": read["rows"] - (read["ids"] or 0),
            "messages_blank": (out["blank"] or 0) - unreadable, "messages_unreadable": unreadable,
            "messages_fallback": out["fallback"] or 0,
            "messages_answered": out["answered"],
            "messages_unanswered": unanswered}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Intent matching: messages -> message_intents (with answers).", "intents", run)


if __name__ == "__main__":
    main()
