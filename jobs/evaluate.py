"""Evaluate: an offline backtest of the recommender against a held-out part of the behaviours, beside baselines.

Each user's (user, item) pairs are split (`evaluate.split`: stratified random share, or chronological) into train
and test. User vectors and neighbours are rebuilt from train only, in this run's own tables under
`<tables.root>/<evaluate.workdir>/<run_id>/` (item vectors are shared: they depend on item text only). With
`evaluate.tune`, the blend (similarity power, content and popularity weights) is first chosen on a validation
split carved out of train, never on test. Then precision/recall/nDCG@k, MAP, hit rate and catalogue coverage are
measured on test for the blend and for the baselines (popularity; Spark MLlib ALS, implicit), written to
`run_metrics` (stage `evaluate`, metric `<model>.<name>`) and logged as a table.
Run: `behaviorlm evaluate --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging
import re

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from behaviorlm import delta
from behaviorlm.backtest import COLUMNS, als_recommendations, grid_search, score_models, split
from behaviorlm.config import Config
from behaviorlm.embedding import EmbedFn
from behaviorlm.metrics import format_table
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.scoring import Inputs, blend, candidates, repower
from behaviorlm.session import is_connect
from jobs import params
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)


def workdir(cfg: Config, name: str) -> str:
    """This run's own folder for one backtest split's tables (the run id made safe as a folder name)."""
    run = re.sub(r"[^A-Za-z0-9._-]", "_", cfg.run_id)
    return f"{cfg.tables.root.rstrip('/')}/{cfg.evaluate.workdir}/{run}/{name}"


def stash(df: DataFrame, folder: str, name: str) -> DataFrame:
    """Write `df` as a Delta table under `folder` and read it back: a lineage cut that survives a lost executor."""
    ref = delta.location_ref(name, f"{folder}/{name}")
    delta.overwrite(df, ref)
    return delta.read_table(df.sparkSession, ref)


def rebuild(spark: SparkSession, cfg: Config, train: DataFrame, embed: EmbedFn, name: str) -> Inputs:
    """The recommender's inputs with user vectors and neighbours rebuilt from `train` alone."""
    folder = workdir(cfg, name)
    item_vectors = params.table(spark, cfg, "item_embeddings")
    items = params.table(spark, cfg, "items")
    users = stash(params.users(cfg, train, item_vectors, items, embed), folder, "user_embeddings")
    valid, _ = split_valid(users, vector_dim(users))
    neighbors = stash(params.neighbors(cfg, valid), folder, "user_neighbors")
    return Inputs(
        behaviors=train,
        items=items.select("item_id", "title"),
        item_vectors=params.item_space(cfg, item_vectors).persist(StorageLevel.MEMORY_AND_DISK),
        user_vectors=valid,
        neighbors=neighbors.select("user_id", "neighbor_id", "similarity"),
        users=train.select("user_id").distinct().persist(StorageLevel.MEMORY_AND_DISK),
    )


def release(inp: Inputs) -> None:
    inp.item_vectors.unpersist()
    inp.users.unpersist()


def empty_side(first: DataFrame, second: DataFrame, names: tuple[str, str], what: str) -> bool:
    """Whether a split left a side without pairs, logged: every user with one item lands on one side."""
    empty = [name for name, frame in zip(names, (first, second)) if frame.isEmpty()]
    if empty:
        log.warning("%s: the split of table 'behaviors' leaves %s without any (user, item) pair; a user needs at "
                    "least two items to be split", what, " and ".join(empty))  # fmt: skip
    return bool(empty)


def tune(
    spark: SparkSession, cfg: Config, train: DataFrame, embed: EmbedFn
) -> tuple[float, dict[str, float], float] | None:
    """Grid search of the blend by nDCG@k on a validation split of `train` (never the test split); None when that
    split leaves a side empty (nothing to tune on)."""
    ev, rec = cfg.evaluate, cfg.recommend
    fit, valid = split(train, ev.split, ev.ratio, cfg.seed + 1)
    valid = valid.persist()  # before the emptiness check, so that check's job fills the cache the search reads
    if empty_side(fit, valid, ("fit", "validation"), "tuning skipped, the configured blend is evaluated"):
        valid.unpersist()
        return None
    inp = rebuild(spark, cfg, fit, embed, "validation")
    strength = params.strength(cfg)

    powers = ev.grid.get("similarity_power", [rec.similarity_power])
    items = params.item_model(cfg, max(ev.grid.get("items", [0.0])))
    # Built once, at the first power: the other powers change the neighbours part only.
    # Checkpointed, not cached: the grid's plans stay small (`predict.candidates` says why that matters).
    base = candidates(inp, strength, powers[0], ev.k, rec.content_candidates, cfg.block_size, items).localCheckpoint()

    def candidates_for(power: float) -> DataFrame:
        return base if power == powers[0] else repower(base, inp, strength, power)

    best = grid_search(candidates_for, valid, ev.grid, ev.k, rec.similarity_power)
    valid.unpersist()
    release(inp)
    return best


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    ev, rec = cfg.evaluate, cfg.recommend
    behaviors = params.table(spark, cfg, "behaviors")
    train, test = split(behaviors, ev.split, ev.ratio, cfg.seed)
    train, test = train.persist(), test.persist()
    if empty_side(train, test, ("train", "test"), "evaluate skipped"):
        for frame in (train, test):
            frame.unpersist()
        write_metrics(spark, cfg, "evaluate", {"skipped_too_few_pairs": 1.0})
        return {"skipped_too_few_pairs": 1.0}
    embed = params.embed_fn(spark, cfg)
    power, weights, tuned = rec.similarity_power, rec.weights, {}
    found = tune(spark, cfg, train, embed) if ev.tune else None
    if found is not None:
        power, weights, val_ndcg = found
        tuned = {"tuned.similarity_power": power, "tuned.validation_ndcg_at_k": val_ndcg,
                 **{f"tuned.weight_{p}": w for p, w in weights.items()}}  # fmt: skip
        log.info("tuned on validation: power=%.1f weights=%s (validation nDCG@%d %.4f)", power, weights, ev.k, val_ndcg)
    inp = rebuild(spark, cfg, train, embed, "test")
    items = params.item_model(cfg, params.items_weight(cfg, weights))
    cands = candidates(inp, params.strength(cfg), power, ev.k, rec.content_candidates, cfg.block_size, items,
                       params.onboarding(cfg)).localCheckpoint()  # fmt: skip
    # The thin-history blend as configured (bench-coldstart tunes it); users that thin are rare in a backtest.
    models = {"behaviorlm": blend(cands, weights, ev.k, thin=params.thin(cfg))}
    if "popularity" in ev.baselines:
        models["popularity"] = blend(cands, {"popularity": 1.0}, ev.k)
    if "als" in ev.baselines:
        a = ev.als
        # ALS checkpoints its factors every 10 iterations only where a checkpoint folder is set; without it the
        # lineage of its iterations grows until tasks overflow the stack. A Connect client cannot set one: the
        # server's `spark.checkpoint.dir` serves there.
        if not is_connect(spark) and spark.sparkContext.getCheckpointDir() is None:
            spark.sparkContext.setCheckpointDir(f"{cfg.tables.root.rstrip('/')}/{ev.workdir}/_checkpoints")
        models["als"] = als_recommendations(train, ev.k, a.rank, a.reg, a.alpha, a.iterations, cfg.seed)
    results = score_models(models, test, params.table(spark, cfg, "items"), ev.k)
    for frame in (train, test):
        frame.unpersist()
    release(inp)
    log.info("offline evaluation (%s split %.2f, seed %d, k=%d, seen items removed):\n%s", ev.split, ev.ratio,
             cfg.seed, ev.k, format_table(results, COLUMNS))  # fmt: skip
    metrics = {f"{model}.{name}": value for model, vals in results.items() for name, value in vals.items()}
    metrics.update(tuned)
    write_metrics(spark, cfg, "evaluate", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Offline backtest of recommend against a held-out split, with baselines.", "evaluate", run)


if __name__ == "__main__":
    main()
