"""recommend on a hand-made catalogue whose geometry fixes the answers: seen items, cold users, cold items, K."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.errors import TableNotFoundError
from behaviorlm.schemas import BEHAVIORS, ITEMS
from behaviorlm.scoring import content_scores
from jobs import recommend
from tests.util import job_args, read, write
from udfs.topk import block_scores

T0 = dt.datetime(2024, 1, 1)


def unit(*v: float) -> list[float]:
    a = np.array(v, dtype=np.float64)
    return (a / np.linalg.norm(a)).tolist()


# i6 is a cold item (nobody touched it) pointing where u1's taste vector points.
ITEM_VECTORS = {"i1": unit(1, 0, 0, 0), "i2": unit(0.9, 0.1, 0, 0), "i3": unit(0, 1, 0, 0),
                "i4": unit(0, 0.9, 0.1, 0), "i5": unit(0, 0, 1, 0), "i6": unit(0, 0, 0, 1)}  # fmt: skip
USER_VECTORS = {"u1": unit(0.2, 0, 0, 0.98), "u2": unit(1, 0, 0, 0), "u3": unit(0, 1, 0, 0)}
RATINGS = [("u1", "i1", 5.0), ("u1", "i3", 4.0), ("u2", "i1", 5.0), ("u2", "i2", 4.0), ("u2", "i5", 3.0),
           ("u3", "i3", 5.0), ("u3", "i4", 4.0), ("u3", "i1", 2.0)]  # fmt: skip
NEIGHBORS = [("u1", "u2", 1, 0.8), ("u1", "u3", 2, 0.6), ("u2", "u1", 1, 0.8), ("u2", "u3", 2, 0.1),
             ("u3", "u1", 1, 0.6), ("u3", "u2", 2, 0.1)]  # fmt: skip
# u4 has no history: it comes only from the requested-users table (u1 is listed there too, once more).
REQUESTED = [("u4",), ("u1",)]


@pytest.fixture
def catalogue(spark, make_config, tmp_path):
    cfg = make_config()
    behaviors = [(u, i, "rating", r, T0 + dt.timedelta(days=n), None) for n, (u, i, r) in enumerate(RATINGS)]
    write(spark, cfg, "behaviors", behaviors, BEHAVIORS)
    write(spark, cfg, "items", [(i, f"Title {i}", None, None, None) for i in ITEM_VECTORS], ITEMS)
    write(spark, cfg, "item_embeddings", list(ITEM_VECTORS.items()), "item_id string, embedding array<float>")
    write(spark, cfg, "user_embeddings", list(USER_VECTORS.items()), "user_id string, embedding array<float>")
    rows = [(*r, cfg.run_id) for r in NEIGHBORS]
    write(
        spark,
        cfg,
        "user_neighbors",
        rows,
        "user_id string, neighbor_id string, rank int, similarity float, run_id string",
    )
    requested = str(tmp_path / "requested_users")
    spark.createDataFrame(REQUESTED, "user_id string").write.format("delta").save(requested)
    return cfg, ["embed.center_items=false", "recommend.k=3", f"recommend.users={requested}"]


def recs(spark, cfg, run_id=None):
    return read(spark, cfg, "recommendations").where(F.col("run_id") == (run_id or cfg.run_id))


def test_guarantees_cold_user_and_cold_item(spark, catalogue):
    cfg, base = catalogue
    metrics = recommend.main(job_args(cfg, *base, "recommend.weights={neighbors: 1, content: 1, popularity: 0.1}"))
    got = recs(spark, cfg)
    assert metrics["users"] == 4 and metrics["users_short"] == 0
    # Every user gets K; seen items are never recommended.
    assert {r["user_id"]: r["count"] for r in got.groupBy("user_id").count().collect()} == dict.fromkeys(
        ["u1", "u2", "u3", "u4"], 3
    )
    assert got.join(read(spark, cfg, "behaviors"), ["user_id", "item_id"]).count() == 0
    # The cold user gets the most popular items (by users who interacted; ties by item id), from popularity.
    cold = got.where("user_id = 'u4'").orderBy("rank").select("item_id", "source").collect()
    assert [(r["item_id"], r["source"]) for r in cold] == [("i1", "popularity"), ("i3", "popularity"),
                                                           ("i2", "popularity")]  # fmt: skip
    # The cold item i6 reaches u1 through content; u1's best neighbour item i2 stays first.
    u1 = {r["item_id"]: (r["rank"], r["source"], r["reason"]) for r in got.where("user_id = 'u1'").collect()}
    assert u1["i2"][:2] == (1, "neighbors") and "1 of your" in u1["i2"][2]
    assert u1["i6"][1] == "content" and "cosine 0.98" in u1["i6"][2]


def test_rerun_is_idempotent_and_deterministic(spark, catalogue):
    cfg, base = catalogue
    recommend.main(job_args(cfg, *base))
    first = recs(spark, cfg).drop("run_id")
    recommend.main(job_args(cfg, *base))  # same run id: replaced, not appended
    assert recs(spark, cfg).count() == first.count() == 12
    other = cfg.run_id + "-again"
    recommend.main(job_args(cfg, *base)[:-1] + [other])  # another run id reads the latest neighbours
    assert_df_equality(recs(spark, cfg, other).drop("run_id"), first, ignore_row_order=True)


def test_block_scores_kernel_matches_numpy():
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)
    ids = [f"i{j:02d}" for j in range(20)]
    queries = pd.DataFrame({"user_id": [f"u{j}" for j in range(5)], "embedding": list(q),
                            "wanted": [["i03", "i19", "nope"], None, [], ["i00"], ["i07"]]})  # fmt: skip
    items = pd.DataFrame({"item_id": ids[::-1], "embedding": list(c[::-1])})  # delivered in another order
    out = block_scores(queries, items, 2, "cpu")
    sims = q @ c.T
    for u in range(5):
        rows = out[out.user_id == f"u{u}"].set_index("item_id")
        best = {ids[j] for j in np.argsort(-sims[u])[:2]}
        assert set(rows.index[rows.top]) == best
        for item, row in rows.iterrows():
            assert row.content == pytest.approx(sims[u, ids.index(item)], rel=1e-5)
    assert set(out[out.user_id == "u0"].query("wanted").item_id) == {"i03", "i19"}


def test_content_scores_are_blocked_over_items_and_users(spark):
    vectors = [(f"i{j}", unit(*np.random.default_rng(j).normal(size=4))) for j in range(9)]
    users = [(f"u{j}", unit(*np.random.default_rng(100 + j).normal(size=4))) for j in range(5)]
    items_df = spark.createDataFrame(vectors, "item_id string, embedding array<float>")
    users_df = spark.createDataFrame(users, "user_id string, embedding array<float>")
    wanted = spark.createDataFrame([("u0", "i8"), ("u3", "i1")], "user_id string, item_id string")
    one = recommend.content_scores(users_df, items_df, wanted, 2, 100)
    many = recommend.content_scores(users_df, items_df, wanted, 2, 2)  # 5 item blocks x 3 user blocks
    assert_approx_df_equality(many, one, 1e-6, ignore_row_order=True, ignore_nullable=True)
    expected = {("u0", "i8"), ("u3", "i1")}
    for uid, u in users:
        sims = sorted(((float(np.dot(u, v)), i) for i, v in vectors), reverse=True)
        expected |= {(uid, i) for _, i in sims[:2]}
    assert {(r["user_id"], r["item_id"]) for r in one.collect()} == expected


def test_missing_requested_users_table_is_a_clear_error(spark, catalogue, tmp_path):
    cfg, base = catalogue
    with pytest.raises(TableNotFoundError, match="no_such_table"):
        recommend.main(job_args(cfg, *base[:2], f"recommend.users={tmp_path / 'no_such_table'}"))
