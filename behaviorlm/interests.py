"""What users are into and how that moves: each user's top interest segments from their behaviours, and each
segment's share of all behaviours per period with an alert when it moves far from its recent level.

Both take behaviours and `item_segments` (item_id, segment_id, ...) from `behaviorlm.segments.cluster_items`. A
behaviour whose item has no segment (no valid embedding) is skipped.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL
from behaviorlm.segments import SEGMENT_COL
from behaviorlm.users import map_lookup

PERIODS = ("day", "week", "month")
# A share's trailing standard deviation is never taken below this (one percentage point) when dividing by it: a
# segment whose share has not moved at all would otherwise turn any change into an infinite z-score.
MIN_STD = 0.01


def _age_days(user_col: str, time_col: str) -> Column:
    """Days between a behaviour and its user's latest one (0 for the latest)."""
    latest = F.max(time_col).over(Window.partitionBy(user_col))
    return (F.unix_timestamp(latest) - F.unix_timestamp(time_col)) / 86_400.0


def _weight(
    weights: dict[str, float] | None, rating_max: float | None, half_life_days: float, age: Column, event_col: str,
    rating_col: str,
) -> Column:  # fmt: skip
    """event-type weight (1 for all without `weights`, 0 for a type not in them) x rating / rating_max (when
    `rating_max` is given and the behaviour is rated) x 0.5^(age / half-life) (when half-life > 0)."""
    if weights is None:
        w = F.lit(1.0)
    else:  # an empty map literal has no key type to look a string up in
        w = F.coalesce(map_lookup(weights, F.col(event_col)) if weights else F.lit(None), F.lit(0.0))
    if rating_max is not None:
        w = w * F.coalesce(F.col(rating_col) / F.lit(rating_max), F.lit(1.0))
    if half_life_days > 0:
        w = w * F.pow(F.lit(0.5), age / half_life_days)
    return w.cast("double")


def user_interests(
    behaviors: DataFrame,
    item_segments: DataFrame,
    per_user: int = 3,
    half_life_days: float = 30.0,
    recent_days: int = 30,
    weights: dict[str, float] | None = None,
    rating_max: float | None = None,
    *,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
    event_col: str = EVENT_COL,
    rating_col: str = RATING_COL,
) -> DataFrame:
    """(user_id, segment_id, weight, recent_share): each user's top `per_user` segments.

    A behaviour weighs its event type's weight x recency (see `_weight`; age counted from the user's latest
    behaviour, skipped ones included). Segments rank by summed weight, then by behaviour count, then by id; the kept
    weights are renormalised to sum to 1 (equal shares where they sum to 0). `recent_share`: the share of the
    user's behaviours within `recent_days` of the latest that fall in the segment (over all segments, not only the
    kept ones; 0 when the user has none).
    """
    age = _age_days(user_col, time_col)
    rows = behaviors.where(F.col(user_col).isNotNull() & F.col(time_col).isNotNull()).select(
        user_col,
        item_col,
        _weight(weights, rating_max, half_life_days, age, event_col, rating_col).alias("_w"),
        (age <= recent_days).cast("int").alias("_recent"),
    )
    per = (
        rows.join(item_segments.select(item_col, SEGMENT_COL), item_col)
        .groupBy(user_col, SEGMENT_COL)
        .agg(F.sum("_w").alias("_w"), F.count("*").alias("_n"), F.sum("_recent").alias("_recent"))
    )
    user = Window.partitionBy(user_col)
    order = user.orderBy(F.col("_w").desc(), F.col("_n").desc(), SEGMENT_COL)
    ranked = per.select(
        "*",
        F.row_number().over(order).alias("_rank"),
        F.sum("_recent").over(user).alias("_recent_all"),
    ).where(F.col("_rank") <= per_user)
    total = F.sum("_w").over(user)
    weight = F.when(total > 0, F.col("_w") / total).otherwise(1.0 / F.count("*").over(user))
    recent = F.when(F.col("_recent_all") > 0, F.col("_recent") / F.col("_recent_all")).otherwise(0.0)
    return ranked.select(user_col, SEGMENT_COL, weight.cast("double").alias("weight"),
                         recent.cast("double").alias("recent_share"))  # fmt: skip


def segment_users(behaviors: DataFrame, item_segments: DataFrame, user_col: str = USER_COL,
                  item_col: str = ITEM_COL) -> DataFrame:  # fmt: skip
    """(segment_id, n_users): distinct users with a behaviour on the segment's items."""
    joined = behaviors.select(user_col, item_col).join(item_segments.select(item_col, SEGMENT_COL), item_col)
    return joined.groupBy(SEGMENT_COL).agg(F.countDistinct(user_col).alias("n_users"))


def _period_counts(behaviors: DataFrame, item_segments: DataFrame, period: str, item_col: str,
                   time_col: str) -> DataFrame:  # fmt: skip
    """(segment_id, period_start, behaviors) for every segment x every period from the first to the last one with
    a behaviour: periods or segments without behaviours are there with 0."""
    start = F.to_date(F.date_trunc(period, F.col(time_col))).alias("period_start")
    mapped = behaviors.where(F.col(time_col).isNotNull()).join(item_segments.select(item_col, SEGMENT_COL), item_col)
    counts = mapped.groupBy(SEGMENT_COL, start).agg(F.count("*").alias("behaviors"))
    bounds = counts.agg(F.min("period_start").alias("_first"), F.max("period_start").alias("_last"))
    # No behaviour: both bounds are null and the sequence is empty.
    every = F.sequence("_first", "_last", F.expr(f"interval 1 {period}"))
    periods = bounds.where(F.col("_first").isNotNull()).select(F.explode(every).alias("period_start"))
    grid = item_segments.select(SEGMENT_COL).distinct().crossJoin(periods)
    return grid.join(counts, [SEGMENT_COL, "period_start"], "left").fillna(0, ["behaviors"])


def segment_trends(
    behaviors: DataFrame,
    item_segments: DataFrame,
    period: str = "week",
    window: int = 4,
    alert_z: float = 3.0,
    min_std: float = MIN_STD,
    *,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
) -> DataFrame:
    """(segment_id, period_start date, behaviors, share, change, z_score, alert) for every segment and every period
    (`date_trunc`: day, week from Monday, month) between the first and the last behaviour.

    share = the segment's behaviours / all mapped behaviours of the period (null for a period with none: there is
    no share to compare, and the trailing statistics skip it). change = share - the mean share of the `window`
    periods before (null without one). z_score = change / the largest of their population std, the share's own
    sampling noise at the period's volume and `min_std`, null unless at least two of them have a share. The noise
    is a share's binomial standard error sqrt(p(1 - p) / the period's behaviours), p the larger of the share and the
    trailing mean, at most 0.5: a share read off a handful of behaviours (a week just begun) does not alert.
    alert = |z_score| > `alert_z` (false where z_score is null).
    """
    if period not in PERIODS:
        raise ValueError(f"segment_trends: period {period!r} is not one of {PERIODS}")
    counts = _period_counts(behaviors, item_segments, period, item_col, time_col)
    total = F.sum("behaviors").over(Window.partitionBy("period_start"))
    shares = counts.withColumn("share", F.when(total > 0, F.col("behaviors") / total).cast("double"))
    trailing = Window.partitionBy(SEGMENT_COL).orderBy("period_start").rowsBetween(-window, -1)
    mean = F.avg("share").over(trailing)
    change = F.col("share") - mean
    p = F.least(F.greatest(F.col("share"), F.coalesce(mean, F.lit(0.0))), F.lit(0.5))
    noise = F.when(total > 0, F.sqrt(p * (1 - p) / total))  # greatest() skips the null of an empty period
    spread = F.greatest(F.coalesce(F.stddev_pop("share").over(trailing), F.lit(0.0)), noise, F.lit(min_std))
    z = F.when(F.count("share").over(trailing) >= 2, change / spread)
    out = shares.select("*", change.cast("double").alias("change"), z.cast("double").alias("z_score"))
    return out.select(SEGMENT_COL, "period_start", F.col("behaviors").cast("long"), "share", "change", "z_score",
                      F.coalesce(F.abs("z_score") > alert_z, F.lit(False)).alias("alert"))  # fmt: skip
