"""DataFrame-only numbering and sums (`behaviorlm.partials`): the same numbers RDD `zipWithIndex` and MLlib's
`RowMatrix` gave, across partitions some of which are empty."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from behaviorlm import partials
from behaviorlm.indexing import id_index
from behaviorlm.scoring import popularity


def test_positions_number_rows_in_order_across_partitions(spark):
    values = spark.createDataFrame([(f"v{n:03d}",) for n in range(50)], "v string")
    # Seven sorted ranges (a sort's output; the test session's AQE would make one partition of 50 rows), one of
    # them emptied by the filter: numbered back to back, the empty one skipped.
    ordered = values.repartitionByRange(7, F.col("v").desc()).sortWithinPartitions(F.col("v").desc())
    ordered = ordered.where(~F.col("v").between("v020", "v029"))
    sizes = [r["count"] for r in ordered.groupBy(F.spark_partition_id().alias("p")).count().collect()]
    assert len(sizes) >= 5  # several partitions hold rows; the emptied one does not
    got = [(r["v"], r["n"]) for r in partials.positions(ordered, "n", start=1).collect()]
    kept = [f"v{n:03d}" for n in range(49, -1, -1) if not 20 <= n <= 29]
    assert sorted(got, key=lambda r: r[1]) == [(v, place + 1) for place, v in enumerate(kept)]
    empty = partials.positions(values.where("v = 'none'").orderBy("v"), "n")
    assert empty.count() == 0 and empty.schema["n"].dataType.simpleString() == "bigint"


def test_id_index_and_popularity_rank_are_dense_and_ordered(spark):
    pairs = spark.createDataFrame([("u1", "b"), ("u2", "b"), ("u1", "a"), ("u3", "c"), ("u2", "c"), ("u3", "b"),
                                   ("u4", None)], "user_id string, item_id string")  # fmt: skip
    index = {r["item_id"]: r["ix"] for r in id_index(pairs, "item_id", "ix").collect()}
    assert index == {"a": 0, "b": 1, "c": 2}  # nulls are not numbered
    ranks = {r["item_id"]: r["pop_rank"] for r in popularity(pairs.where("item_id IS NOT NULL")).collect()}
    assert ranks == {"b": 1, "c": 2, "a": 3}  # by users, ties by id


def test_co_counts_match_the_dense_product_across_bincount_steps(monkeypatch):
    rng = np.random.default_rng(3)
    histories = [sorted(rng.choice(9, size=rng.integers(1, 6), replace=False).tolist()) for _ in range(30)]
    x = np.zeros((30, 9))
    for row, items in enumerate(histories):
        x[row, items] = 1.0
    monkeypatch.setattr(partials, "PAIRS_PER_STEP", 10)  # a step every few histories, not one at the end
    np.testing.assert_array_equal(partials.co_counts(iter(histories), 9), x.T @ x)  # by bincount: 81 <= 2 x codes
    monkeypatch.setattr(partials, "PAIRS_PER_STEP", 1)  # a step per history: fewer codes than n², counted by sorting
    np.testing.assert_array_equal(partials.co_counts(iter(histories), 9), x.T @ x)
    assert not partials.co_counts(iter([]), 3).any()


def test_summed_adds_partials_sent_in_pieces_in_their_own_dtype(spark, monkeypatch):
    monkeypatch.setattr(partials, "CHUNK", 4)  # 10 elements: three pieces each
    frame = spark.createDataFrame([(n,) for n in range(6)], "n int").repartition(3)

    def partial(batches):
        rows = [int(v) for batch in batches for v in batch["n"]]
        return [np.full(10, sum(rows), dtype=np.int32), np.arange(10) * len(rows) * 0.5] if rows else None

    ints, floats = partials.summed(frame, partial, 2)
    np.testing.assert_array_equal(ints, np.full(10, 15.0))
    np.testing.assert_array_equal(floats, np.arange(10) * 3.0)


def test_summed_refuses_a_frame_with_no_row(spark):
    frame = spark.createDataFrame([], "items array<int>")
    with pytest.raises(ValueError, match="no partition holds a row"):
        partials.summed(frame, lambda batches: None, 1)
