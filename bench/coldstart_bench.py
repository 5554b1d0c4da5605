"""bench-coldstart: new items and new users on MovieLens-100K, with and without the text encoder.

The bench-recs split first (per-user stratified 75/25, seed 42). Then, in one training set:
- item cold start: a seeded 10 % of the items loses every training interaction; each user who met one of them in
  the test part is scored on a top 10 of those items only (nDCG@10, recall@10). Without the content part nothing
  scores them, so the blend without content is 0 by construction.
- user cold start: a seeded 10 % of the users keeps only its first 3 behaviours in time (training or test pairs,
  cold items left out); each is scored on all their later pairs, ranked over the whole catalogue, beside popularity.
The thin-history blend (`recommend.thin`, users with at most 3 items) is tuned on three validation slices of other
users (10 % each, one at a time cut to their first 3 training behaviours, pooled: on one slice of ~100 users the
grid fitted its noise), scored on their other training pairs: never on the test part. Two parts
read item text: `content` (the cosine) and `onboarding` (a map from a user's first items' text to what users went on
to choose); the blend "without content" is the best on that validation with both at 0. A third blend reads no text
at all: the onboarding part fitted on item ids (one-hot vectors) instead of their text, beside popularity and the
item model (`user_ndcg_id_map`), so the lift splits into what the text brings and what the map's structure does.
Every other user keeps `recommend.weights`. User vectors, neighbours and the item model are rebuilt from the
training set as `evaluate` does; item vectors come from the real MiniLM model over the item text, interactions
never reach them. `--map-share S` lets both onboarding maps (text and ids) learn from a seeded share S of the users
with a longer history only: how each map fares with fewer histories to learn from (default 1: all of them).
Run: `make bench-coldstart` (prints the `bench-coldstart ...` line last).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import time

from common import bench_args, open_bench
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.backtest import grid_ndcg, split
from behaviorlm.coldstart import first_behaviors, item_cold_metrics, pick, without_items
from behaviorlm.config import Config
from behaviorlm.metrics import hashed_share, ranking_metrics
from behaviorlm.onboarding import Onboarding, onboarding_column, onboarding_top
from behaviorlm.scoring import Inputs, Thin, blend, candidates
from jobs import embed_items, evaluate, ingest, params

log = logging.getLogger("bench-coldstart")
K, FIRST, ITEM_SHARE, USER_SHARE = 10, 3, 0.1, 0.1
# The thin blend's grid: with 3 behaviours the collaborative parts may deserve nothing at all.
GRID = {"content": [0.0, 0.5, 1.0, 2.0], "popularity": [0.0, 0.5, 1.0, 2.0], "items": [0.0, 1.0],
        "neighbors": [0.0, 1.0], "onboarding": [0.0, 1.0, 2.0, 4.0]}  # fmt: skip
TEXT_PARTS = ("content", "onboarding")  # the parts that read item text: 0 in the blend "without content"
CHUNK = 32  # combinations scored per job
VAL_SLICES = 3  # validation slices of USER_SHARE each, after the test users' slice


def map_column(
    behaviors: DataFrame, inp: Inputs, cands: DataFrame, model: Onboarding, column: str, block: int
) -> DataFrame:
    """(user_id, item_id, `column`) for the thin users' candidates: the onboarding part `model` learned from
    `behaviors`. Fitted on item ids (`features="ids"`; ML-100K's 1,682 items are under `max_ids`, so no two items
    share a dimension) it is the same ridge from a user's first items to what users went on to choose, reading no
    text: the blend without text but with it tells how much of the text part's lift is the text, and how much the
    map's structure."""
    fitted = onboarding_top(behaviors, inp.item_vectors, cands.select("user_id", "n_seen").distinct(), model, block)
    if fitted is None:
        return cands.select("user_id", "item_id", F.lit(0.0).alias(column)).limit(0)
    return onboarding_column(cands.select("user_id", "item_id"), *fitted).withColumnRenamed("onboarding", column)


def learners(behaviors: DataFrame, cands: DataFrame, share: float, seed: int) -> DataFrame:
    """`behaviors` of the thin users and of a seeded `share` of the others: whom the onboarding maps learn from."""
    if share >= 1.0:
        return behaviors
    thin = cands.where(F.col("n_seen").between(1, FIRST)).select("user_id", F.lit(True).alias("_thin")).distinct()
    kept = hashed_share("user_id", 0.0, share, seed + 1) | F.col("_thin").isNotNull()
    return behaviors.join(thin, "user_id", "left").where(kept).drop("_thin")


def without_text(weights: dict[str, float]) -> dict[str, float]:
    """`weights` with the parts that read item text at 0."""
    return {**weights, **dict.fromkeys(TEXT_PARTS, 0.0)}


def scored_candidates(spark, cfg: Config, train: DataFrame, name: str, map_share: float) -> DataFrame:
    """Every part's scores for every user of `train`, from inputs rebuilt on `train`, and `id_map`, the onboarding
    maps learning from a `map_share` of the longer histories; the content part scores the whole catalogue
    (`recommend.content_candidates` is set above it), so every cold item has a content score."""
    inp = evaluate.rebuild(spark, cfg, train, params.embed_fn(spark, cfg), name)
    rec = cfg.recommend
    items = params.item_model(cfg, max(GRID["items"]))
    onboarding = Onboarding(FIRST, rec.onboarding.reg, rec.onboarding.candidates, features="text")
    cands = candidates(inp, params.strength(cfg), rec.similarity_power, K, rec.content_candidates, cfg.block_size,
                       items, onboarding).localCheckpoint()  # fmt: skip
    fit_on = learners(inp.behaviors, cands, map_share, cfg.seed)
    maps = {"id_map": dataclasses.replace(onboarding, features="ids")}
    if map_share < 1.0:
        maps["onboarding"], cands = onboarding, cands.drop("onboarding")
    for column, model in maps.items():
        scores = map_column(fit_on, inp, cands, model, column, cfg.block_size)
        cands = cands.join(scores, ["user_id", "item_id"], "left")
    return cands.fillna(0.0, list(maps)).localCheckpoint()


def validation(spark, cfg: Config, train: DataFrame, map_share: float) -> tuple[DataFrame, DataFrame]:
    """(the pooled candidates of the VAL_SLICES validation slices' users, their truth): each slice cut alone, so
    the rest of the users keep their whole training history as the test users' do."""
    pooled, truths = [], []
    for s in range(1, VAL_SLICES + 1):
        users = pick(train, "user_id", s * USER_SHARE, (s + 1) * USER_SHARE, cfg.seed)
        cut, truth = first_behaviors(train, train.limit(0), users, FIRST, cfg.seed)
        # Materialised: every part reads the cut history, and re-deriving it (split, cold items, cut) in each of
        # their queries makes them deep enough to run one 4 GB local driver out of execution memory.
        pooled.append(
            scored_candidates(spark, cfg, cut.localCheckpoint(), f"validation-{s}", map_share).join(users, "user_id")
        )
        truths.append(truth)
    union = functools.partial(functools.reduce, DataFrame.unionByName)
    return union(pooled).localCheckpoint(), union(truths).localCheckpoint()


def grid_results(cands: DataFrame, truth: DataFrame, grid: dict[str, list[float]]) -> list[tuple[float, dict]]:
    """(nDCG@K, weights) on the validation users' `truth` of every combination of `grid`, in chunks of jobs."""
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    results = []
    for start in range(0, len(combos), CHUNK):
        chunk = combos[start : start + CHUNK]
        for weights, ndcg in zip(chunk, grid_ndcg(cands, truth, chunk, K)):
            log.info("validation %s nDCG@%d %.4f", weights, K, ndcg)
            results.append((ndcg, weights))
    return results


def best_of(results: list[tuple[float, dict]], zero: tuple[str, ...] = ()) -> tuple[dict[str, float], float]:
    """(weights, nDCG@K) of the best result whose `zero` parts weigh nothing."""
    ndcg, weights = max((r for r in results if not any(r[1][p] for p in zero)), key=lambda r: r[0])
    return weights, ndcg


def tune_thin(cands: DataFrame, truth: DataFrame) -> dict[str, tuple[dict[str, float], float]]:
    """The thin blends chosen on validation, each as (weights, nDCG@K): `with` text, `without` (the text parts at 0)
    and `id map` (nothing read from text: the onboarding part fitted on item ids, `id_map`, in its place, and
    popularity and the item model beside it)."""
    results = grid_results(cands, truth, GRID)
    ids = cands.withColumn("onboarding", F.col("id_map"))
    # No part derived from item text: the content cosine, and the neighbours (found by the users' text vectors).
    id_results = grid_results(ids, truth, {**GRID, "content": [0.0], "neighbors": [0.0]})
    return {"with": best_of(results), "without": best_of(results, TEXT_PARTS), "id map": best_of(id_results)}


def user_metrics(
    cands: DataFrame, thin: dict[str, dict[str, float]], usual: dict[str, float], truth: DataFrame
) -> dict[str, dict[str, float]]:
    """Ranking metrics of the new users (`cands`) for each blend: the tuned thin blends and popularity, and the
    usual weights for everyone (what the product would do without a thin blend)."""
    no_content = without_text(usual)
    ids = cands.withColumn("onboarding", F.col("id_map"))
    blends = {
        "with": blend(cands, usual, K, thin=Thin(FIRST, thin["with"])),
        "without": blend(cands, no_content, K, thin=Thin(FIRST, thin["without"])),
        "popularity": blend(cands, {"popularity": 1.0}, K),
        "one blend": blend(cands, usual, K),
        "id map": blend(ids, no_content, K, thin=Thin(FIRST, thin["id map"])),
    }
    return {name: ranking_metrics(ranked, truth, K) for name, ranked in blends.items()}


def main() -> None:
    args = bench_args(
        lambda p: p.add_argument(
            "--map-share", type=float, default=1.0, help="share of the longer histories the onboarding maps learn from"
        )
    )
    cfg, spark, root = open_bench("bench-coldstart", ["recommend.content_candidates=5000"], args)
    start = time.perf_counter()
    ingest.run(spark, cfg)
    embed_items.run(spark, cfg)
    behaviors = params.table(spark, cfg, "behaviors")
    train, test = split(behaviors, "stratified", 0.75, cfg.seed)
    cold_items = pick(behaviors, "item_id", 0.0, ITEM_SHARE, cfg.seed).localCheckpoint()
    train, item_truth = without_items(train, test, cold_items)

    val_cands, val_truth = validation(spark, cfg, train, args.map_share)
    tuned = tune_thin(val_cands, val_truth)
    print(f"validation ({VAL_SLICES} slices of users cut to {FIRST}): "
          + "; ".join(f"{name} {w} nDCG@{K} {n:.4f}" for name, (w, n) in tuned.items()), flush=True)  # fmt: skip
    thin = {name: w for name, (w, _) in tuned.items()}
    weights, plain = thin["with"], thin["without"]

    test_users = pick(train, "user_id", 0.0, USER_SHARE, cfg.seed)
    warm_test = test.join(cold_items, "item_id", "left_anti")  # a cold item in a kept history would not be cold
    test_train, user_truth = first_behaviors(train, warm_test, test_users, FIRST, cfg.seed)
    test_train = test_train.localCheckpoint()
    cands = scored_candidates(spark, cfg, test_train, "test", args.map_share)
    cold_users = cands.join(test_users, "user_id").localCheckpoint()
    usual = cfg.recommend.weights
    no_content = without_text(usual)
    users = user_metrics(cold_users, thin, usual, user_truth)
    items = {
        "with": item_cold_metrics(cands, cold_items, item_truth, usual, K, Thin(FIRST, weights)),
        "without": item_cold_metrics(cands, cold_items, item_truth, no_content, K, Thin(FIRST, plain)),
    }
    for name, m in [*(("item " + n, m) for n, m in items.items()), *(("user " + n, m) for n, m in users.items())]:
        print(f"{name:>18}: users {m['users']:.0f} nDCG@{K} {m['ndcg_at_k']:.4f} recall@{K} {m['recall_at_k']:.4f}")
    print(f"tables under {root}; {time.perf_counter() - start:.0f} s in all", flush=True)
    print(
        f"bench-coldstart item_ndcg_at_10={items['with']['ndcg_at_k']:.4f} "
        f"item_ndcg_no_content={items['without']['ndcg_at_k']:.4f} "
        f"item_recall_at_10={items['with']['recall_at_k']:.4f} "
        f"user_ndcg_at_10={users['with']['ndcg_at_k']:.4f} user_ndcg_no_content={users['without']['ndcg_at_k']:.4f} "
        f"pop_user_ndcg_at_10={users['popularity']['ndcg_at_k']:.4f} "
        f"user_ndcg_one_blend={users['one blend']['ndcg_at_k']:.4f} "
        f"user_ndcg_id_map={users['id map']['ndcg_at_k']:.4f}"
    )


if __name__ == "__main__":
    main()
