"""Next-behaviour prediction: each user's most likely next items from the order of their behaviours, as DataFrame
functions. The `predict` stage runs it (`behaviorlm predict --conf conf/local.yaml`).

Five sources score every candidate, each normalised per user so that the user's best item scores 1:
- `transitions`: votes of the user's latest items through item-to-item transitions (`behaviorlm.transitions`);
- `together`: votes of the items of the user's last sitting through items chosen in one sitting, in either order
  (`transitions.together_scores`): batches of choices whose order the log does not know;
- `recent`: cosine of the item with the user's recent-interest vector, the recency-weighted mean of the vectors of
  their latest `recent_items` items (in the centred item space); never below 0;
- `segments`: the user's interest segments (weight) x the item's place in its segment (popularity x similarity to
  the segment centre);
- `popularity`: log(1 + users who had it) / log(1 + the most), the same for everyone;
- `items`: EASE item-item weights (`behaviorlm.item_model`) voted by the history, each item by decay ** (back - 1).
Recency counts distinct times (`transitions.timeline`'s `back`): items a log records at one timestamp (a batch of
ratings, a coarse clock) are equally recent, whatever order the tie-break gives them.
Each source proposes its best `candidates` items (popularity its top k), the union is scored by all six, blended
with `weights` (`scoring.blend`) and the items the user already had are never proposed. Weights are tuned on a
validation target, each user's last behaviour (`tune`): callers pass data without the test target.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm import item_model
from behaviorlm.constants import BLOCK_SIZE, SEED
from behaviorlm.content import content_scores
from behaviorlm.metrics import leave_last_out
from behaviorlm.scoring import blend, count_of, in_catalogue, popular_candidates, popularity
from behaviorlm.segments import dot
from behaviorlm.transitions import timeline, together_scores, transition_scores, transitions
from behaviorlm.users import weighted_mean_vectors
from udfs.grid import OUTPUT_SCHEMA, target_ranks

SOURCES = ("transitions", "recent", "segments", "popularity", "together", "items")


@dataclass(frozen=True)
class Inputs:
    """What next-behaviour prediction reads, already in the shape it needs."""

    behaviors: DataFrame  # user_id, item_id, ts: the histories predictions continue
    items: DataFrame  # item_id, title
    item_vectors: DataFrame  # item_id, embedding: valid unit vectors in the centred item space
    item_segments: DataFrame | None = None  # item_id, segment_id, similarity (None: no segments source)
    interests: DataFrame | None = None  # user_id, segment_id, weight, label


@dataclass(frozen=True)
class Settings:
    k: int = 10
    window: int = 5  # successors each behaviour has, decayed by distance
    history: int = 10  # latest items that vote through transitions
    decay: float = 0.8  # vote of an item `back` times before the latest (successor d steps later): decay ** (back - 1)
    recent_items: int = 10  # latest items pooled into the recent-interest vector
    candidates: int = 200  # items each source proposes per user
    session_gap_hours: float = 0.0  # 0: no session gap rule
    together_gap_seconds: float = 120.0  # behaviours at most this far apart are one sitting (`together`)
    together_window: int = 20  # pairs of one sitting at most this many positions apart count
    items: bool = True  # compute the `items` source (off when its weight is 0 and tuning cannot raise it)
    item_reg: float = 500.0  # `items`: EASE's L2 penalty
    item_max_items: int = 5000  # `items`: EASE up to this many items, the pruned co-occurrence model above
    seed: int = SEED  # timestamp tie-break
    block_size: int = BLOCK_SIZE


def recent_vectors(tl: DataFrame, item_vectors: DataFrame, recent_items: int = 10, decay: float = 0.8) -> DataFrame:
    """(user_id, embedding): unit mean of the vectors of each user's latest `recent_items` items, each weighing
    decay ** (back - 1) (`timeline`'s back: items chosen at one time weigh alike). Items without a vector are
    skipped; a user with none gets no row."""
    latest = tl.where(F.col("pos") > F.col("n") - recent_items)
    rows = latest.join(item_vectors.select("item_id", F.col("embedding").alias("vec")), "item_id")
    return weighted_mean_vectors(rows.select("user_id", "vec", F.pow(F.lit(decay), F.col("back") - 1).alias("w")))


def segment_items(item_segments: DataFrame, pop: DataFrame) -> DataFrame:
    """(item_id, segment_id, in_segment): how well an item stands for its segment, popularity x max(similarity, 0):
    a popular item near the segment's centre, rather than an obscure one on its edge."""
    return item_segments.join(pop.select("item_id", "popularity"), "item_id").select(
        "item_id", "segment_id", (F.col("popularity") * F.greatest(F.col("similarity"), F.lit(0.0))).alias("in_segment")
    )


def segment_candidates(interests: DataFrame, in_segment: DataFrame, n: int) -> DataFrame:
    """(user_id, item_id): the `n` best items of each segment, for every user interested in it."""
    best = Window.partitionBy("segment_id").orderBy(F.col("in_segment").desc(), "item_id")
    top = in_segment.withColumn("_r", F.row_number().over(best)).where(F.col("_r") <= n)
    return interests.join(top, "segment_id").select("user_id", "item_id")


def segment_scores(keys: DataFrame, interests: DataFrame, in_segment: DataFrame) -> DataFrame:
    """(user_id, item_id, segments, segment_label) for the (user, item) `keys` in one of the user's segments: the sum
    of interest weight x in_segment, and the label of the segment that gave the most."""
    scored = (
        keys.join(in_segment, "item_id")
        .join(interests.select("user_id", "segment_id", "weight", "label"), ["user_id", "segment_id"])
        .withColumn("_s", F.col("weight") * F.col("in_segment"))
    )
    label = F.coalesce(F.col("label"), F.concat(F.lit("segment "), F.col("segment_id").cast("string")))
    return scored.groupBy("user_id", "item_id").agg(
        F.sum("_s").alias("segments"), F.max_by(label, F.struct("_s", F.col("segment_id"))).alias("segment_label")
    )


def per_user_max(cands: DataFrame, parts: list[str]) -> DataFrame:
    """Each part divided by the user's largest value of it (clipped at 0), so every user's best item scores 1 and a
    user with nothing positive scores 0."""
    user = Window.partitionBy("user_id")
    for p in parts:
        value, best = F.greatest(F.col(p), F.lit(0.0)), F.max(F.greatest(F.col(p), F.lit(0.0))).over(user)
        cands = cands.withColumn(p, F.when(best > 0, value / best).otherwise(F.lit(0.0)))
    return cands


def _best(scores: DataFrame, col: str, n: int) -> DataFrame:
    """Each user's `n` rows with the largest `col` (ties: item id)."""
    best = Window.partitionBy("user_id").orderBy(F.col(col).desc(), "item_id")
    return scores.withColumn("_r", F.row_number().over(best)).where(F.col("_r") <= n)


def _proposals(
    inp: Inputs, s: Settings, tl: DataFrame, voted: list[tuple[DataFrame, str]], pop: DataFrame
) -> DataFrame:
    """(user_id, item_id) the user has not had: each user's best `candidates` by each (scores, column) of `voted`
    and by segments, and the k most popular."""
    proposed = [
        *[_best(scores, col, s.candidates) for scores, col in voted],
        popular_candidates(tl.select("user_id", F.col("n").alias("n_seen")).distinct(), pop, s.k),
    ]
    if inp.item_segments is not None and inp.interests is not None:
        proposed.append(segment_candidates(inp.interests, segment_items(inp.item_segments, pop), s.candidates))
    keys = functools.reduce(DataFrame.unionByName, [p.select("user_id", "item_id") for p in proposed])
    return keys.join(tl.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti").distinct()


def recency_items(tl: DataFrame, s: Settings) -> DataFrame:
    """The `items` source (user_id, item_id, items, because_item): EASE, or above `s.item_max_items` items the pruned
    co-occurrence model; no rows when off."""
    if not s.items:
        return tl.sparkSession.createDataFrame([], item_model.OUTPUT)
    votes = tl.select("user_id", "item_id", F.pow(F.lit(s.decay), F.col("back") - 1).alias("_w"))
    return item_model.item_scores(votes, s.item_reg, s.candidates, "_w", s.item_max_items, "predict.item_max_items")


def candidates(inp: Inputs, s: Settings) -> DataFrame:
    """Every (user, item not had yet) a source proposes, scored by every source (0 where one is silent), with the
    fields reasons quote (`via_*`, `segment_label`, `pop_users`).

    Returned materialised with its lineage cut: blending, tuning and reasons read it several times. The timeline
    and each source's scores are materialised as they are made, because the sources read one another; without that
    the plan repeats them in every branch (hundreds of shuffles even on tiny data). `localCheckpoint`, not
    `persist`: a cached frame's plan prints the plans of the caches it reads wherever it reads them, a DAG written
    out as a tree. On MovieLens-100K the candidates' plan was 55 M characters; Spark renders each query's plan for
    its SQL listener at every adaptive re-plan, and the driver ran out of heap in `tune`'s collect."""
    tl = timeline(inp.behaviors, s.seed, s.session_gap_hours).localCheckpoint()
    trans = transition_scores(tl, transitions(tl, s.window, s.decay), s.history, s.decay).localCheckpoint()
    together = together_scores(
        inp.behaviors, s.seed, s.together_gap_seconds, s.together_window, s.history
    ).localCheckpoint()
    pop = popularity(in_catalogue(tl.select("user_id", "item_id"), inp.items)).localCheckpoint()
    items = recency_items(tl, s)
    voted = [(trans, "transitions"), (together, "together"), (items, "items")]
    keys = _proposals(inp, s, tl, voted, pop).localCheckpoint()
    vectors = recent_vectors(tl, inp.item_vectors, s.recent_items, s.decay)
    recent = content_scores(vectors, inp.item_vectors, keys, s.candidates, s.block_size)
    recent = recent.join(tl.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti").localCheckpoint()
    every = in_catalogue(keys.unionByName(recent.select("user_id", "item_id")), inp.items).distinct()
    scored = (
        every.join(trans, ["user_id", "item_id"], "left")
        .join(together, ["user_id", "item_id"], "left")
        .join(recent.withColumnRenamed("content", "recent"), ["user_id", "item_id"], "left")
        .join(pop.select("item_id", "popularity", "pop_users"), "item_id", "left")
        .join(items, ["user_id", "item_id"], "left")
    )
    if inp.item_segments is not None and inp.interests is not None:
        in_segment = segment_items(inp.item_segments, pop)
        scored = scored.join(segment_scores(every, inp.interests, in_segment), ["user_id", "item_id"], "left")
    else:
        scored = scored.withColumn("segments", F.lit(0.0)).withColumn("segment_label", F.lit(None).cast("string"))
    scored = scored.fillna(0.0, list(SOURCES)).fillna(0, ["pop_users"])
    return per_user_max(scored, [p for p in SOURCES if p != "popularity"]).localCheckpoint()


def weight_grid(grid: dict[str, list[float]], weights: dict[str, float]) -> list[dict[str, float]]:
    """Every combination of the grid's values, transitions fixed at 1 (the scale the others are weighed against); a
    source the grid leaves out keeps its weight from `weights`."""
    axes = [[(src, float(v)) for v in grid.get(src, [weights.get(src, 0.0)])] for src in SOURCES[1:]]
    return [{"transitions": 1.0, **dict(combo)} for combo in itertools.product(*axes)]


def tune(
    cands: DataFrame, truth: DataFrame, grid: dict[str, list[float]], k: int, weights: dict[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """The blend weights of `weight_grid` with the best hit rate at k on `truth` (one target item per user; ties:
    nDCG@k, then grid order), and their (hr_at_k, ndcg_at_k, users). Without a target user, `weights` unchanged.

    One pass: per user, the target's rank under every combination is 1 + the candidates scoring above it (on a tie,
    the more popular, then those with a smaller item id: `blend`'s order), in numpy (`udfs.grid.target_ranks`); a
    target among no candidates is a miss. Hits are counted per (combination, rank), so equal rankings give equal
    metrics exactly."""
    combos = weight_grid(grid, weights)
    target = truth.select("user_id", F.col("item_id").alias("_target")).distinct()
    with_target = cands.join(target, "user_id")
    at_target = with_target.where(F.col("item_id") == F.col("_target")).select(
        "user_id", *[F.col(p).alias(f"_t_{p}") for p in SOURCES]
    )
    n_users = with_target.select("user_id").distinct().count()
    if not n_users:
        return dict(weights), {"hr_at_k": 0.0, "ndcg_at_k": 0.0, "users": 0.0}
    matrix = np.array([[w.get(p, 0.0) for p in SOURCES] for w in combos], dtype=np.float64)
    columns = ["user_id", "item_id", "_target", *SOURCES, *(f"_t_{p}" for p in SOURCES)]

    def ranks(rows: pd.DataFrame) -> pd.DataFrame:
        return target_ranks(rows, matrix, SOURCES, k)

    pairs = with_target.join(at_target, "user_id").select(*columns)
    counts = pairs.groupBy("user_id").applyInPandas(ranks, OUTPUT_SCHEMA).groupBy("combo", "rank").count().collect()
    hits, gain = np.zeros(len(combos)), np.zeros(len(combos))
    for row in sorted(counts, key=lambda r: (r["combo"], r["rank"])):
        hits[row["combo"]] += row["count"]
        gain[row["combo"]] += row["count"] / math.log2(1 + row["rank"])
    best = max(range(len(combos)), key=lambda i: (hits[i], gain[i], -i))
    found = {"hr_at_k": float(hits[best] / n_users), "ndcg_at_k": float(gain[best] / n_users), "users": float(n_users)}
    return combos[best], found


def tune_on_last(
    inp: Inputs, s: Settings, grid: dict[str, list[float]], weights: dict[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """`tune` with each user's last behaviour in `inp.behaviors` as the target (`metrics.leave_last_out`) and the
    candidates made from the rest. Pass data without the test target: the job passes all but each user's last
    behaviour, so the weights are chosen on the last-but-one."""
    fit, target = leave_last_out(inp.behaviors, s.seed)
    return tune(candidates(replace(inp, behaviors=fit), s), target, grid, s.k, weights)


def lately(top: DataFrame, items: DataFrame, item_vectors: DataFrame, tl: DataFrame, recent_items: int,
           named: int = 2) -> DataFrame:  # fmt: skip
    """(user_id, item_id, lately): for each `recent`-source item, the titles of the `named` items among the user's
    latest `recent_items` closest to it by cosine (ties: the more recent), closest first."""
    recent = (
        tl.where(F.col("pos") > F.col("n") - recent_items)
        .join(item_vectors.select("item_id", F.col("embedding").alias("_h")), "item_id")
        .join(items.select("item_id", "title"), "item_id", "left")
        .select("user_id", F.coalesce("title", "item_id").alias("_title"), "_h", F.col("back").alias("_back"))
    )
    targets = top.where(F.col("source") == "recent").select("user_id", "item_id").join(item_vectors, "item_id")
    cosine = dot(F.col("embedding"), F.col("_h"))  # both unit vectors
    closest = Window.partitionBy("user_id", "item_id").orderBy(F.col("_sim").desc(), "_back", "_title")
    ranked = (
        targets.join(recent, "user_id")
        .withColumn("_sim", cosine)
        .withColumn("_r", F.row_number().over(closest))
        .where(F.col("_r") <= named)
    )
    ordered = F.array_sort(F.collect_list(F.struct("_r", "_title")))
    return ranked.groupBy("user_id", "item_id").agg(
        F.array_join(F.transform(ordered, lambda x: x["_title"]), ", ").alias("lately")
    )


def _share(part: str, whole: str):
    share = F.col(part) / F.col(whole)
    return F.when(share < 0.005, F.lit("under 1%")).otherwise(F.format_string("%d%%", F.round(share * 100).cast("int")))


def _followed(part: str, when: str) -> Column:
    """ "of the 4 users who went on from it, 3 (75%) chose it <when>": true counts, as recommend's reasons give them
    (a bare "100%" may be one user)."""
    many = F.format_string(f"of the %d users who went on from it, %d (%s) chose it {when}", F.col("via_followers"),
                           F.col(part), _share(part, "via_followers"))  # fmt: skip
    one = F.lit(f"the one user who went on from it chose it {when}")
    return F.when(F.col("via_followers") == 1, one).otherwise(many)


def recency_phrase(back: str, same_time: str) -> Column:
    """ "your latest", "your 3rd latest"; for an item chosen at the same time as others (their order unknown)
    "one of 4 chosen at your latest time", "one of 4 chosen at your 3rd latest time"."""
    n = F.col(back)
    suffix = (
        F.when((n % 100).between(11, 13), "th").when(n % 10 == 1, "st").when(n % 10 == 2, "nd").when(n % 10 == 3, "rd")
    )
    nth = F.when(n == 1, F.lit("")).otherwise(F.format_string("%d%s ", n, suffix.otherwise("th")))
    tied = F.format_string("one of %d chosen at your %slatest time", F.col(same_time) + 1, nth)
    return F.when(F.col(same_time) > 0, tied).otherwise(F.concat(F.lit("your "), nth, F.lit("latest")))


def explain(top: DataFrame, items: DataFrame, item_vectors: DataFrame, tl: DataFrame, recent_items: int = 10,
            window: int = 5) -> DataFrame:  # fmt: skip
    """Adds `reason` to blended rows: the history item and the share of users behind a transition, the recent items
    an item is close to, the interest segment, or popularity, after the source that contributed most."""
    titles = items.select(F.col("item_id").alias("via_item"), F.col("title").alias("_via_title"))
    because = items.select(F.col("item_id").alias("because_item"), F.col("title").alias("_because"))
    after = F.format_string(
        "after %s (%s), ", F.coalesce("_via_title", "via_item"), recency_phrase("via_back", "via_same_time")
    )
    nexts = F.col("via_next_users") > 0
    chosen = F.when(nexts, _followed("via_next_users", "next")).otherwise(
        _followed("via_users", f"within their next {window}")
    )
    close = F.concat(F.lit("close to what you did lately"), F.coalesce(F.concat(F.lit(": "), "lately"), F.lit("")))
    reason = (
        F.when(F.col("source") == "transitions", F.concat(after, chosen))
        .when(F.col("source") == "recent", close)
        .when(F.col("source") == "segments", F.concat(F.lit("in your interest: "), "segment_label"))
        .when(F.col("source") == "together", F.lit("often chosen in the same sitting as what you chose last"))
        .when(F.col("source") == "items", F.concat(F.lit("because you chose "), F.coalesce("_because", "because_item")))
        .when(F.col("pop_users") > 0, F.format_string("popular: %s chose it", count_of(F.col("pop_users"), "user")))
        # A slot no source supports (a small catalogue): say so rather than call it popular.
        .otherwise(F.lit("new in the catalogue: nobody has chosen it yet"))
    )
    return (
        top.join(titles, "via_item", "left")
        .join(because, "because_item", "left")
        .join(lately(top, items, item_vectors, tl, recent_items), ["user_id", "item_id"], "left")
        .withColumn("reason", reason)
    )


def predict(cands: DataFrame, inp: Inputs, s: Settings, weights: dict[str, float]) -> DataFrame:
    """(user_id, item_id, rank, score, source, reason): every user's top k of `cands` (`candidates(inp, s)`) blended
    with `weights`, with reasons."""
    top = blend(cands, weights, s.k, SOURCES)
    tl = timeline(inp.behaviors, s.seed, s.session_gap_hours)
    return explain(top, inp.items, inp.item_vectors, tl, s.recent_items, s.window).select(
        "user_id", "item_id", "rank", "score", "source", "reason"
    )
