"""Offline backtest pieces: the split, the validation grid search of the blend, MLlib ALS as a baseline, and the
scoring of several models' recommendations on one test split. The evaluate stage wires them to the tables."""

from __future__ import annotations

import functools
import itertools
import logging
import operator
from collections.abc import Callable

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import SEED
from behaviorlm.indexing import by_seen_room, id_index
from behaviorlm.metrics import (
    catalog_coverage,
    chronological_split,
    rank_by_score,
    ranking_metrics,
    ranking_metrics_by,
    stratified_split,
)
from behaviorlm.scoring import PARTS
from behaviorlm.session import is_connect

log = logging.getLogger(__name__)
COLUMNS = ["ndcg_at_k", "precision_at_k", "recall_at_k", "map", "map_at_k", "hit_rate", "coverage"]


def split(behaviors: DataFrame, method: str, ratio: float, seed: int = SEED) -> tuple[DataFrame, DataFrame]:
    """(train, test) of each user's (user, item) pairs, every event of a pair on one side: `stratified` (a seeded
    random share per user) or `chronological` (the pairs met latest to test)."""
    if method == "chronological":
        return chronological_split(behaviors, ratio, seed)
    return stratified_split(behaviors, ratio, seed)


def grid_search(
    candidates_for: Callable[[float], DataFrame], truth: DataFrame, grid: dict[str, list[float]], k: int,
    default_power: float = 2.0,
) -> tuple[float, dict[str, float], float]:  # fmt: skip
    """Best (similarity power, blend weights, nDCG@k) on `truth` over `grid`; `candidates_for(power)` gives the
    scored candidates for one power (read once: cache them when they are costly), and every weight combination is
    scored on them in one job (`grid_ndcg`)."""
    best: tuple[float, float, dict[str, float]] = (-1.0, default_power, {})
    # Weights relative to the neighbour part's 1.0; a part missing from the grid gets none.
    parts = [p for p in PARTS if p in grid and p != "neighbors"]
    combos = [{"neighbors": 1.0, **dict(zip(parts, values))} for values in itertools.product(*(grid[p] for p in parts))]
    for power in grid.get("similarity_power", [default_power]):
        for weights, ndcg in zip(combos, grid_ndcg(candidates_for(power), truth, combos, k)):
            log.debug("validation: power=%.1f weights=%s ndcg@%d=%.4f", power, weights, k, ndcg)
            if ndcg > best[0]:
                best = (ndcg, power, weights)
    return best[1], best[2], best[0]


def grid_ndcg(cands: DataFrame, truth: DataFrame, combos: list[dict[str, float]], k: int) -> list[float]:
    """nDCG@k on `truth` of `scoring.blend(cands, weights, k)` for each weights in `combos`, in one job: the
    candidates crossed with the combinations, ranked per (combination, user), scored by `ranking_metrics_by`.
    Equal to blending and scoring each combination alone (the same sum in the same order, the same ties), without
    a job, a plan and broadcasts per combination (a grid of 36 filled a 4 GB driver at 6,000 users)."""
    spark = cands.sparkSession
    parts = [p for p in PARTS if p in cands.columns]  # a part with no column is silent, as in `blend`
    table = spark.createDataFrame(
        [(i, *(float(w.get(p, 0.0)) for p in parts)) for i, w in enumerate(combos)],
        ["_combo", *(f"_w_{p}" for p in parts)],
    )
    score = functools.reduce(operator.add, [F.col(f"_w_{p}") * F.col(p) for p in parts])
    tie = [F.col("popularity").desc()] if "popularity" in parts else []  # `blend`'s order
    order = Window.partitionBy("_combo", "user_id").orderBy(F.col("_score").desc(), *tie, F.col("item_id"))
    ranked = (
        cands.select("user_id", "item_id", *parts)
        .crossJoin(F.broadcast(table))
        .withColumn("_score", score)
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
    )
    found = {r["_combo"]: r["ndcg_at_k"] for r in ranking_metrics_by(ranked, truth, k, ["_combo"]).collect()}
    return [float(found.get(i) or 0.0) for i in range(len(combos))]


def als_recommendations(
    train: DataFrame, k: int, rank: int = 64, reg: float = 0.05, alpha: float = 10.0, iterations: int = 15,
    seed: int = SEED,
) -> DataFrame:  # fmt: skip
    """Spark MLlib ALS (implicit feedback: every behaviour is a positive) top-k unseen items per user."""
    pairs = train.select("user_id", "item_id").distinct().withColumn("one", F.lit(1.0))
    # ALS ships its input's RDD lineage with every task of every iteration: a deep input plan (the pair-level split's
    # windows and joins) overflows the executor's stack when the tasks are deserialised. Cut it first.
    pairs = pairs.localCheckpoint()
    users, items = (id_index(pairs, c, f"{c}_ix") for c in ("user_id", "item_id"))
    indexed = pairs.join(users, "user_id").join(items, "item_id").localCheckpoint()
    model = ALS(rank=rank, regParam=reg, alpha=alpha, maxIter=iterations, implicitPrefs=True, userCol="user_id_ix",
                itemCol="item_id_ix", ratingCol="one", seed=seed, coldStartStrategy="drop").fit(indexed)  # fmt: skip
    recs = _unseen_room(model, indexed, k).select("user_id_ix", F.explode("recommendations").alias("r"))
    scored = (
        recs.select("user_id_ix", F.col("r.item_id_ix").alias("item_id_ix"), F.col("r.rating").alias("score"))
        .join(users, "user_id_ix")
        .join(items, "item_id_ix")
        .join(pairs, ["user_id", "item_id"], "left_anti")
    )
    return rank_by_score(scored, "score").where(F.col("rank") <= k)


def _unseen_room(model: ALSModel, indexed: DataFrame, k: int) -> DataFrame:
    """ALS's top lists (user_id_ix, recommendations), long enough that k unseen items remain once each user's seen
    ones are removed (`by_seen_room`)."""
    seen = indexed.groupBy("user_id_ix").count()
    connect = is_connect(indexed.sparkSession)

    def top(rows: DataFrame, n: int) -> DataFrame:
        lists = model.recommendForUserSubset(rows, n)
        # On Spark Connect a model's method gets its input as a bare plan, with no hold on the checkpoint that plan
        # reads (by_seen_room's, released when it returns): the lists are computed while it exists.
        return lists.localCheckpoint() if connect else lists

    return by_seen_room(seen, "count", k, top)


def score_models(models: dict[str, DataFrame], test: DataFrame, catalogue: DataFrame, k: int) -> dict[str, dict]:
    """Ranking metrics at k and catalogue coverage of each model's recommendations against `test`."""
    out = {}
    for name, recs in models.items():
        recs = recs.persist()
        out[name] = {**ranking_metrics(recs, test, k), "coverage": catalog_coverage(recs, catalogue)}
        recs.unpersist()
    return out
