"""similar-users: exact mode against numpy brute force, approximate recall on planted clusters, guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.sources.synthetic import clustered_vectors
from jobs import similar_users


def write_users(spark, cfg, df):
    delta.overwrite(df.select("user_id", "embedding"), delta.table_ref(cfg.tables, "user_embeddings"))


def neighbors(spark, cfg):
    return delta.read_table(spark, delta.table_ref(cfg.tables, "user_neighbors")).where(F.col("run_id") == cfg.run_id)


def argv(cfg, *overrides):
    return [a for o in [f"tables.root={cfg.tables.root}", *overrides] for a in ("--set", o)] + ["--run-id", cfg.run_id]


def brute_force(rows, k):
    ids = np.array([r["user_id"] for r in rows])
    vecs = np.array([r["embedding"] for r in rows], dtype=np.float32)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    out = []
    for i, uid in enumerate(ids):
        order = sorted(range(len(ids)), key=lambda j: (-sims[i, j], ids[j]))[:k]
        out += [(uid, str(ids[j]), rank + 1, float(sims[i, j])) for rank, j in enumerate(order)]
    return out


@pytest.mark.parametrize("mode", ["neighbors.mode=exact", "neighbors.exact_below=60"])
def test_exact_search_equals_numpy_brute_force_and_measures_no_recall(spark, make_config, mode):
    """Exact mode, and approx mode on a set no larger than `neighbors.exact_below` (the exact path automatically)."""
    cfg = make_config()
    users = clustered_vectors(spark, 60, 16, 4, 0.5, seed=3)
    write_users(spark, cfg, users)
    # block_size 16 forces several blocks on each side.
    metrics = similar_users.main(argv(cfg, mode, "neighbors.k=5", "block_size=16"))
    assert metrics["underfilled_users"] == 0 and metrics["exact"] == 1.0
    expected = spark.createDataFrame(
        brute_force(users.collect(), 5), "user_id string, neighbor_id string, rank int, similarity double"
    )
    got = neighbors(spark, cfg).select("user_id", "neighbor_id", "rank", F.col("similarity").cast("double"))
    assert_approx_df_equality(got, expected, 1e-5, ignore_row_order=True, ignore_nullable=True)
    # Exact search is its own reference: a recall of 1.0 would be a measurement never made.
    assert not [m for m in metrics if m.startswith("recall_at_")]
    written = delta.read_table(spark, delta.table_ref(cfg.tables, "run_metrics")).where(
        (F.col("run_id") == cfg.run_id) & (F.col("stage") == "similar_users")
    )
    assert written.where(F.col("metric").startswith("recall_at_")).count() == 0
    assert written.where("metric = 'users'").first()["value"] == 60


def test_approximate_recall_on_planted_clusters_and_guarantees(spark, make_config):
    cfg = make_config()
    write_users(spark, cfg, clustered_vectors(spark, 3000, 32, 30, 0.6, seed=7))
    overrides = ["neighbors.k=10", "neighbors.cells=40", "neighbors.nprobe=6", "neighbors.max_cell_size=50",
                 "neighbors.recall_sample=300", "neighbors.exact_below=2999"]  # fmt: skip
    metrics = similar_users.main(argv(cfg, *overrides))
    assert metrics["recall_at_10"] >= 0.95 and metrics["exact"] == 0.0
    assert metrics["underfilled_users"] == 0
    got = neighbors(spark, cfg)
    per_user = got.groupBy("user_id").agg(F.count("*").alias("n"), F.countDistinct("neighbor_id").alias("d"))
    assert per_user.count() == 3000
    assert per_user.where("n != 10 or d != 10").count() == 0
    assert got.where("user_id = neighbor_id").count() == 0
    assert (
        got.groupBy("user_id").agg(F.collect_list("rank").alias("r")).where("array_sort(r) != sequence(1, 10)").count()
        == 0
    )

    # Same input and seed, another run id: the same neighbours.
    again = make_config(run_id="second")
    similar_users.main(argv(again, *overrides)[:-1] + ["second"])
    assert_df_equality(neighbors(spark, again).drop("run_id"), got.drop("run_id"), ignore_row_order=True)
    # Re-running the first run id replaces its rows instead of adding to them.
    similar_users.main(argv(cfg, *overrides))
    assert neighbors(spark, cfg).count() == 30_000


def test_bad_vectors_are_rejected_with_a_reason_and_tiny_n_is_filled(spark, make_config):
    cfg = make_config()
    rows = [
        ("a", [1.0, 0.0, 0.0]),
        ("b", [0.8, 0.6, 0.0]),
        ("c", [0.0, 1.0, 0.0]),
        ("zero", [0.0, 0.0, 0.0]),
        ("nan", [float("nan"), 1.0, 0.0]),
        ("short", [1.0, 0.0]),
        ("none", None),
    ]
    write_users(spark, cfg, spark.createDataFrame(rows, "user_id string, embedding array<float>"))
    # "ghost" has behaviours but no vector row: embed-users found none of its items with a vector.
    pairs = [("a", "x"), ("ghost", "gone"), ("ghost", "lost")]
    behaviors = spark.createDataFrame(pairs, "user_id string, item_id string")
    delta.overwrite(behaviors, delta.table_ref(cfg.tables, "behaviors"))
    metrics = similar_users.main(argv(cfg, "neighbors.k=5"))
    assert (metrics["users"], metrics["rejected_users"], metrics["underfilled_users"]) == (3, 5, 0)
    got = {(r["user_id"], r["rank"]): r["neighbor_id"] for r in neighbors(spark, cfg).collect()}
    assert got == {("a", 1): "b", ("a", 2): "c", ("b", 1): "a", ("b", 2): "c", ("c", 1): "b", ("c", 2): "a"}
    rejects = delta.read_table(spark, delta.table_ref(cfg.tables, "neighbor_rejects"))
    assert {r["user_id"]: r["reason"] for r in rejects.collect()} == {
        "zero": "zero_embedding", "nan": "non_finite_embedding", "short": "wrong_dimension",
        "none": "missing_embedding", "ghost": "no_vector",
    }  # fmt: skip


@pytest.mark.parametrize("k", [1, 3])
def test_block_kernel_never_returns_self(k):
    import pandas as pd

    from udfs.topk import block_topk

    frame = pd.DataFrame({"id": ["b", "a", "c"], "embedding": [np.array([1.0, 0.0], np.float32)] * 3})
    out = block_topk(frame, frame, k)
    assert (out["id"] != out["neighbor_id"]).all() and len(out) == 3 * min(k, 2)
