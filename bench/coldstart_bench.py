"""bench-coldstart: where the text encoder earns its place, new items and new users, on MovieLens-100K.

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
to choose); the blend "without content" is the best on that validation with both at 0. Every other user keeps
`recommend.weights`. User vectors, neighbours and the item model are rebuilt from the training set as `evaluate`
does; item vectors come from the real MiniLM model over the item text, interactions never reach them.
Run: `make bench-coldstart` (prints the `bench-coldstart ...` line last).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time

from common import open_bench
from pyspark.sql import DataFrame

from behaviorlm.backtest import grid_ndcg, split
from behaviorlm.coldstart import first_behaviors, item_cold_metrics, pick, without_items
from behaviorlm.config import Config
from behaviorlm.metrics import ranking_metrics
from behaviorlm.onboarding import Onboarding
from behaviorlm.scoring import Thin, blend, candidates
from jobs import embed_items, evaluate, ingest, params

log = logging.getLogger("bench-coldstart")
K, FIRST, ITEM_SHARE, USER_SHARE = 10, 3, 0.1, 0.1
# The thin blend's grid: with 3 behaviours the collaborative parts may deserve nothing at all.
GRID = {"content": [0.0, 0.5, 1.0, 2.0], "popularity": [0.0, 0.5, 1.0, 2.0], "items": [0.0, 1.0],
        "neighbors": [0.0, 1.0], "onboarding": [0.0, 1.0, 2.0, 4.0]}  # fmt: skip
TEXT_PARTS = ("content", "onboarding")  # the parts that read item text: 0 in the blend "without content"
CHUNK = 32  # combinations scored per job
VAL_SLICES = 3  # validation slices of USER_SHARE each, after the test users' slice


def scored_candidates(spark, cfg: Config, train: DataFrame, name: str) -> DataFrame:
    """Every part's scores for every user of `train`, from inputs rebuilt on `train`; the content part scores the
    whole catalogue (`recommend.content_candidates` is set above it), so every cold item has a content score."""
    inp = evaluate.rebuild(spark, cfg, train, params.embed_fn(spark, cfg), name)
    rec = cfg.recommend
    items = params.item_model(cfg, max(GRID["items"]))
    onboarding = Onboarding(FIRST, rec.onboarding.reg, rec.onboarding.candidates)
    cands = candidates(inp, params.strength(cfg), rec.similarity_power, K, rec.content_candidates, cfg.block_size,
                       items, onboarding)  # fmt: skip
    return cands.localCheckpoint()


def validation(spark, cfg: Config, train: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(the pooled candidates of the VAL_SLICES validation slices' users, their truth): each slice cut alone, so
    the rest of the users keep their whole training history as the test users' do."""
    pooled, truths = [], []
    for s in range(1, VAL_SLICES + 1):
        users = pick(train, "user_id", s * USER_SHARE, (s + 1) * USER_SHARE, cfg.seed)
        cut, truth = first_behaviors(train, train.limit(0), users, FIRST, cfg.seed)
        # Materialised: every part reads the cut history, and re-deriving it (split, cold items, cut) in each of
        # their queries makes them deep enough to run one 4 GB local driver out of execution memory.
        pooled.append(scored_candidates(spark, cfg, cut.localCheckpoint(), f"validation-{s}").join(users, "user_id"))
        truths.append(truth)
    union = functools.partial(functools.reduce, DataFrame.unionByName)
    return union(pooled).localCheckpoint(), union(truths).localCheckpoint()


def tune_thin(cands: DataFrame, truth: DataFrame) -> tuple[dict[str, float], float, dict[str, float], float]:
    """(best weights, its nDCG@K, best weights with content 0, its nDCG@K) on the validation users' `truth`."""
    combos = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    results = []
    for start in range(0, len(combos), CHUNK):
        chunk = combos[start : start + CHUNK]
        for weights, ndcg in zip(chunk, grid_ndcg(cands, truth, chunk, K)):
            log.info("validation %s nDCG@%d %.4f", weights, K, ndcg)
            results.append((ndcg, weights))
    best = max(results, key=lambda r: r[0])
    plain = max((r for r in results if not any(r[1][p] for p in TEXT_PARTS)), key=lambda r: r[0])
    return best[1], best[0], plain[1], plain[0]


def main() -> None:
    cfg, spark, root = open_bench("bench-coldstart", ["recommend.content_candidates=5000"])
    start = time.perf_counter()
    ingest.run(spark, cfg)
    embed_items.run(spark, cfg)
    behaviors = params.table(spark, cfg, "behaviors")
    train, test = split(behaviors, "stratified", 0.75, cfg.seed)
    cold_items = pick(behaviors, "item_id", 0.0, ITEM_SHARE, cfg.seed).localCheckpoint()
    train, item_truth = without_items(train, test, cold_items)

    val_cands, val_truth = validation(spark, cfg, train)
    weights, val_ndcg, plain, val_plain = tune_thin(val_cands, val_truth)
    print(f"validation ({VAL_SLICES} slices of users cut to {FIRST}): with content {weights} nDCG@{K} "
          f"{val_ndcg:.4f}; without {plain} {val_plain:.4f}", flush=True)  # fmt: skip

    test_users = pick(train, "user_id", 0.0, USER_SHARE, cfg.seed)
    warm_test = test.join(cold_items, "item_id", "left_anti")  # a cold item in a kept history would not be cold
    test_train, user_truth = first_behaviors(train, warm_test, test_users, FIRST, cfg.seed)
    test_train = test_train.localCheckpoint()
    cands = scored_candidates(spark, cfg, test_train, "test")
    cold_users = cands.join(test_users, "user_id").localCheckpoint()
    usual = cfg.recommend.weights
    no_content = {**usual, **dict.fromkeys(TEXT_PARTS, 0.0)}
    users = {
        "with": ranking_metrics(blend(cold_users, usual, K, thin=Thin(FIRST, weights)), user_truth, K),
        "without": ranking_metrics(blend(cold_users, no_content, K, thin=Thin(FIRST, plain)), user_truth, K),
        "popularity": ranking_metrics(blend(cold_users, {"popularity": 1.0}, K), user_truth, K),
        "one blend": ranking_metrics(blend(cold_users, usual, K), user_truth, K),  # recommend.weights for everyone
    }
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
        f"user_ndcg_one_blend={users['one blend']['ndcg_at_k']:.4f}"
    )


if __name__ == "__main__":
    main()
