"""Recommendation scoring: the parts of the blend, the blend itself and the reasons, as DataFrame functions.

The score blends four parts, each on a 0..1-ish scale:
- `neighbors`: items the user's neighbours interacted with; each neighbour votes similarity ** power x its
  interaction strength (event weight, moved up or down by its rating centred on its own mean); votes are summed and
  divided by the user's best item, so every user's top CF item scores 1 (a user with no positive vote gets none);
  `behaviorlm.votes`.
- `content`: cosine of the user vector with the item vector (both in the catalogue-centred space), from a blocked
  user x item product, so the catalogue never has to fit in one task and cold items can be recommended.
- `popularity`: log(1 + users who interacted) / log(1 + the most): what cold users get.
- `items`: the item-item model learned from the interaction matrix (`behaviorlm.item_model`, EASE), the user's best
  item scoring 1; its reason names the history item that weighs most ("because you chose Fargo").
- `onboarding`: thin histories only: what users who started with items like this user's went on to choose, a map
  learned from the warm users' first behaviours' text (`behaviorlm.onboarding`), the user's best item scoring 1.
Users with a thin history (at most `Thin.max_history` items) may get weights of their own (`Thin`): with a few
behaviours the collaborative parts know little. Items the user already interacted with are never recommended.
`source` is the part with the largest weighted contribution; `reason` says in words why, with true counts, and names
a neighbour or a history item only when one stands out (a tie names nobody).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.content import content_with_room
from behaviorlm.item_model import item_scores
from behaviorlm.onboarding import Onboarding, onboarding_column, onboarding_top
from behaviorlm.partials import positions
from behaviorlm.votes import Strength, interaction_strength, neighbor_scores, strongest_voters
from udfs.topk import closest_rows

PARTS = ("neighbors", "content", "popularity", "items", "onboarding")
HISTORY_FOR_REASON = 50  # strongest history items per user searched for the "close to ..." part of a reason


@dataclass(frozen=True)
class Inputs:
    """What the recommender reads, already in the shape it needs."""

    behaviors: DataFrame  # canonical behaviours (the user's history)
    items: DataFrame  # item_id, title
    item_vectors: DataFrame  # item_id, embedding (unit, centred like the user vectors) of catalogue items
    user_vectors: DataFrame  # user_id, embedding (valid unit vectors only)
    neighbors: DataFrame  # user_id, neighbor_id, similarity
    users: DataFrame  # user_id: everyone to serve


@dataclass(frozen=True)
class ItemModel:
    """The `items` part: EASE's L2 penalty, the largest catalogue it is computed for (its catalogue² matrix is
    inverted on the driver; above it, the pruned co-occurrence model keeps `neighbors` per item), and the items it
    proposes per user."""

    reg: float = 500.0
    max_items: int = 5000
    candidates: int = 100
    neighbors: int = 100


@dataclass(frozen=True)
class Thin:
    """The blend for users with a thin history (at most `max_history` items seen): with a few behaviours the
    collaborative parts know little, and the content part (item text) may deserve more weight."""

    max_history: int
    weights: dict[str, float]


def popularity(strengths: DataFrame) -> DataFrame:
    """(item_id, pop_users, popularity, pop_rank): users who interacted, log-scaled to 0..1, and the rank."""
    counts = strengths.groupBy("item_id").agg(F.countDistinct("user_id").alias("pop_users"))
    top = counts.agg(F.max("pop_users").alias("_max"))
    scaled = counts.crossJoin(F.broadcast(top)).withColumn("popularity", F.log1p("pop_users") / F.log1p("_max"))
    # A global rank without a one-partition window: a distributed sort, then each row's position in it.
    ordered = scaled.orderBy(F.col("pop_users").desc(), F.col("item_id")).drop("_max")
    return positions(ordered, "pop_rank", start=1)


def in_catalogue(frame: DataFrame, items: DataFrame) -> DataFrame:
    """The rows of `frame` whose item is in `items`. Behaviours of items the catalogue lacks (kept by ingest's
    `unknown_items: keep`) still teach the parts, but such an item has nothing to show: it is never proposed."""
    return frame.join(items.select("item_id"), "item_id", "left_semi")


def popular_candidates(seen_counts: DataFrame, pop: DataFrame, k: int) -> DataFrame:
    """(user_id, item_id): the k + (items the user has seen) most popular items, so k remain after removing seen."""
    ranks = seen_counts.select("user_id", F.explode(F.sequence(F.lit(1), F.lit(k) + F.col("n_seen"))).alias("pop_rank"))
    return ranks.join(pop.select("item_id", "pop_rank"), "pop_rank").select("user_id", "item_id")


def item_part(strengths: DataFrame, model: ItemModel | None) -> DataFrame | None:
    """The `items` part's scores (EASE, or the pruned co-occurrence model above its catalogue limit), or None
    without a model."""
    if model is None:
        return None
    pairs = strengths.select("user_id", "item_id")
    return item_scores(pairs, model.reg, model.candidates, None, model.max_items, "recommend.item_model.max_items",
                       model.neighbors)  # fmt: skip


def candidates(
    inp: Inputs, strength: Strength, power: float, k: int, content_candidates: int = 100, block_size: int = 4000,
    item_model: ItemModel | None = None, onboarding: Onboarding | None = None,
) -> DataFrame:  # fmt: skip
    """Every (user, unseen item) any part proposes, with every part's score (0 where a part is silent), the
    user's neighbour count, the user's number of items seen (`n_seen`) and the item behind the `items` score (for
    true reasons). `onboarding` (None: not computed) scores the users with at most `onboarding.first` items."""
    strengths = interaction_strength(inp.behaviors, strength)
    seen = inp.behaviors.select("user_id", "item_id").distinct()
    seen_counts = inp.users.join(seen.groupBy("user_id").agg(F.count("*").alias("n_seen")), "user_id", "left")
    seen_counts = seen_counts.fillna(0, ["n_seen"])
    # Read by the proposed pairs and the final join: its votes (neighbours x their items) are summed once.
    cf = neighbor_scores(inp.neighbors, strengths, power, seen).localCheckpoint()
    pop = popularity(in_catalogue(strengths, inp.items))
    items = item_part(strengths, item_model)
    if items is None:
        items = cf.select("user_id", "item_id", F.lit(0.0).alias("items"), F.lit(None).cast("string").alias(
            "because_item")).limit(0)  # fmt: skip
    proposed = (
        cf.select("user_id", "item_id")
        .unionByName(popular_candidates(seen_counts, pop, k))
        .unionByName(items.select("user_id", "item_id"))
    )
    ob_parts = None
    if onboarding is not None:
        ob_parts = onboarding_top(inp.behaviors, inp.item_vectors, seen_counts, onboarding, block_size)
    if ob_parts is not None:
        proposed = proposed.unionByName(ob_parts[2].select("user_id", "item_id"))
    # Read by the content part (its `wanted` pairs and its room check) and by the keys.
    proposed = in_catalogue(proposed.join(seen, ["user_id", "item_id"], "left_anti"), inp.items)
    proposed = proposed.distinct().localCheckpoint()
    content = content_with_room(
        inp.user_vectors, inp.item_vectors, proposed, seen, seen_counts, content_candidates, k, block_size
    )
    keys = proposed.unionByName(in_catalogue(content.select("user_id", "item_id"), inp.items)).distinct()
    if ob_parts is None:
        ob = keys.select("user_id", "item_id", F.lit(0.0).alias("onboarding")).limit(0)
    else:
        ob = onboarding_column(keys, *ob_parts)
    n_neighbors = inp.neighbors.groupBy("user_id").agg(F.count("*").alias("n_neighbors"))
    return (
        keys.join(seen_counts, "user_id")
        .join(seen, ["user_id", "item_id"], "left_anti")
        .join(cf, ["user_id", "item_id"], "left")
        .join(content, ["user_id", "item_id"], "left")
        .join(items, ["user_id", "item_id"], "left")
        .join(ob, ["user_id", "item_id"], "left")
        .join(pop.select("item_id", "popularity", "pop_users"), "item_id", "left")
        .join(n_neighbors, "user_id", "left")
        .fillna(0.0, list(PARTS))
        .fillna(0, ["voters", "pop_users", "n_neighbors"])
    )


def repower(cands: DataFrame, inp: Inputs, strength: Strength, power: float) -> DataFrame:
    """`candidates` with the `neighbors` part recomputed at another similarity power. The candidate set does not
    depend on the power (an item gets a positive vote at every power or at none), so a grid over powers builds the
    other parts (content, the item model) once."""
    strengths = interaction_strength(inp.behaviors, strength)
    seen = inp.behaviors.select("user_id", "item_id").distinct()
    cf = neighbor_scores(inp.neighbors, strengths, power, seen).select("user_id", "item_id", "neighbors")
    return cands.drop("neighbors").join(cf, ["user_id", "item_id"], "left").fillna(0.0, ["neighbors"])


def blend(
    cands: DataFrame, weights: dict[str, float], k: int, parts: Sequence[str] = PARTS, thin: Thin | None = None
) -> DataFrame:
    """Top-k per user by the weighted sum of the `parts` columns (ties: popularity, then item id), with `rank`,
    `score` and `source` (the first part with the largest weighted contribution). With `thin`, users with at most
    `thin.max_history` items seen (`n_seen`) are blended with `thin.weights` instead. A part `cands` has no column
    for is silent."""
    parts = [p for p in parts if p in cands.columns]

    def weight(part: str) -> Column:
        usual = F.lit(weights.get(part, 0.0))
        if thin is None or thin.max_history <= 0:
            return usual
        return F.when(F.col("n_seen") <= thin.max_history, F.lit(thin.weights.get(part, 0.0))).otherwise(usual)

    weighted = {p: weight(p) * F.col(p) for p in parts}
    score = functools.reduce(operator.add, weighted.values())
    best = F.greatest(*weighted.values()) if len(weighted) > 1 else score
    # Nothing positive (a cold user's never-touched item): call it popularity, the part that filled the slot.
    source = F.when(best <= 0, "popularity")
    for p in parts:
        source = source.when(weighted[p] == best, p)
    # Ties go to the more popular item: a user no part speaks for (say, whose history is all unknown items) then gets
    # the popular items, not the lowest ids.
    tie = [F.col("popularity").desc()] if "popularity" in cands.columns else []
    order = Window.partitionBy("user_id").orderBy(F.col("score").desc(), *tie, F.col("item_id"))
    return (
        cands.withColumn("score", score)
        .withColumn("source", source.otherwise("popularity"))
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
    )


def closest_history(top: DataFrame, inp: Inputs) -> DataFrame:
    """(user_id, item_id, close, close_cos): per recommended item, the title of the most similar item (by embedding)
    among the user's strongest `HISTORY_FOR_REASON` history items (null on a tie) and its cosine; one small matrix
    product per user."""
    strongest = Window.partitionBy("user_id").orderBy(F.col("w").desc(), F.col("item_id"))
    history = (
        inp.behaviors.groupBy("user_id", "item_id")
        .agg(F.max(F.coalesce("rating", F.lit(0.0))).alias("w"))
        .withColumn("_r", F.row_number().over(strongest))
        .where(F.col("_r") <= HISTORY_FOR_REASON)
        .join(inp.item_vectors, "item_id")
        .join(inp.items, "item_id")
        .select("user_id", F.col("title").alias("label"), "embedding")
    )
    # A fresh `embedding` column: both cogrouped sides would otherwise hold the same one of `item_vectors`, which
    # Spark rejects as an ambiguous self-join unless the frame happens to be cached.
    targets = top.select("user_id", "item_id").join(
        inp.item_vectors.select("item_id", F.col("embedding").alias("embedding")), "item_id"
    )
    return (
        targets.groupBy("user_id")
        .cogroup(history.groupBy("user_id"))
        .applyInPandas(closest_rows, "user_id string, item_id string, label string, similarity double")
        .withColumnsRenamed({"label": "close", "similarity": "close_cos"})
    )


def count_of(n: Column, noun: str) -> Column:
    """ "1 user", "2 users": a count and its noun, singular for one (a reason read by people)."""
    return F.format_string("%d %s", n, F.when(n == 1, F.lit(noun)).otherwise(F.lit(f"{noun}s")))


def explain(top: DataFrame, inp: Inputs) -> DataFrame:
    """Adds `reason`: neighbour votes (true counts), content cosine or popularity, and the closest history item."""
    # Named only when it is like the item at all (a cosine said as 0.01 or more): the closest of unrelated items is
    # no reason.
    close = F.when(F.col("close").isNotNull() & (F.col("close_cos") >= 0.005) & ~F.isnan("close_cos"),
                   F.format_string("; close to %s from your history (cosine %.2f)", "close", "close_cos"))  # fmt: skip
    strongest = F.when(F.col("top_neighbor").isNotNull(), F.format_string(" (strongest vote: user %s)", "top_neighbor"))
    votes = F.concat(
        F.format_string("%d of your %s chose it", "voters", count_of(F.col("n_neighbors"), "nearest user")),
        F.coalesce(strongest, F.lit("")),
    )
    popular = count_of(F.col("pop_users"), "user")
    reason = (
        F.when(F.col("source") == "neighbors", votes)
        .when(
            (F.col("source") == "items") & F.col("because_item").isNotNull(),
            # An item missing from the catalogue (kept by ingest) is named by its id.
            F.format_string("because you chose %s", F.coalesce("because", "because_item")),
        )
        .when(F.col("source") == "content", F.format_string("matches your taste profile (cosine %.2f)", "content"))
        .when(F.col("source") == "onboarding", F.lit("people who started with items like yours went on to choose it"))
        .when(F.col("pop_users") > 0, F.format_string("popular: %s interacted with it", popular))
        # A slot no part supports (a cold user, a small catalogue): say so rather than call it popular.
        .otherwise(F.lit("new in the catalogue: nobody has interacted with it yet"))
    )
    because = inp.items.select(F.col("item_id").alias("because_item"), F.col("title").alias("because"))
    return (
        top.join(closest_history(top, inp), ["user_id", "item_id"], "left")
        .join(because, "because_item", "left")  # no broadcast hint: a million titles are 100+ MB
        .withColumn("reason", F.concat(reason, F.coalesce(close, F.lit(""))))
        .drop("close", "close_cos", "because")
    )


def recommend(
    inp: Inputs,
    strength: Strength,
    weights: dict[str, float],
    k: int = 10,
    power: float = 2.0,
    content_candidates: int = 100,
    block_size: int = 4000,
    item_model: ItemModel | None = None,
    thin: Thin | None = None,
    onboarding: Onboarding | None = None,
) -> DataFrame:
    """Top-k recommendations with reasons for every user in `inp.users` (`thin`: the blend for thin histories,
    `onboarding`: its part for them).

    Returned persisted and materialised (`unpersist()` it when done). The candidates are materialised first: the
    top k, the strongest voters and the reasons all read them, and the plan would otherwise repeat them. They are
    checkpointed rather than cached, so the later plans do not print the candidates' whole plan in each branch
    (`predict.candidates` says why that matters)."""
    cands = candidates(inp, strength, power, k, content_candidates, block_size, item_model, onboarding)
    cands = cands.localCheckpoint()
    top = blend(cands, weights, k, thin=thin)
    by_neighbors = top.where(F.col("source") == "neighbors")
    voters = strongest_voters(by_neighbors, inp.neighbors, interaction_strength(inp.behaviors, strength), power)
    recs = explain(top.join(voters, ["user_id", "item_id"], "left"), inp).persist(StorageLevel.MEMORY_AND_DISK)
    recs.count()
    return recs
