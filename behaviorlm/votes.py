"""The `neighbors` part of the recommendation blend: how a behaviour counts as a vote, every neighbour's votes, their
sums per (user, item) scaled to the user's best item, and the strongest voter behind a recommended item."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.users import map_lookup


@dataclass(frozen=True)
class Strength:
    """How a behaviour counts as a vote: weight per event type, the rating scale, and how much a rating centred on
    the user's own mean moves it."""

    event_weights: dict[str, float]
    rating_min: float = 1.0
    rating_max: float = 5.0
    centering: float = 0.5


def interaction_strength(behaviors: DataFrame, strength: Strength) -> DataFrame:
    """(user_id, item_id, strength > 0): the event-type weight, times 1 + centering x (rating - the user's mean
    rating) / (rating range) for rated events; the strongest event per (user, item) counts."""
    mean = F.avg("rating").over(Window.partitionBy("user_id"))
    span = F.lit(strength.rating_max - strength.rating_min)
    deviation = F.coalesce((F.col("rating") - mean) / span, F.lit(0.0))
    weight = F.coalesce(map_lookup(strength.event_weights, F.col("event_type")), F.lit(0.0))
    value = weight * F.greatest(F.lit(0.0), 1.0 + F.lit(strength.centering) * deviation)
    return (
        behaviors.withColumn("strength", value.cast("double"))
        .groupBy("user_id", "item_id")
        .agg(F.max("strength").alias("strength"))
        .where(F.col("strength") > 0)
    )


def _vote_weight(power: float) -> Column:
    """`_w`: a neighbour's weight as a voter, its similarity (negative counts as 0) ** power."""
    return F.pow(F.greatest(F.col("similarity"), F.lit(0.0)), F.lit(power)).alias("_w")


def neighbor_votes(neighbors: DataFrame, strengths: DataFrame, power: float) -> DataFrame:
    """(user_id, neighbor_id, item_id, vote): each neighbour's vote on each item it interacted with, similarity **
    power x its interaction strength."""
    return (
        neighbors.select("user_id", "neighbor_id", _vote_weight(power))
        .join(strengths.withColumnRenamed("user_id", "neighbor_id"), "neighbor_id")
        .select("user_id", "neighbor_id", "item_id", (F.col("_w") * F.col("strength")).alias("vote"))
    )


def neighbor_scores(neighbors: DataFrame, strengths: DataFrame, power: float, seen: DataFrame) -> DataFrame:
    """(user_id, item_id, neighbors, voters): summed neighbour votes on items the user has not `seen`, scaled so each
    user's best unseen item scores 1. Sums and counts only, so Spark aggregates the votes by hashing (there are
    neighbours x their items of them); the strongest voter is found for the recommended rows (`strongest_voters`)."""
    summed = (
        neighbor_votes(neighbors, strengths, power)
        .groupBy("user_id", "item_id")
        .agg(F.sum("vote").alias("_raw"), F.count("*").alias("voters"))
        .join(seen, ["user_id", "item_id"], "left_anti")
    )
    best = F.max("_raw").over(Window.partitionBy("user_id"))
    # A user whose votes sum to nothing positive (neighbours' centred ratings that cancel) has no CF signal: no rows,
    # rather than a division by zero.
    scaled = F.when(best > 0, F.col("_raw") / best)
    return summed.withColumn("neighbors", scaled).drop("_raw").where(F.col("neighbors") > 0)


def strongest_voters(pairs: DataFrame, neighbors: DataFrame, strengths: DataFrame, power: float) -> DataFrame:
    """(user_id, item_id, top_neighbor) for the (user, item) `pairs`: the neighbour whose vote weighs most, null on a
    tie. Built from the pairs outward (their users' neighbours, then those neighbours' strengths on the pair's item),
    so only the votes behind these pairs are ever formed."""
    votes = (
        pairs.select("user_id", "item_id")
        .join(neighbors.select("user_id", "neighbor_id", _vote_weight(power)), "user_id")
        .join(strengths.withColumnRenamed("user_id", "neighbor_id"), ["neighbor_id", "item_id"])
        .withColumn("_v", F.col("_w") * F.col("strength"))
    )
    is_top = F.col("_v") == F.max("_v").over(Window.partitionBy("user_id", "item_id"))
    return (
        votes.withColumn("_is_top", is_top.cast("int"))
        .groupBy("user_id", "item_id")
        .agg(F.max_by("neighbor_id", "_v").alias("_top_id"), F.sum("_is_top").alias("_n_top"))
        .select("user_id", "item_id", F.when(F.col("_n_top") == 1, F.col("_top_id")).alias("top_neighbor"))
    )
