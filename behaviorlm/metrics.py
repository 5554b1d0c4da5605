"""Offline evaluation library (Spark DataFrames in, numbers out): splitters, ranking metrics at k, rating errors.

Definitions follow Microsoft Recommenders' `python_evaluation` (the protocol its ML-100K benchmark uses), so numbers
are comparable with its published table:
- users counted are those in both the truth and the recommendations;
- precision@k = hits in the top k / k; recall@k = hits / relevant items;
- nDCG@k with binary relevance: sum over hits of 1/log(1 + rank), over the same sum for the first min(relevant, k)
  ranks;
- `map`: sum over hits of (hits so far / rank), divided by the number of relevant items; `map_at_k` divides by
  min(relevant, k) instead;
- hit rate: share of users with at least one hit; catalogue coverage: distinct recommended items / distinct items in
  the catalogue given;
- RMSE and MAE over the (user, item) pairs present in both truth and predictions.

Splitters split each user's (user, item) pairs, not rows: every row of a pair goes to the same side, because a pair
with rows on both sides is a test item already seen in train, which the recommender and the baselines remove from
their lists (it could never be hit). A user's pair at position p of n goes to train when p / n <= ratio, the rule of
Microsoft Recommenders' `spark_stratified_split` / `spark_chrono_split`: train keeps floor(n x ratio) pairs, so a
user with few pairs still leaves one for test (2 pairs at 0.75: 1 train, 1 test, where rounding half up kept both
in train; a user with a single pair has it in test).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import SEED

BUCKETS = 10_000  # hashed_share's resolution: shares are multiples of 1 / BUCKETS


def stratified_split(
    df: DataFrame, ratio: float, seed: int, col_user: str = "user_id", col_item: str = "item_id"
) -> tuple[DataFrame, DataFrame]:
    """Per user, a seeded random `ratio` of the (user, item) pairs to train, the rest to test; every row of a pair
    goes to the same side. Deterministic for a seed: pairs are ordered by a hash of (seed, user, item)."""
    key = F.xxhash64(F.lit(seed), F.col(col_user), F.col(col_item))
    return _halves(_pair_positions(df, key, col_user, col_item), F.col("_pos") / F.col("_n") <= ratio)


def chronological_split(
    df: DataFrame,
    ratio: float,
    seed: int = SEED,
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_time: str = "ts",
) -> tuple[DataFrame, DataFrame]:
    """Per user, the (user, item) pairs met earliest (by a pair's first row; ties: `tie_break`) to train, the latest
    to test; every row of a pair goes to the same side."""
    tagged = _pair_positions(df, F.col(col_time), col_user, col_item, seed)
    return _halves(tagged, F.col("_pos") / F.col("_n") <= ratio)


def leave_last_out(
    df: DataFrame, seed: int = SEED, col_user: str = "user_id", col_item: str = "item_id", col_time: str = "ts"
) -> tuple[DataFrame, DataFrame]:
    """Per user, the (user, item) pair met latest (by its first row; ties: `tie_break`) to test with all its rows,
    every other pair to train. Apply it again to the train part for a validation target (the last-but-one)."""
    return _halves(_pair_positions(df, F.col(col_time), col_user, col_item, seed), F.col("_pos") < F.col("_n"))


def first_n_split(
    df: DataFrame, n: int, seed: int = SEED, col_user: str = "user_id", col_item: str = "item_id", col_time: str = "ts"
) -> tuple[DataFrame, DataFrame]:
    """Per user, the first `n` (user, item) pairs met (by a pair's first row; ties: `tie_break`) and the rest; every
    row of a pair goes to the same side. A user cut to a new user's first few behaviours, for cold-start backtests."""
    return _halves(_pair_positions(df, F.col(col_time), col_user, col_item, seed), F.col("_pos") <= n)


def tie_break(seed: int, col_user: str = "user_id", col_item: str = "item_id") -> Column:
    """The order of behaviours with the same timestamp: a seeded hash of (user, item), the same rule for every
    method and split. Never the item id: MovieLens users rate many items in one second, and ordering those by id
    changes what is "last" (popularity's HR@10 on ML-100K leave-last-out moves from 0.085 to 0.050)."""
    return F.xxhash64(F.lit(seed), F.col(col_user).cast("string"), F.col(col_item).cast("string"))


def hashed_share(col: str, lo: float, hi: float, seed: int = SEED) -> Column:
    """True for the values of `col` whose seeded hash falls in the [lo, hi) share of the hash range."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col(col).cast("string")), F.lit(BUCKETS))
    return (bucket >= int(lo * BUCKETS)) & (bucket < int(hi * BUCKETS))


def _pair_positions(df: DataFrame, key: Column, col_user: str, col_item: str, seed: int = SEED) -> DataFrame:
    """`df` plus `_pos`, the position of the row's (user, item) pair among the user's pairs ordered by the pair's
    smallest `key`, ties by `tie_break` (1 = first), and `_n`, the user's number of pairs. Rows with a null user or
    item have no pair and are dropped."""
    pairs = df.groupBy(col_user, col_item).agg(F.min(key).alias("_key"))
    order = ("_key", tie_break(seed, col_user, col_item), col_item)
    ranked = pairs.select(
        col_user,
        col_item,
        F.row_number().over(Window.partitionBy(col_user).orderBy(*order)).alias("_pos"),
        F.count("*").over(Window.partitionBy(col_user)).alias("_n"),
    )
    return df.join(ranked, [col_user, col_item]).select(*[F.col(f"`{c}`") for c in df.columns], "_pos", "_n")


def _halves(tagged: DataFrame, train: Column) -> tuple[DataFrame, DataFrame]:
    """(rows where `train`, the other rows), without the helper columns."""
    return tagged.where(train).drop("_pos", "_n"), tagged.where(~train).drop("_pos", "_n")


def ranking_metrics(
    recs: DataFrame,
    truth: DataFrame,
    k: int,
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_rank: str = "rank",
) -> dict[str, float]:
    """precision/recall/ndcg/map/map_at_k/hit_rate at k for ranked `recs` (rank 1 = best) against `truth`."""
    out = ranking_metrics_by(recs, truth, k, [], col_user, col_item, col_rank).first()
    return {name: float(out[name] or 0.0) for name in out.asDict()}


def ranking_metrics_by(
    recs: DataFrame,
    truth: DataFrame,
    k: int,
    by: Sequence[str],
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_rank: str = "rank",
) -> DataFrame:
    """`ranking_metrics` of each group of `recs` (the `by` columns: one ranking per user per group, e.g. a grid's
    weight combinations) in one job: a row per group with `users` and the metrics (no `by`: one row)."""
    by = list(by)
    truth = truth.select(col_user, col_item).distinct()
    recs = recs.where(F.col(col_rank) <= k).select(*by, col_user, col_item, F.col(col_rank).alias("_rank"))
    common = recs.select(*by, col_user).distinct().join(truth.select(col_user).distinct(), col_user)
    actual = truth.join(common, col_user).groupBy(*by, col_user).agg(F.count("*").alias("_actual"))
    hits = recs.join(truth, [col_user, col_item]).withColumn(
        "_nth", F.row_number().over(Window.partitionBy(*by, col_user).orderBy("_rank"))
    )
    per_user = hits.groupBy(*by, col_user).agg(
        F.count("*").alias("_hits"),
        F.sum(1.0 / F.log(1.0 + F.col("_rank"))).alias("_dcg"),
        F.sum(F.col("_nth") / F.col("_rank")).alias("_rr"),
    )
    ideal = F.aggregate(
        F.sequence(F.lit(1), F.least(F.col("_actual"), F.lit(k))), F.lit(0.0), lambda acc, r: acc + 1.0 / F.log(1.0 + r)
    )
    rows = actual.join(per_user, [*by, col_user], "left").fillna(0, ["_hits", "_dcg", "_rr"])
    return rows.groupBy(*by).agg(
        F.count("*").alias("users"),
        F.avg(F.col("_hits") / k).alias("precision_at_k"),
        F.avg(F.col("_hits") / F.col("_actual")).alias("recall_at_k"),
        F.avg(F.col("_dcg") / ideal).alias("ndcg_at_k"),
        F.avg(F.col("_rr") / F.col("_actual")).alias("map"),
        F.avg(F.col("_rr") / F.least(F.col("_actual"), F.lit(k))).alias("map_at_k"),
        F.avg((F.col("_hits") > 0).cast("double")).alias("hit_rate"),
    )


def catalog_coverage(recs: DataFrame, catalogue: DataFrame, col_item: str = "item_id") -> float:
    """Distinct recommended items of `catalogue` over its distinct items (a recommended item missing from the
    catalogue, kept by ingest's `unknown_items: keep`, counts in neither: the share stays at most 1)."""
    items = catalogue.select(col_item).distinct()
    total = items.count()
    return recs.select(col_item).distinct().join(items, col_item).count() / total if total else 0.0


def rating_errors(
    predictions: DataFrame,
    truth: DataFrame,
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_rating: str = "rating",
    col_prediction: str = "prediction",
) -> dict[str, float]:
    """RMSE and MAE of `col_prediction` against `col_rating` on the pairs both frames hold."""
    pairs = truth.select(col_user, col_item, col_rating).join(
        predictions.select(col_user, col_item, col_prediction), [col_user, col_item]
    )
    err = F.col(col_prediction) - F.col(col_rating)
    row = pairs.agg(F.sqrt(F.avg(err * err)).alias("rmse"), F.avg(F.abs(err)).alias("mae"), F.count("*").alias("n"))
    row = row.first()
    return {"rmse": float(row["rmse"] or 0.0), "mae": float(row["mae"] or 0.0), "pairs": float(row["n"])}


def rank_by_score(df: DataFrame, col_score: str, col_user: str = "user_id", col_item: str = "item_id") -> DataFrame:
    """Adds `rank` (1 = highest score; ties broken by item id) per user."""
    order = Window.partitionBy(col_user).orderBy(F.col(col_score).desc(), F.col(col_item))
    return df.withColumn("rank", F.row_number().over(order))


def format_table(rows: dict[str, dict[str, float]], columns: list[str]) -> str:
    """A fixed-width text table: one row per model, one column per metric."""
    width = max(12, *(len(c) + 2 for c in columns))
    head = f"{'model':<12}" + "".join(f"{c:>{width}}" for c in columns)
    body = [
        f"{name:<12}" + "".join(f"{vals.get(c, float('nan')):>{width}.4f}" for c in columns)
        for name, vals in rows.items()
    ]
    return "\n".join([head, *body])
