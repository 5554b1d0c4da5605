"""Item-to-item transitions learned from the order of each user's behaviours, as DataFrame functions.

- `timeline`: each user's items in the order they first met them (timestamp ties broken by `metrics.tie_break`, the
  order `metrics.leave_last_out` uses), with positions and session numbers;
- `transitions`: every item's successors within the next `window` behaviours of the same session, weighted by
  decay ** (distance - 1) and normalised per item into P(next = j | i), with the user counts reasons quote;
- `transition_scores`: a user's vote for item j = the sum over their latest `history` items i of
  decay ** (back - 1) x P(j | i), back = 1 for the latest, on items the user has not had yet;
- `together_scores`: the same vote through pairs chosen in one sitting (a short-gap session), in either order.

The `predict` stage blends these scores with other sources (`behaviorlm.predict`). From a notebook:
`tl = timeline(behaviors); transition_scores(tl, transitions(tl))`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import ITEM_COL, SEED, TIME_COL, USER_COL
from behaviorlm.metrics import tie_break

NEXT_COL = "next_item_id"
# What `transition_scores` says about each score's strongest vote, for the reason: the history item, how far back it
# is (`back`) and how many of the user's items share its time, and the users behind the transition.
VIA_COLUMNS = ["via_item", "via_back", "via_same_time", "via_users", "via_next_users", "via_followers"]


def timeline(
    behaviors: DataFrame,
    seed: int = SEED,
    gap_hours: float = 0.0,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
) -> DataFrame:
    """(user, item, time, pos, n, back, same_time, session): each user's items at their first behaviour, in time
    order (pos 1 = the first; `n` = the user's number of items). `back` is how recent the item is: 1 for the user's
    latest timestamp, 2 for the one before, ..., so items chosen at the same time are equally recent (the tie-break
    orders them, but says nothing of which came later); `same_time` counts the user's other items at that time.
    `session` grows by one wherever the gap to the previous behaviour is longer than `gap_hours` (0: one session per
    user). Rows with a null user, item or time are dropped.

    Only an item's first behaviour counts: a repeat (a purchase after a view) is not a new step towards something
    the user has not had, and `leave_last_out` orders (user, item) pairs the same way, so position n is its target.
    """
    known = F.col(col_user).isNotNull() & F.col(col_item).isNotNull() & F.col(col_time).isNotNull()
    pairs = behaviors.where(known).groupBy(col_user, col_item).agg(F.min(col_time).alias(col_time))
    order = Window.partitionBy(col_user).orderBy(col_time, tie_break(seed, col_user, col_item), col_item)
    ranked = pairs.select(
        "*",
        F.row_number().over(order).alias("pos"),
        F.count("*").over(Window.partitionBy(col_user)).alias("n"),
        F.dense_rank().over(Window.partitionBy(col_user).orderBy(F.col(col_time).desc())).alias("back"),
        (F.count("*").over(Window.partitionBy(col_user, col_time)) - 1).alias("same_time"),
    )
    if gap_hours <= 0:
        return ranked.withColumn("session", F.lit(0))
    by_pos = Window.partitionBy(col_user).orderBy("pos")
    gap = F.unix_micros(col_time) - F.unix_micros(F.lag(col_time).over(by_pos))
    starts = F.coalesce(gap > F.lit(gap_hours * 3600e6), F.lit(False)).cast("int")
    return ranked.withColumn("_start", starts).withColumn("session", F.sum("_start").over(by_pos)).drop("_start")


def tied_share(
    behaviors: DataFrame, col_user: str = USER_COL, col_item: str = ITEM_COL, col_time: str = TIME_COL
) -> float:
    """The share of the users' items (at their first behaviour, as `timeline` has them) that share their user's
    timestamp with another item: how much of the order is the tie-break's rather than the log's (0.0 for none).
    Two aggregations, no window: it is a metric."""
    known = F.col(col_user).isNotNull() & F.col(col_item).isNotNull() & F.col(col_time).isNotNull()
    firsts = behaviors.where(known).groupBy(col_user, col_item).agg(F.min(col_time).alias(col_time))
    per_time = firsts.groupBy(col_user, col_time).agg(F.count("*").alias("_n"))
    row = per_time.agg(F.sum("_n").alias("n"), F.sum(F.when(F.col("_n") > 1, F.col("_n"))).alias("tied")).first()
    return (row["tied"] or 0) / row["n"] if row["n"] else 0.0


def transitions(
    tl: DataFrame,
    window: int = 5,
    decay: float = 0.8,
    unordered_ties: bool = True,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
    both_ways: bool = False,
) -> DataFrame:
    """(item, next_item_id, weight, probability, users, next_users, followers) from a `timeline`.

    Each behaviour is followed by the next `window` ones of the same user and session, the one d steps later
    weighing decay ** (d - 1). `weight` sums that over users, `probability` = weight / the item's total (P(next = j |
    i)), `users` counts the users who had j within `window` after i, `next_users` those who had it right after, and
    `followers` the users who had anything after i. With `unordered_ties`, two behaviours at the same timestamp count
    both ways: their order is only the tie-break hash's, and logs with coarse clocks (MovieLens: half of consecutive
    ratings share a second) would otherwise learn half of every such pair from the hash. With `both_ways`, every pair
    counts both ways: what was chosen together in one sitting (`together_scores`), whatever the order.
    """
    steps = tl.select(
        col_user, col_item, col_time, "pos", "session", F.explode(F.sequence(F.lit(1), F.lit(window))).alias("d")
    )
    later = tl.select(col_user, "session", F.col("pos").alias("_to"), F.col(col_item).alias(NEXT_COL),
                      F.col(col_time).alias("_next_time"))  # fmt: skip
    joined = steps.withColumn("_to", F.col("pos") + F.col("d")).join(later, [col_user, "session", "_to"])
    forward = F.struct(F.col(col_item).alias("a"), F.col(NEXT_COL).alias("b"))
    both = F.array(forward, F.struct(F.col(NEXT_COL).alias("a"), F.col(col_item).alias("b")))
    tie = F.col(col_time) == F.col("_next_time")
    # One pass makes both directions (no second read of the join); an item appears once per user, so a reversed pair
    # never repeats a forward one of the same user.
    directions = F.when(tie, both).otherwise(F.array(forward)) if unordered_ties else F.array(forward)
    directions = both if both_ways else directions
    pairs = joined.select(col_user, "d", F.explode(directions).alias("_p")).select(
        col_user, F.col("_p.a").alias(col_item), F.col("_p.b").alias(NEXT_COL), "d"
    )
    stats = pairs.groupBy(col_item, NEXT_COL).agg(
        F.sum(F.pow(F.lit(decay), F.col("d") - 1)).alias("weight"),
        F.count("*").alias("users"),
        F.sum((F.col("d") == 1).cast("long")).alias("next_users"),
    )
    total = F.sum("weight").over(Window.partitionBy(col_item))
    return stats.withColumn("probability", F.col("weight") / total).join(
        followers(tl, unordered_ties, col_user, col_item, col_time, both_ways), col_item
    )


def followers(
    tl: DataFrame,
    unordered_ties: bool = True,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
    both_ways: bool = False,
) -> DataFrame:
    """(item, followers): users who had anything after the item in the same session (with `unordered_ties`, a
    behaviour tied with the one before it counts as followed too; with `both_ways`, anything before it in the same
    session as well), from the timeline alone."""
    by_pos = Window.partitionBy(col_user).orderBy("pos")
    followed = F.lead("session").over(by_pos) == F.col("session")
    if both_ways:
        followed = followed | (F.lag("session").over(by_pos) == F.col("session"))
    elif unordered_ties:
        followed = followed | (F.lag(col_time).over(by_pos) == F.col(col_time))
    flagged = tl.withColumn("_followed", F.coalesce(followed, F.lit(False)))
    return (
        flagged.groupBy(col_item)
        .agg(F.sum(F.col("_followed").cast("long")).alias("followers"))
        .where(F.col("followers") > 0)
    )


def transition_scores(
    tl: DataFrame,
    trans: DataFrame,
    history: int = 10,
    decay: float = 0.8,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    last_session: bool = False,
) -> DataFrame:
    """(user, item, transitions, via_item, via_back, via_users, via_next_users, via_followers): for every item the
    user has not had that follows one of their latest `history` items (with `last_session`, only those of the user's
    last session vote), the sum of decay ** (back - 1) x P(item | history item), `back` counting distinct times
    (`timeline`: items chosen at one time vote alike). `via_*` describe the strongest
    single vote (ties: the more recent history item, then item id). A user whose latest items have no successors
    anywhere simply has no rows. `via_same_time` counts the user's other items at the voting item's time.
    Which items vote is decided by position: of more than `history` items at one time, the tie-break picks."""
    voters = tl
    if last_session:
        last = tl.withColumn("_last", F.max("session").over(Window.partitionBy(col_user)))
        voters = last.where(F.col("session") == F.col("_last")).drop("_last")
    latest = voters.where(F.col("pos") > F.col("n") - history).select(
        col_user, F.col(col_item).alias("_from"), F.col("back").alias("_back"), "same_time"
    )
    vote = F.pow(F.lit(decay), F.col("_back") - 1) * F.col("probability")
    via = F.struct(
        vote.alias("vote"),
        (-F.col("_back")).alias("recency"),
        F.col("_from").alias("via_item"),
        F.col("_back").alias("via_back"),
        F.col("same_time").alias("via_same_time"),
        F.col("users").alias("via_users"),
        F.col("next_users").alias("via_next_users"),
        F.col("followers").alias("via_followers"),
    )
    votes = latest.join(trans.withColumnRenamed(col_item, "_from"), "_from").select(
        col_user, F.col(NEXT_COL).alias(col_item), vote.alias("_v"), via.alias("_via")
    )
    fresh = votes.join(tl.select(col_user, col_item), [col_user, col_item], "left_anti")
    summed = fresh.groupBy(col_user, col_item).agg(F.sum("_v").alias("transitions"), F.max("_via").alias("_via"))
    return summed.select(col_user, col_item, "transitions", *[F.col(f"_via.{c}").alias(c) for c in VIA_COLUMNS])


def together_scores(
    behaviors: DataFrame,
    seed: int = SEED,
    gap_seconds: float = 120.0,
    window: int = 20,
    history: int = 10,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_time: str = TIME_COL,
) -> DataFrame:
    """(user, item, together): for every item the user has not had, the summed P(item | history item) of the latest
    `history` items of the user's last sitting, over pairs chosen in one sitting by anyone, both ways.

    A sitting is a run of behaviours at most `gap_seconds` apart; its pairs within `window` positions count equally
    and in both directions. Why: rating logs such as MovieLens record a batch of choices made on one page, so their
    order inside a sitting is mostly the clock's (or the tie-break's), while the batch itself says which items go
    together; the target often continues the user's last batch. Complements the ordered `transitions`."""
    tl = timeline(behaviors, seed, gap_seconds / 3600.0, col_user, col_item, col_time)
    pairs = transitions(tl, window, 1.0, False, col_user, col_item, col_time, both_ways=True)
    scored = transition_scores(tl, pairs, history, 1.0, col_user, col_item, last_session=True)
    return scored.select(col_user, col_item, F.col("transitions").alias("together"))
