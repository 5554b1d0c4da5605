"""Item-item collaborative part of `recommend`, learned from the interaction matrix: EASE (Steck, "Embarrassingly
Shallow Autoencoders", 2019), a ridge regression of each item on all the others with a zero diagonal, in closed form:
B = -P / diag(P) with P = (XᵀX + λI)⁻¹, B's diagonal 0. A user's score for item j is the sum over their history of
B[i, j] (or, with a weight per behaviour, the weighted sum: `predict` weighs recent ones more); the history item with
the largest (weighted) B[i, j] is the reason ("because you chose Fargo").

X is binary (user, item) interactions. XᵀX is computed on the cluster, each partition counting its users' item pairs
and the driver adding the partitions' counts one at a time (`behaviorlm.partials`; DataFrame API only, no RDD), so
only the catalogue² matrix reaches the driver: this path is for catalogues up to a setting
(`recommend.item_model.max_items`). Scoring ships B to the executors (`partials.Shipped`: a broadcast variable) and
scores a batch of users per BLAS call there. Above the setting, the pruned top-K co-occurrence model of
`behaviorlm.cooccurrence` (joins and aggregations only) gives the same columns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.cooccurrence import cooccurrence_scores
from behaviorlm.indexing import id_index
from behaviorlm.partials import PARTIALS, Shipped, co_counts, summed

log = logging.getLogger(__name__)
GRAM_BYTES = 1 << 31  # X'X partials the driver fetches, in all (`gram`)
SCORES = "user_id string, ix int, raw float, because int"
OUTPUT = "user_id string, item_id string, items double, because_item string"


def histories(pairs: DataFrame, index: DataFrame, weight: str | None = None) -> DataFrame:
    """(user_id, items, strengths): each user's interacted item numbers, sorted, and each one's weight (the largest
    of its rows' `weight`; 1 without one)."""
    w = F.col(weight) if weight else F.lit(1.0)
    per_item = pairs.join(index, "item_id").groupBy("user_id", "ix").agg(F.max(w).cast("float").alias("_w"))
    history = per_item.groupBy("user_id").agg(F.array_sort(F.collect_list(F.struct("ix", "_w"))).alias("_h"))
    return history.select("user_id", F.col("_h.ix").alias("items"), F.col("_h._w").alias("strengths"))


def gram(history: DataFrame, n_items: int) -> np.ndarray:
    """XᵀX (co-occurrence counts) of the binary user x item matrix, computed on the cluster: each partition counts
    its users' item pairs (`partials.co_counts`), the driver adds the partitions' counts (`partials.summed`)."""

    def partial(batches: Iterator[pd.DataFrame]) -> list[np.ndarray] | None:
        rows = []

        def lists() -> Iterator[list[int]]:
            for batch in batches:
                rows.append(len(batch))
                yield from batch["items"]

        counts = co_counts(lists(), n_items)  # one n x n array per partition, not one per Arrow batch
        return [counts] if sum(rows) else None

    # Each partial is n² int32: fewer of them for a larger catalogue, so at most GRAM_BYTES pass through the driver.
    partials = max(1, min(PARTIALS, GRAM_BYTES // (4 * n_items * n_items)))
    return summed(history.select("items"), partial, 1, partials)[0].reshape(n_items, n_items)


def ease(gram_matrix: np.ndarray, reg: float) -> np.ndarray:
    """EASE weights B (float32, zero diagonal) from XᵀX and the L2 penalty `reg`."""
    p = np.linalg.inv(gram_matrix + reg * np.eye(gram_matrix.shape[0]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def _top(weights: np.ndarray, m: int, users: pd.Series, items: pd.Series, strengths: pd.Series) -> pd.DataFrame:
    """The `m` best unseen items of each user in one batch: scores from one product, the reason per item."""
    x = np.zeros((len(users), weights.shape[0]), dtype=np.float32)
    for row, (history, strength) in enumerate(zip(items, strengths)):
        x[row, history] = strength
    scores = x @ weights
    scores[x > 0] = -np.inf
    m = min(m, weights.shape[0])
    out = []
    for row, (user, history, strength) in enumerate(zip(users, items, strengths)):
        best = np.argpartition(-scores[row], m - 1)[:m]
        best = best[scores[row, best] > 0]
        history = np.asarray(history)
        votes = weights[np.ix_(history, best)] * np.asarray(strength, dtype=np.float32)[:, None]
        because = history[votes.argmax(axis=0)]
        out.append(pd.DataFrame({"user_id": user, "ix": best, "raw": scores[row, best], "because": because}))
    return pd.concat(out) if out else pd.DataFrame({"user_id": [], "ix": [], "raw": [], "because": []})


def item_scores(
    pairs: DataFrame, reg: float, m: int, weight: str | None = None, max_items: int | None = None, setting: str = "",
    neighbors: int = 100,
) -> DataFrame:  # fmt: skip
    """(user_id, item_id, items, because_item): each user's `m` best unseen items by EASE, scaled so the user's best
    scores 1 (items scoring nothing positive are left out), with the history item that weighs most for each. B is
    learned from binary interactions; with a `weight` column each history item votes with its weight. Above
    `max_items` items (EASE's catalogue² matrix is inverted on the driver) the pruned co-occurrence model with
    `neighbors` per item scores instead (logged with `setting`)."""
    # The steps below read `pairs` several times: a deep plan (a backtest split's windows and joins) would be
    # planned and computed again each time. Cut it first.
    pairs = pairs.localCheckpoint()
    index = id_index(pairs, "item_id", "ix")  # materialised by id_index already
    n_items = index.count()
    if max_items is not None and n_items > max_items:
        log.info("items part: %d items with interactions > %s=%d: pruned co-occurrence model, %d neighbours per item",
                 n_items, setting, max_items, neighbors)  # fmt: skip
        return cooccurrence_scores(pairs, m, reg, weight, neighbors)
    if n_items == 0:  # no X'X to size
        return pairs.sparkSession.createDataFrame([], OUTPUT)
    history = histories(pairs, index, weight).localCheckpoint()
    weights = Shipped(pairs.sparkSession, ease(gram(history, n_items), reg))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield _top(weights(), m, batch["user_id"], batch["items"], batch["strengths"])

    scored = history.mapInPandas(score, SCORES)
    best = F.max("raw").over(Window.partitionBy("user_id"))
    names = index.withColumnRenamed("item_id", "because_item").withColumnRenamed("ix", "because")
    found = (
        scored.withColumn("items", (F.col("raw") / best).cast("double"))
        .join(F.broadcast(index), "ix")
        .join(F.broadcast(names), "because")
        .select("user_id", "item_id", "items", "because_item")
        .localCheckpoint()  # computed once, though candidates read it twice
    )
    weights.release()
    return found
