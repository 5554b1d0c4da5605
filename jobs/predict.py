"""Predict: each user's most likely next behaviours into `next_behaviors(user_id, item_id, rank, score, source,
reason, run_id)`, replaced per run id (a re-run leaves the same rows). Item-to-item transitions from the order of
behaviours, the recent-interest vector, the user's interest segments (this run's `item_segments` and
`user_interests`, or those written last; without them that source weighs 0) and popularity, blended by
`behaviorlm.predict`. With `predict.tune`, the weights are chosen on each user's last-but-one behaviour, from the
behaviours without the last one; the predictions then continue the full history.
Run: `behaviorlm predict --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.metrics import leave_last_out
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.predict import SOURCES, Inputs, Settings, candidates, predict, tune_on_last
from behaviorlm.text import display_titles
from behaviorlm.transitions import tied_share
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)
TIED_WARNING = 0.5  # share of items tied with another of the user's (`tied_share`) above which the log is warned of


def settings(cfg: Config) -> Settings:
    p = cfg.predict
    # The items source costs an EASE fit: skipped when it weighs 0 and tuning cannot give it weight.
    items = p.weights.get("items", 0.0) > 0 or (p.tune and max(p.grid.get("items", [0.0])) > 0)
    return Settings(k=p.k, window=p.window, history=p.history, decay=p.decay, recent_items=p.recent_items,
                    candidates=p.candidates, session_gap_hours=p.session_gap_hours,
                    together_gap_seconds=p.together_gap_seconds, together_window=p.together_window,
                    items=items, item_reg=p.item_reg, item_max_items=p.item_max_items, seed=cfg.seed,
                    block_size=cfg.block_size)  # fmt: skip


def segment_tables(spark: SparkSession, cfg: Config) -> tuple[DataFrame | None, DataFrame | None]:
    """This run's (item_segments, user_interests), or the runs written last; (None, None) when either is missing."""
    refs = [delta.table_ref(cfg.tables, name) for name in ("item_segments", "user_interests")]
    if not all(delta.table_exists(spark, ref) for ref in refs):
        log.info("no item_segments/user_interests tables (run `segments` first): the segments source weighs 0")
        return None, None
    item_segments, interests = (params.run_rows(spark, cfg, ref.name, "segments") for ref in refs)
    # Reasons say the segment's name ("in your interest: Sci-Fi"), else its label (a table written before names).
    said = [F.col(c) for c in ("name", "label") if c in interests.columns]
    label = (F.coalesce(*said) if said else F.lit(None).cast("string")).alias("label")
    return (item_segments.select("item_id", "segment_id", F.col("similarity").cast("double")),
            interests.select("user_id", "segment_id", F.col("weight").cast("double"), label))  # fmt: skip


def read_inputs(spark: SparkSession, cfg: Config) -> Inputs:
    """Behaviours, titles, valid centred item vectors (an item without one simply has no `recent` score) and the
    segment tables when present."""
    raw = params.table(spark, cfg, "item_embeddings").select("item_id", "embedding")
    valid, _ = split_valid(raw, vector_dim(raw), id_col="item_id")
    item_segments, interests = segment_tables(spark, cfg)
    return Inputs(
        behaviors=params.table(spark, cfg, "behaviors").select("user_id", "item_id", "ts"),
        items=display_titles(params.table(spark, cfg, "items")),
        item_vectors=params.item_space(cfg, valid).persist(StorageLevel.MEMORY_AND_DISK),
        item_segments=item_segments,
        interests=interests,
    )


def choose_weights(inp: Inputs, cfg: Config, s: Settings) -> tuple[dict[str, float], dict[str, float]]:
    """The blend weights (tuned on the last-but-one behaviour when `predict.tune`) and the tuning metrics."""
    p = cfg.predict
    weights, grid = dict(p.weights), dict(p.grid)
    if inp.item_segments is None:
        weights["segments"], grid["segments"] = 0.0, [0.0]
    if not p.tune:
        return weights, {}
    prefix, _ = leave_last_out(inp.behaviors, cfg.seed)
    weights, found = tune_on_last(replace(inp, behaviors=prefix), s, grid, weights)
    if not found["users"]:  # no user kept a behaviour to aim at: nothing was measured, and no score is reported
        log.info("predict.tune: no user has behaviours enough to hold one out and aim at it; the weights stay as "
                 "configured: %s", weights)  # fmt: skip
        return weights, {"validation_users": 0}
    log.info("tuned on the last-but-one behaviour of %d users: weights %s (hr@%d %.4f, ndcg@%d %.4f)",
             found["users"], weights, p.k, found["hr_at_k"], p.k, found["ndcg_at_k"])  # fmt: skip
    return weights, {
        "validation_users": found["users"],
        f"validation_hr_at_{p.k}": found["hr_at_k"],
        f"validation_ndcg_at_{p.k}": found["ndcg_at_k"],
    }


def summary(table: DataFrame, behaviors: DataFrame, k: int) -> dict[str, float]:
    """Users with a history (each is predicted for), those given fewer than k items (none at all included: a user
    who has had the whole catalogue), and the share of each source."""
    counts = {r["source"]: r["count"] for r in table.groupBy("source").count().collect()}
    per_user = behaviors.select("user_id").distinct().join(table.groupBy("user_id").count(), "user_id", "left")
    users = per_user.agg(
        F.count("*").alias("n"), F.sum(F.coalesce(F.col("count") < k, F.lit(True)).cast("int")).alias("short")
    ).first()
    total = max(sum(counts.values()), 1)
    return {"users": users["n"], "rows": sum(counts.values()), "users_short": users["short"] or 0,
            **{f"share_{s}": counts.get(s, 0) / total for s in SOURCES}}  # fmt: skip


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    inp = read_inputs(spark, cfg)
    s = settings(cfg)
    weights, tuned = choose_weights(inp, cfg, s)
    cands = candidates(inp, s)
    columns = ["user_id", "item_id", F.col("rank").cast("int"), F.col("score").cast("double"), "source", "reason"]
    save_run(predict(cands, inp, s, weights).select(columns), cfg, "next_behaviors")
    table = params.table(spark, cfg, "next_behaviors").where(F.col("run_id") == cfg.run_id)
    weighed = {f"weight_{src}": weights.get(src, 0.0) for src in SOURCES}
    tied = tied_share(inp.behaviors)
    if tied > TIED_WARNING:
        log.warning("%.0f%% of the users' items share their timestamp with another of theirs: their order is unknown, "
                    "so reasons say 'one of N chosen at your latest time' and what follows what is learnt both ways",
                    100 * tied)  # fmt: skip
    metrics = {**summary(table, inp.behaviors, s.k), **tuned, **weighed, "tied_share": tied}
    log.info("next behaviours for %d users: %s", metrics["users"], metrics)
    example = table.join(inp.items, "item_id", "left").orderBy(F.xxhash64("user_id"), "user_id", "rank").limit(3)
    if example := example.collect():
        lines = (f"  user {r['user_id']} {r['rank']}. {r['title'] or r['item_id']}: {r['reason']}" for r in example)
        log.info("examples:\n%s", "\n".join(lines))
    write_metrics(spark, cfg, "predict", metrics)
    inp.item_vectors.unpersist()
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Each user's next behaviours (transitions + recent interest + segments) into next_behaviors.",
                    "predict", run)  # fmt: skip


if __name__ == "__main__":
    main()
