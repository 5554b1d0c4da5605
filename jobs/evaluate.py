"""Evaluate: an offline backtest of the recommender against a held-out part of the behaviours, beside baselines.

Each user's behaviours are split (`evaluate.split`: stratified random share, or chronological) into train and test.
The stages that depend on behaviours (embed-users -> similar-users -> recommend) are re-run on train only, in their
own tables under `<tables.root>/<evaluate.workdir>` (item vectors are shared: they depend on item text only). With
`evaluate.tune`, the blend (similarity power, content and popularity weights) is first chosen on a validation
split carved out of train, never on test. Then precision/recall/nDCG@k, MAP, hit rate and catalogue coverage are
measured on test for the blend and for the baselines (popularity; Spark MLlib ALS, implicit), written to
`run_metrics` (stage `evaluate`, metric `<model>.<name>`) and logged as a table.
Run: `behaviorlm evaluate --conf conf/local.yaml`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import fields, replace

from pyspark.ml.feature import StringIndexer
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io, embed_users, recommend, similar_users
from jobs.config import Config
from jobs.evaluation import (
    catalog_coverage,
    chronological_split,
    format_table,
    rank_by_score,
    ranking_metrics,
    stratified_split,
)
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)
COLUMNS = ["ndcg_at_k", "precision_at_k", "recall_at_k", "map", "map_at_k", "hit_rate", "coverage"]
SHARED_TABLES = ("items", "item_embeddings")  # depend on the catalogue only, never on the split


def split(behaviors: DataFrame, cfg: Config, seed: int) -> tuple[DataFrame, DataFrame]:
    ev = cfg.evaluate
    if ev.split == "chronological":
        return chronological_split(behaviors, ev.ratio)
    return stratified_split(behaviors, ev.ratio, seed)


def backtest_config(cfg: Config, name: str) -> Config:
    """The same config with every behaviour-dependent table moved under `<root>/<workdir>/<name>`; catalogue tables
    stay where they are (resolved to their full location)."""
    tables = cfg.tables
    shared = {t: delta_io.table_ref(tables, t).location for t in SHARED_TABLES}
    own = {f.name: f.name for f in fields(tables) if f.name != "root" and f.name not in SHARED_TABLES}
    moved = replace(tables, root=f"{tables.root.rstrip('/')}/{cfg.evaluate.workdir}/{name}", **own, **shared)
    # The pipeline's own stage metrics go to the backtest's run_metrics, not the real one.
    return replace(cfg, tables=moved)


def rebuild(spark: SparkSession, cfg: Config, train: DataFrame) -> None:
    """Write `train` as the behaviours table of `cfg`, then rebuild user vectors and neighbours from it."""
    delta_io.overwrite(train, delta_io.table_ref(cfg.tables, "behaviors"))
    embed_users.run(spark, cfg)
    similar_users.run(spark, cfg)


def tune(spark: SparkSession, cfg: Config, train: DataFrame) -> tuple[float, dict[str, float], float]:
    """Grid search of (similarity power, content weight, popularity weight) by nDCG@k on a validation split of
    `train`. Returns the best power, weights and validation nDCG."""
    ev = cfg.evaluate
    fit, valid = split(train, cfg, ev.seed + 1)
    vcfg = backtest_config(cfg, "validation")
    rebuild(spark, vcfg, fit)
    inp = recommend.read_inputs(spark, vcfg)
    valid = valid.persist()
    grid = ev.grid
    best: tuple[float, float, dict[str, float]] = (-1.0, 0.0, {})
    for power in grid.get("similarity_power", [cfg.recommend.similarity_power]):
        cands = recommend.candidates(inp, vcfg, power).persist()
        for wc, wp in itertools.product(grid.get("content", [0.1]), grid.get("popularity", [0.1])):
            weights = {"neighbors": 1.0, "content": wc, "popularity": wp}
            ndcg = ranking_metrics(recommend.blend(cands, weights, ev.k), valid, ev.k)["ndcg_at_k"]
            log.info("validation: power=%.1f content=%.2f popularity=%.2f ndcg@%d=%.4f", power, wc, wp, ev.k, ndcg)
            if ndcg > best[0]:
                best = (ndcg, power, weights)
        cands.unpersist()
    valid.unpersist()
    release(inp)
    return best[1], best[2], best[0]


def release(inp: recommend.Inputs) -> None:
    inp.item_vectors.unpersist()
    inp.users.unpersist()


def als_recommendations(train: DataFrame, k: int, cfg: Config) -> DataFrame:
    """Spark MLlib ALS (implicit feedback: every behaviour is a positive) top-k unseen items per user."""
    als_cfg = cfg.evaluate.als
    pairs = train.select("user_id", "item_id").distinct().withColumn("one", F.lit(1.0))
    indexers = [StringIndexer(inputCol=c, outputCol=f"{c}_ix").fit(pairs) for c in ("user_id", "item_id")]
    indexed = indexers[1].transform(indexers[0].transform(pairs))
    model = ALS(
        rank=als_cfg.rank,
        regParam=als_cfg.reg,
        alpha=als_cfg.alpha,
        maxIter=als_cfg.iterations,
        implicitPrefs=True,
        userCol="user_id_ix",
        itemCol="item_id_ix",
        ratingCol="one",
        seed=cfg.evaluate.seed,
        coldStartStrategy="drop",
    ).fit(indexed)
    # Ask for k + the most anyone has seen, so k unseen remain for everyone after removing seen items.
    most_seen = indexed.groupBy("user_id_ix").count().agg(F.max("count")).first()[0]
    recs = model.recommendForAllUsers(k + most_seen).select("user_id_ix", F.explode("recommendations").alias("r"))
    users = indexed.select("user_id", "user_id_ix").distinct()
    items = indexed.select("item_id", "item_id_ix").distinct()
    scored = (
        recs.select("user_id_ix", F.col("r.item_id_ix").alias("item_id_ix"), F.col("r.rating").alias("score"))
        .join(users, "user_id_ix")
        .join(items, "item_id_ix")
        .join(pairs, ["user_id", "item_id"], "left_anti")
    )
    return rank_by_score(scored, "score").where(F.col("rank") <= k)


def score_models(models: dict[str, DataFrame], test: DataFrame, catalogue: DataFrame, k: int) -> dict[str, dict]:
    out = {}
    for name, recs in models.items():
        recs = recs.persist()
        out[name] = {**ranking_metrics(recs, test, k), "coverage": catalog_coverage(recs, catalogue)}
        recs.unpersist()
    return out


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    ev = cfg.evaluate
    behaviors = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "behaviors"))
    train, test = split(behaviors, cfg, ev.seed)
    train, test = train.persist(), test.persist()
    power, weights = cfg.recommend.similarity_power, cfg.recommend.weights
    tuned: dict[str, float] = {}
    if ev.tune:
        power, weights, val_ndcg = tune(spark, cfg, train)
        tuned = {"tuned.similarity_power": power, "tuned.validation_ndcg_at_k": val_ndcg,
                 **{f"tuned.weight_{p}": w for p, w in weights.items()}}  # fmt: skip
        log.info("tuned on validation: power=%.1f weights=%s (validation nDCG@%d %.4f)", power, weights, ev.k, val_ndcg)
    tcfg = backtest_config(replace(cfg, recommend=replace(cfg.recommend, k=ev.k)), "test")
    rebuild(spark, tcfg, train)
    inp = recommend.read_inputs(spark, tcfg)
    cands = recommend.candidates(inp, tcfg, power).persist()
    models = {"behaviorlm": recommend.blend(cands, weights, ev.k)}
    if "popularity" in ev.baselines:
        models["popularity"] = recommend.blend(cands, {"popularity": 1.0}, ev.k)
    if "als" in ev.baselines:
        models["als"] = als_recommendations(train, ev.k, cfg)
    catalogue = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "items"))
    results = score_models(models, test, catalogue, ev.k)
    cands.unpersist()
    release(inp)
    train.unpersist()
    test.unpersist()
    log.info("offline evaluation (%s split %.2f, seed %d, k=%d, seen items removed):\n%s", ev.split, ev.ratio,
             ev.seed, ev.k, format_table(results, COLUMNS))  # fmt: skip
    metrics = {f"{model}.{name}": value for model, vals in results.items() for name, value in vals.items()}
    metrics.update(tuned)
    write_metrics(spark, cfg, "evaluate", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Offline backtest of recommend against a held-out split, with baselines.", "evaluate", run)


if __name__ == "__main__":
    main()
