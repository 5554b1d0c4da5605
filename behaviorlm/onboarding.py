"""recommend's `onboarding` part: what users who started like this one went on to choose, read from item text.

A user with a thin history (a few items) is little more than the text of those items. The part learns, from every
user with a longer history, a map from the text of their first `first` behaviours (the mean of those items' vectors,
unit length) to the items they chose next: a ridge regression with one output per item, solved in closed form on
the vector dimension d (a d x d inverse on the driver), so its cost grows with users and items, not their product:

    W = (X'X + reg I)^-1 X'(Y - 1m'),   score(user, item) = x_user . W[:, item] + m[item]

X: the warm users' start vectors; Y: the items each chose after the start, a user's row weighted 1/sqrt(its count)
so heavy users do not drown the rest; m: Y's column means (what anyone goes on to choose, the intercept). An item's
column of W and its m are kept as one (d + 1) vector and a start vector gets a trailing 1, so a score is one dot
product and the blocked user x item product of the content part serves this part too.
Why not the cosine alone: with 3 behaviours the cosine of a user with an item knows taste but not what people take
up next; on ML-100K's validation users cut to 3 behaviours it loses to popularity, this part beats it
(`make bench-coldstart`). Why text and not item ids: on ML-100K the same map fitted on one-hot item ids does as well
(bench-coldstart's `user_ndcg_id_map`: the lift is the map's, not the language model's), but only text places a
start made of items nobody has started with, and it costs d x items on the driver, not items x items. Where the
text says nothing (bare ids, SKU codes) `features="ids"` fits the map on `id_vectors` instead, and `features="auto"`
(the default) lets the user's own data choose: both maps are fitted on the warm users but a held-out share, and the
one that ranks the held-out users' later choices better is kept (`settle`; the text map on a tie, or when too few
users can be held out).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import SEED
from behaviorlm.content import content_scores
from behaviorlm.metrics import first_n_split, hashed_share, rank_by_score, ranking_metrics
from behaviorlm.partials import summed
from behaviorlm.users import weighted_mean_vectors
from behaviorlm.vectors import in_sum_order

log = logging.getLogger(__name__)
HELD_K = 10  # `auto` compares the two maps by the held-out users' nDCG at this depth
MIN_HELD, MAX_HELD = 20, 5000  # held-out users `auto` needs to compare (fewer: the text map) and reads at most
Features = Literal["text", "ids", "auto"]


@dataclass(frozen=True)
class Onboarding:
    """The part's settings: behaviours a user's start is made of (users with at most this many items are served),
    the ridge's L2 penalty, the items it proposes per user, and what a start is made of: the items' text vectors
    (`text`), their ids (`ids`: `id_vectors`, at most `max_ids` + 1 dimensions) or whichever ranks the later
    choices of a `holdout` share of the warm users better (`auto`, `settle`). The part is used only when at least
    `min_users` users have more than `first` items to learn from: a map learnt from a handful of histories (one bot
    among new users) would give the new users those few users' items."""

    first: int = 3
    reg: float = 30.0
    candidates: int = 100
    features: Features = "auto"
    max_ids: int = 2000
    holdout: float = 0.1
    min_users: int = 20


def id_vectors(behaviors: DataFrame, first: int, max_ids: int, seed: int = SEED) -> DataFrame:
    """(item_id, embedding): an indicator vector per item in some user's first `first` behaviours: an item's id and
    nothing of its text. The `max_ids` items that start the most histories (ties by id) get a dimension each, the
    rest share one more, so the ridge stays (max_ids + 1)-dimensional on the driver and every start has a vector.
    Built on the executors: only those ids reach the driver."""
    starts, _ = first_n_split(behaviors.select("user_id", "item_id", "ts"), first, seed)
    counts = starts.groupBy("item_id").agg(F.count_distinct("user_id").alias("n")).localCheckpoint()
    top = [r["item_id"] for r in counts.orderBy(F.desc("n"), "item_id").limit(max_ids).collect()]
    dims = len(top) + int(counts.count() > len(top))
    spark = behaviors.sparkSession
    index = spark.createDataFrame(list(enumerate(top)), "_i int, item_id string")
    at = F.coalesce(F.col("_i"), F.lit(len(top)))
    one_hot = F.transform(F.sequence(F.lit(0), F.lit(dims - 1)), lambda d: F.when(d == at, 1.0).otherwise(0.0))
    return counts.join(index, "item_id", "left").select("item_id", one_hot.cast("array<float>").alias("embedding"))


def start_vectors(
    behaviors: DataFrame, item_vectors: DataFrame, first: int, seed: int = SEED
) -> tuple[DataFrame, DataFrame]:
    """(user_id, embedding: the unit mean of the vectors of the user's first `first` items in time order; the
    (user_id, item_id) pairs each user met after those)."""
    start, later = first_n_split(behaviors.select("user_id", "item_id", "ts"), first, seed)
    rows = start.select("user_id", "item_id").distinct().join(item_vectors.select("item_id", "embedding"), "item_id")
    starts = weighted_mean_vectors(rows.select("user_id", F.col("embedding").alias("vec"), F.lit(1.0).alias("w")))
    return starts, later.select("user_id", "item_id").distinct()


def fit(starts: DataFrame, later: DataFrame, reg: float) -> DataFrame:
    """(item_id, embedding): each item's (d + 1) response vector, W's column then m, from the users who have
    `later` pairs (see the module docstring); empty when nobody has."""
    weights = later.groupBy("user_id").agg((1.0 / F.sqrt(F.count("*"))).alias("w"))
    x = starts.join(weights, "user_id").persist()
    n_users = x.count()
    if not n_users:  # nobody to learn from (and MLlib's Summarizer refuses an empty input)
        x.unpersist()
        return starts.sparkSession.createDataFrame([], "item_id string, embedding array<float>")
    gram, total = _gram(x)
    # The pseudo-inverse: with `reg` 0 and fewer distinct starts than dimensions X'X is singular.
    inverse = np.linalg.pinv(gram + reg * np.eye(len(total)), hermitian=True)
    per_item = (
        in_sum_order(later.join(x, "user_id"), "item_id", "user_id")
        .groupBy("item_id")
        .agg(
            vector_to_array(Summarizer.sum(array_to_vector("embedding"), F.col("w"))).alias("b"),
            F.sum("w").alias("c"),
        )
    )

    def solve(batches):
        for pdf in batches:
            m = pdf["c"].to_numpy() / n_users
            centred = np.stack(pdf["b"].to_numpy()) - np.outer(m, total)  # X'(Y - 1m'), one row per item
            response = np.hstack([centred @ inverse, m[:, None]]).astype(np.float32)
            yield pd.DataFrame({"item_id": pdf["item_id"], "embedding": list(response)})

    model = per_item.mapInPandas(solve, "item_id string, embedding array<float>").localCheckpoint()
    x.unpersist()
    return model


def _gram(x: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(X'X, the sum of X's rows) of the `embedding` column: one partial product per partition, summed on the driver
    one at a time (`partials.summed`: two d x d matrices there however many partitions there are)."""

    def partial(batches: Iterator[pd.DataFrame]) -> list[np.ndarray] | None:
        gram, total = 0.0, 0.0
        for pdf in batches:
            rows = np.stack(pdf["embedding"].to_numpy()).astype(np.float64)
            gram, total = gram + rows.T @ rows, total + rows.sum(axis=0)
        return None if np.isscalar(total) else [gram, total]

    gram, total = summed(x.select("embedding"), partial, 2)
    return gram.reshape(len(total), len(total)), total


def with_bias(starts: DataFrame) -> DataFrame:
    """Start vectors with the trailing 1 that picks up each item's intercept in the dot product."""
    return starts.withColumn("embedding", F.concat("embedding", F.array(F.lit(1.0).cast("float"))))


def pair_scores(pairs: DataFrame, starts: DataFrame, model: DataFrame) -> DataFrame:
    """(user_id, item_id, raw): the part's raw score of each (user, item) pair of users with a start vector."""
    dot = F.aggregate(F.zip_with("_x", "_r", lambda a, b: a * b), F.lit(0.0), lambda acc, v: acc + v)
    return (
        pairs.join(with_bias(starts).withColumnRenamed("embedding", "_x"), "user_id")
        .join(model.withColumnRenamed("embedding", "_r"), "item_id")
        .select("user_id", "item_id", dot.alias("raw"))
    )


def onboarding_top(
    behaviors: DataFrame, item_vectors: DataFrame, seen_counts: DataFrame, model: Onboarding, block: int
) -> tuple[DataFrame, DataFrame, DataFrame] | None:
    """(the thin users' start vectors, the fitted part, each thin user's `model.candidates` best items with their
    raw score in `content`), from one blocked product as the content part's; None (nothing fitted) when no user of
    `seen_counts` (user_id, n_seen) has between 1 and `model.first` items, or fewer than `model.min_users` have more."""
    thin = F.col("n_seen").between(1, model.first)
    # One pass for both counts: users to serve, and users to learn from.
    counts = seen_counts.agg(F.count_if(thin).alias("thin"), F.count_if(F.col("n_seen") > model.first).alias("warm"))
    n_thin, warm = counts.first()
    if not n_thin:
        return None
    if warm < model.min_users:
        log.info("onboarding: %d users with more than %d items, fewer than %d: the part is not used", warm,
                 model.first, model.min_users)  # fmt: skip
        return None
    if model.features == "auto":
        model, _ = settle(behaviors, item_vectors, model, block)
    starts, later = _starts(behaviors, item_vectors, model)
    fitted = fit(starts, later, model.reg)
    thin_starts = starts.join(seen_counts.where(thin).select("user_id"), "user_id")
    return thin_starts, fitted, _ranked(thin_starts, fitted, model.candidates, block)


def onboarding_column(keys: DataFrame, thin: DataFrame, fitted: DataFrame, top: DataFrame) -> DataFrame:
    """(user_id, item_id, onboarding) for the thin users' `keys`: the raw score over the user's best, at least 0."""
    best = top.groupBy("user_id").agg(F.max("content").alias("_best"))
    scaled = F.when(F.col("_best") > 0, F.greatest(F.col("raw"), F.lit(0.0)) / F.col("_best")).otherwise(0.0)
    raw = pair_scores(keys, thin, fitted)
    return raw.join(best, "user_id").select("user_id", "item_id", scaled.alias("onboarding"))


def settle(
    behaviors: DataFrame, item_vectors: DataFrame, model: Onboarding, block: int, seed: int = SEED
) -> tuple[Onboarding, dict[str, float]]:
    """(`model` with `features` "text" or "ids", what `auto` measured): for `auto`, each map fitted on the warm
    users outside a seeded `model.holdout` share (at most MAX_HELD users), scored by nDCG@HELD_K of the held-out
    users' later choices ranked over the catalogue, their start items left out. ids are kept only when they rank
    better; text on a tie (it also places starts made of items nobody started with), when fewer than MIN_HELD users
    can be held out, and when the part will not be used: no user thin enough to be served by it, or fewer than
    `model.min_users` to learn it from (`onboarding_top` says so; nothing is measured then)."""
    if model.features != "auto":
        return model, {}
    seen = behaviors.groupBy("user_id").agg(F.count_distinct("item_id").alias("n"))
    counts = seen.agg(F.count_if(F.col("n") <= model.first).alias("thin"),
                      F.count_if(F.col("n") > model.first).alias("warm")).first()  # fmt: skip
    if not counts["thin"] or counts["warm"] < model.min_users:
        return replace(model, features="text"), {}
    found = {kind: _starts(behaviors, item_vectors, replace(model, features=kind)) for kind in ("text", "ids")}
    starts, later = found["text"]
    users = starts.select("user_id").join(later.select("user_id").distinct(), "user_id")
    held = users.where(hashed_share("user_id", 0.0, model.holdout, seed)).orderBy("user_id").limit(MAX_HELD)
    held = held.localCheckpoint()
    n_held = held.count()
    if n_held < MIN_HELD:
        log.info("onboarding: fewer than %d warm users to hold out, the text map is kept", MIN_HELD)
        return replace(model, features="text"), {}
    firsts, _ = first_n_split(behaviors.join(held, "user_id").select("user_id", "item_id", "ts"), model.first, seed)
    ndcg = {kind: _held_out_ndcg(*found[kind], held, firsts.select("user_id", "item_id"), model, block)
            for kind in found}  # fmt: skip
    kind = "ids" if ndcg["ids"] > ndcg["text"] else "text"
    log.info("onboarding: held-out nDCG@%d text %.4f, ids %.4f: the %s map", HELD_K, ndcg["text"], ndcg["ids"], kind)
    metrics = {"onboarding_ids": float(kind == "ids"), "onboarding_held_out": float(n_held),
               **{f"onboarding_ndcg_{k}": v for k, v in ndcg.items()}}  # fmt: skip
    return replace(model, features=kind), metrics


def _starts(behaviors: DataFrame, item_vectors: DataFrame, model: Onboarding) -> tuple[DataFrame, DataFrame]:
    """`start_vectors` from the item vectors `model.features` names, materialised: the fit, the product and the pair
    scores all read them, and each read would re-run the per-user window over the whole history."""
    vectors = item_vectors if model.features == "text" else id_vectors(behaviors, model.first, model.max_ids)
    starts, later = start_vectors(behaviors, vectors, model.first)
    return starts.localCheckpoint(), later.localCheckpoint()


def _ranked(starts: DataFrame, fitted: DataFrame, m: int, block: int) -> DataFrame:
    """(user_id, item_id, content): each start's `m` best items by the part's raw score."""
    none = starts.select("user_id", F.lit(None).cast("string").alias("item_id")).limit(0)
    return content_scores(with_bias(starts), fitted, none, m, block)


def _held_out_ndcg(
    starts: DataFrame, later: DataFrame, held: DataFrame, firsts: DataFrame, model: Onboarding, block: int
) -> float:
    """nDCG@HELD_K of the `held` users' `later` pairs, ranked by the map fitted on everyone else."""
    fitted = fit(starts.join(held, "user_id", "left_anti"), later.join(held, "user_id", "left_anti"), model.reg)
    top = _ranked(starts.join(held, "user_id"), fitted, HELD_K + model.first, block)
    recs = rank_by_score(top.join(firsts, ["user_id", "item_id"], "left_anti"), "content")
    return ranking_metrics(recs, later.join(held, "user_id"), HELD_K)["ndcg_at_k"]
