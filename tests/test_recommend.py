"""recommend on a hand-made catalogue whose geometry fixes the answers: seen items, cold users, cold items, K."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.content import content_scores, content_with_room
from behaviorlm.embedding import EmbeddingSpaceError
from behaviorlm.errors import TableNotFoundError
from behaviorlm.schemas import BEHAVIORS, ITEMS
from behaviorlm.scoring import PARTS, Inputs, Strength, candidates, count_of, repower
from behaviorlm.vectors import l2_normalize
from jobs import recommend
from tests.util import job_args, read, write
from udfs.topk import block_scores, closest_rows

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
# Tests of the neighbour part's votes and reasons leave the item-item part out: with it, EASE's scores (reasoned
# "because you chose ...", tested in tests/test_item_model.py) would take the `source` of the same items.
NO_ITEMS = "recommend.weights={neighbors: 1, content: 0.1, popularity: 0.1}"
# Every user here has at most 3 items: the thin-history blend (tests/test_coldstart.py) would take them all.
ONE_BLEND = "recommend.thin.max_history=0"
# u4 has no history: it comes only from the requested-users table. u1 is listed there too, padded, and two rows name
# nobody: they are read as ingest reads ids (a blank one was served as a user of its own).
REQUESTED = [("u4",), (" u1 ",), (None,), ("  ",)]


NEIGHBOR_SCHEMA = "user_id string, neighbor_id string, rank int, similarity float, run_id string"


def write_inputs(spark, cfg, ratings, item_vectors, user_vectors, neighbors) -> None:
    """The tables recommend reads: rated behaviours, titled items, item and user vectors, neighbours of cfg's run."""
    behaviors = [(u, i, "rating", r, T0 + dt.timedelta(days=n), None) for n, (u, i, r) in enumerate(ratings)]
    write(spark, cfg, "behaviors", behaviors, BEHAVIORS)
    write(spark, cfg, "items", [(i, f"Title {i}", None, None, None) for i in item_vectors], ITEMS)
    write(spark, cfg, "item_embeddings", list(item_vectors.items()), "item_id string, embedding array<float>")
    write(spark, cfg, "user_embeddings", list(user_vectors.items()), "user_id string, embedding array<float>")
    write(spark, cfg, "user_neighbors", [(*r, cfg.run_id) for r in neighbors], NEIGHBOR_SCHEMA)


@pytest.fixture
def catalogue(spark, make_config, tmp_path):
    cfg = make_config()
    write_inputs(spark, cfg, RATINGS, ITEM_VECTORS, USER_VECTORS, NEIGHBORS)
    requested = str(tmp_path / "requested_users")
    spark.createDataFrame(REQUESTED, "user_id string").write.format("delta").save(requested)
    return cfg, ["embed.center_items=false", "recommend.k=3", f"recommend.users={requested}", ONE_BLEND]


def recs(spark, cfg, run_id=None):
    return read(spark, cfg, "recommendations").where(F.col("run_id") == (run_id or cfg.run_id))


def test_guarantees_cold_user_and_cold_item(spark, catalogue):
    cfg, base = catalogue
    metrics = recommend.main(job_args(cfg, *base, "recommend.weights={neighbors: 1, content: 1, popularity: 0.1}"))
    got = recs(spark, cfg)
    assert metrics["users"] == 4 and metrics["users_short"] == 0
    # What the run's metrics tell of the text's work: one item nobody touched (i6) reached a list, one user came
    # with no history (u4), and nobody was served by the thin blend (off here).
    assert (metrics["items_without_history"], metrics["users_without_history"], metrics["users_thin"]) == (1, 1, 0)
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


def test_summary_counts_thin_users_as_the_thin_blend_sees_them(spark):
    behaviors = [(u, i, "rating", r, T0 + dt.timedelta(days=n), None) for n, (u, i, r) in enumerate(RATINGS)]
    none = spark.createDataFrame([], "item_id string, embedding array<float>")
    inp = Inputs(
        behaviors=spark.createDataFrame(behaviors + [behaviors[0]], BEHAVIORS),  # u1's i1 twice: still 2 items
        items=spark.createDataFrame([], "item_id string, title string"),
        item_vectors=none,
        user_vectors=none.withColumnRenamed("item_id", "user_id"),
        neighbors=spark.createDataFrame([], "user_id string, neighbor_id string, similarity double"),
        users=spark.createDataFrame([("u1",), ("u2",), ("u3",), ("u4",)], "user_id string"),
    )
    table = spark.createDataFrame([("u4", "i1", "popularity"), ("u1", "i6", "content"), ("u1", "i7", "content")],
                                  "user_id string, item_id string, source string")  # fmt: skip
    got = recommend.summary(table, inp, 1, 2)
    assert (got["items_without_history"], got["users_without_history"], got["users_thin"]) == (2, 1, 1)
    assert recommend.summary(table, inp, 1, 3)["users_thin"] == 3
    assert got["share_content"] == pytest.approx(2 / 3) and got["users_short"] == 2


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
    one = content_scores(users_df, items_df, wanted, 2, 100)
    many = content_scores(users_df, items_df, wanted, 2, 2)  # 5 item blocks x 3 user blocks
    assert_approx_df_equality(many, one, 1e-6, ignore_row_order=True, ignore_nullable=True)
    expected = {("u0", "i8"), ("u3", "i1")}
    for uid, u in users:
        sims = sorted(((float(np.dot(u, v)), i) for i, v in vectors), reverse=True)
        expected |= {(uid, i) for _, i in sims[:2]}
    assert {(r["user_id"], r["item_id"]) for r in one.collect()} == expected


def test_a_user_who_saw_its_closest_items_still_gets_unseen_ones(spark):
    """A bot that had seen 300 of 400 items got 1 recommendation: its 100 closest items, all seen, were the content
    part's whole list. Its list is lengthened by what it has seen; a light user's is left as it was."""
    angles = [(f"i{j:02d}", [float(np.cos(j / 50)), float(np.sin(j / 50))]) for j in range(30)]
    items = spark.createDataFrame(angles, "item_id string, embedding array<float>")
    users = spark.createDataFrame(
        [("bot", [1.0, 0.0]), ("light", [1.0, 0.0])], "user_id string, embedding array<float>"
    )
    seen = spark.createDataFrame(
        [("bot", f"i{j:02d}") for j in range(20)] + [("light", "i00")], "user_id string, item_id string"
    )
    none = seen.limit(0)
    counts = seen.groupBy("user_id").agg(F.count("*").alias("n_seen"))
    got = content_with_room(users, items, none, seen, counts, 5, 3, 100).collect()
    bot_unseen = sorted(r["item_id"] for r in got if r["user_id"] == "bot" and r["item_id"] >= "i20")
    assert bot_unseen[:3] == ["i20", "i21", "i22"]
    assert sorted(r["item_id"] for r in got if r["user_id"] == "light") == ["i00", "i01", "i02", "i03", "i04"]


def test_missing_requested_users_table_or_stale_user_vectors_are_clear_errors(spark, catalogue, tmp_path):
    cfg, base = catalogue
    with pytest.raises(TableNotFoundError, match="no_such_table"):
        recommend.main(job_args(cfg, *base[:2], f"recommend.users={tmp_path / 'no_such_table'}"))
    # User vectors of another encoder's length (embed-items rerun with another backend, embed-users not).
    write(spark, cfg, "user_embeddings", [("u1", [0.1] * 5)], "user_id string, embedding array<float>")
    with pytest.raises(EmbeddingSpaceError, match="user_embeddings hold 5-d vectors but item_embeddings 4-d"):
        recommend.main(job_args(cfg, *base))


def test_zero_or_nan_user_vector_proposes_nothing_and_never_scores_nan(spark, catalogue):
    cfg, base = catalogue
    # u1's stored vector is all zeros, u3's holds a NaN: neither is a direction, so neither may propose or score
    # content (NaN cosines would sort above every number; filled as 0 they would still push the cold i6 into u3's
    # list for no reason). Both keep their neighbour and popular items; u3 has nothing else left to get.
    vectors = {**USER_VECTORS, "u1": [0.0, 0.0, 0.0, 0.0], "u3": [float("nan"), 1.0, 0.0, 0.0]}
    write(spark, cfg, "user_embeddings", list(vectors.items()), "user_id string, embedding array<float>")
    recommend.main(job_args(cfg, *base, "recommend.weights={neighbors: 1, content: 1, popularity: 0.1}"))
    got = recs(spark, cfg)
    assert got.where(F.isnan("score") | F.col("score").isNull()).count() == 0
    lists = {
        r["user_id"]: [(i, s) for _, i, s in sorted(r["recs"])]
        for r in got.where(F.col("user_id").isin("u1", "u3"))
        .groupBy("user_id")
        .agg(F.collect_list(F.struct("rank", "item_id", "source")).alias("recs"))
        .collect()
    }
    assert lists == {
        "u1": [("i2", "neighbors"), ("i5", "neighbors"), ("i4", "neighbors")],
        "u3": [("i2", "neighbors"), ("i5", "neighbors")],
    }
    # The normaliser the stages share keeps a zero vector zero instead of dividing by its zero norm.
    zero = spark.createDataFrame([([0.0, 0.0],)], "v array<float>").select(l2_normalize(F.col("v")).alias("v"))
    assert zero.first()["v"] == [0.0, 0.0]


def test_neighbours_that_cancel_out_leave_other_parts(spark, make_config):
    """Three users; u3's neighbours point away from it (similarity <= 0), so every vote it gets is 0: its best CF item
    would be divided by 0 (an error under ANSI) rather than leaving u3 to content and popularity."""
    cfg = make_config()
    items = {"i1": unit(1, 0, 0), "i2": unit(0, 1, 0), "i3": unit(0, 0, 1), "i4": unit(-1, 0.2, 0)}
    users = {"u1": unit(1, 0.1, 0), "u2": unit(1, 0, 0.1), "u3": unit(-1, 0, 0)}
    ratings = [("u1", "i1", 5.0), ("u1", "i2", 4.0), ("u2", "i1", 5.0), ("u2", "i3", 4.0), ("u3", "i4", 5.0),
               ("u3", "i2", 3.0)]  # fmt: skip
    nbrs = [("u1", "u2", 1, 0.99), ("u1", "u3", 2, -0.99), ("u2", "u1", 1, 0.99), ("u2", "u3", 2, -0.99),
            ("u3", "u1", 1, -0.99), ("u3", "u2", 2, -0.99)]  # fmt: skip
    write_inputs(spark, cfg, ratings, items, users, nbrs)
    metrics = recommend.main(job_args(cfg, "embed.center_items=false", "recommend.k=2", NO_ITEMS, ONE_BLEND))
    assert metrics["users_short"] == 0
    got = {(r["user_id"], r["item_id"]): r["source"] for r in recs(spark, cfg).collect()}
    assert {i for (u, i) in got if u == "u3"} == {"i1", "i3"}
    assert all(s != "neighbors" for (u, _), s in got.items() if u == "u3")
    assert got[("u1", "i3")] == "neighbors"  # the other users' CF is untouched


def test_reasons_count_real_neighbours_and_name_nobody_on_a_tie(spark, make_config):
    """a has two neighbours (not neighbors.k = 50) who vote identically for i3, which is as close to a's i1 as to
    a's i2: the reason says "2 of your 2" and names neither the voter nor the history item. i5 is like neither."""
    cfg = make_config()
    items = {"i1": unit(1, 0, 0, 0), "i2": unit(0, 1, 0, 0), "i3": unit(1, 1, 0, 0), "i4": unit(0.3, 0, 1, 0),
             "i5": unit(-0.1, 0, 0, 1)}  # fmt: skip
    users = {"a": unit(1, 1, 0, 0), "b": unit(1, 1, 1, 0), "c": unit(1, 1, 0, 1)}
    ratings = [("a", "i1", 5.0), ("a", "i2", 5.0), ("b", "i3", 5.0), ("b", "i4", 3.0), ("c", "i3", 5.0),
               ("c", "i5", 3.0)]  # fmt: skip
    nbrs = [("a", "b", 1, 0.7), ("a", "c", 2, 0.7), ("b", "a", 1, 0.7), ("b", "c", 2, 0.5), ("c", "a", 1, 0.7),
            ("c", "b", 2, 0.5)]  # fmt: skip
    write_inputs(spark, cfg, ratings, items, users, nbrs)
    weights = "recommend.weights={neighbors: 1, content: 0, popularity: 0.1}"
    recommend.main(job_args(cfg, "embed.center_items=false", "recommend.k=3", weights, ONE_BLEND))
    got = {r["item_id"]: r["reason"] for r in recs(spark, cfg).where("user_id = 'a'").collect()}
    assert got == {
        "i3": "2 of your 2 nearest users chose it",
        "i4": "1 of your 2 nearest users chose it (strongest vote: user b); close to Title i1 from your history "
        "(cosine 0.29)",
        # Its closest history item, i2, is at cosine 0: unrelated, so not named (it was).
        "i5": "1 of your 2 nearest users chose it (strongest vote: user c)",
    }


def test_closest_rows_names_no_history_entry_on_a_tie():
    def frame(ids, vectors, key):
        return pd.DataFrame({"user_id": "a", key: ids, "embedding": [np.asarray(v, np.float32) for v in vectors]})

    history = frame(["x", "y"], [unit(1, 0), unit(0, 1)], "label")
    targets = frame(["tie", "near_x", "near_y"], [unit(1, 1), unit(1, 0.2), unit(0.1, 1)], "item_id")
    out = closest_rows(targets, history)
    assert dict(zip(out["item_id"], out["label"], strict=True)) == {"tie": None, "near_x": "x", "near_y": "y"}
    assert np.allclose(out["similarity"], [np.sqrt(0.5), unit(1, 0.2)[0], unit(0.1, 1)[1]])
    one = closest_rows(targets, history.iloc[:1])  # a single history entry is never a tie
    assert list(one["label"]) == ["x", "x", "x"]
    assert list(closest_rows(targets.iloc[:0], history).columns) == ["user_id", "item_id", "label", "similarity"]


def test_run_without_neighbours_reads_the_run_written_last_and_quoted_ids_replace(spark, catalogue):
    cfg, base = catalogue
    ref = delta.table_ref(cfg.tables, "user_neighbors")
    # "b-first" is written first but sorts last: the run written last ("a-second") is the one to read.
    write(spark, cfg, "user_neighbors", [("u1", "u3", 1, 0.6, "b-first")], NEIGHBOR_SCHEMA)
    second = spark.createDataFrame(
        [("u1", "u2", 1, 0.8)], "user_id string, neighbor_id string, rank int, similarity float"
    )
    delta.replace_run(second, ref, "a-second")
    # u2 also chose i9, which the catalogue lacks (kept by ingest's `unknown_items: keep`): never proposed.
    ghost = ("u2", "i9", "rating", 5.0, T0, None)
    write(spark, cfg, "behaviors", [*map(tuple, read(spark, cfg, "behaviors").collect()), ghost], BEHAVIORS)
    quoted = "o'brien-run"
    argv = job_args(cfg, *base, NO_ITEMS)[:-1] + [quoted]
    recommend.main(argv)
    recommend.main(argv)  # a re-run replaces its rows: the quote must not end the replaceWhere literal
    got = recs(spark, cfg, quoted)
    assert got.count() == 12 and got.select("user_id", "item_id").distinct().count() == 12
    votes = {r["item_id"]: r["reason"] for r in got.where("user_id = 'u1' and source = 'neighbors'").collect()}
    assert set(votes) == {"i2", "i5"} and got.where("item_id = 'i9'").count() == 0  # u2's items, not u3's i4
    assert all(v.startswith("1 of your 1 nearest user chose it (strongest vote: user u2)") for v in votes.values())


def test_repower_equals_candidates_built_at_that_power(spark):
    # The validation grid builds the candidates once and only recomputes the neighbours part for another power.
    behaviors = [(u, i, "rating", r, T0 + dt.timedelta(days=n), None) for n, (u, i, r) in enumerate(RATINGS)]
    vectors = "item_id string, embedding array<double>"
    inp = Inputs(
        behaviors=spark.createDataFrame(behaviors, BEHAVIORS),
        items=spark.createDataFrame([(i, f"Title {i}") for i in ITEM_VECTORS], "item_id string, title string"),
        item_vectors=spark.createDataFrame(list(ITEM_VECTORS.items()), vectors),
        user_vectors=spark.createDataFrame(list(USER_VECTORS.items()), vectors.replace("item_id", "user_id")),
        neighbors=spark.createDataFrame([r[:2] + r[3:] for r in NEIGHBORS], "user_id string, neighbor_id string, "
                                        "similarity double"),
        users=spark.createDataFrame([(u,) for u in USER_VECTORS], "user_id string"),
    )  # fmt: skip
    strength = Strength({"rating": 1.0})
    columns = ["user_id", "item_id", *PARTS]
    at_four = candidates(inp, strength, 4.0, 3).select(columns).orderBy("user_id", "item_id")
    repowered = repower(candidates(inp, strength, 2.0, 3), inp, strength, 4.0).select(columns)
    assert_approx_df_equality(repowered.orderBy("user_id", "item_id"), at_four, 1e-12)
    assert at_four.where(F.col("neighbors").between(0.01, 0.99)).count() > 0  # power matters to some scores here


def test_a_count_in_a_reason_is_singular_for_one(spark):
    """Reasons read "popular: 1 user interacted with it", never "1 users"."""
    counts = spark.createDataFrame([(0,), (1,), (2,)], "n int").orderBy("n")
    assert [r[0] for r in counts.select(count_of(F.col("n"), "user")).collect()] == ["0 users", "1 user", "2 users"]
