"""search on a handful of real titles embedded by the real MiniLM model: plain and personal queries, blank, emoji and
10,000-character queries, unknown users, the audience, re-runs, a missing column and a missing queries table."""

from __future__ import annotations

import datetime as dt
import math
import os
import re

import pytest
from pyspark.sql import functions as F

from behaviorlm import search as search_lib
from behaviorlm.assets import model_dir
from behaviorlm.embedding import EmbedConcat, EmbeddingSpaceError, make_embed_fn
from behaviorlm.errors import InputContractError, TableNotFoundError
from behaviorlm.neighbors import exact_top_k
from behaviorlm.schemas import BEHAVIORS, ITEMS
from behaviorlm.search import EMPTY_QUERY, UNREADABLE, match_reason, one_per_id, top_items
from behaviorlm.text import item_texts
from behaviorlm.vectors import center
from jobs import search
from tests.util import assert_same_rows, job_args, read, write
from udfs import multilingual

ITEMS_ROWS = [
    ("i1", "Toy Story", None, ["Animation", "Children's", "Comedy"], 1995),
    ("i2", "Saving Private Ryan", None, ["Action", "Drama", "War"], 1998),
    ("i3", "The Lion King", None, ["Animation", "Children's", "Musical"], 1994),
    ("i4", "Alien", None, ["Horror", "Sci-Fi"], 1979),
    ("i5", "Casablanca", None, ["Drama", "Romance", "War"], 1942),
    ("i6", "Apocalypse Now", None, ["Drama", "War"], 1979),
]
QUERIES = [
    ("q1", "a war movie", None),
    ("q1", "the second row of id q1: never searched", None),
    ("q2", "a funny animated film for kids", "u1"),
    ("q3", " \t\u200b ", "u1"),
    ("q4", "a war 喜剧 ?!", None),  # MiniLM reads "a war", not 喜剧: 4 of 6 characters, under BASE's 0.7
    ("q5", "war " * 2500, None),
    ("q6", "a war movie", "ghost"),
    (None, "a query without an id", None),
]
SCHEMA = "query_id string, text string, user_id string"
BASE = ["search.k=3", "search.audience_k=2", "search.personal_weight=0.3", "model.min_readable_share=0.7"]


@pytest.fixture(scope="module")
def vectors(spark):
    """(embed function, raw item vectors with the model id): encoded once for the module."""
    embed = make_embed_fn(spark, str(model_dir()))
    texts = item_texts(spark.createDataFrame(ITEMS_ROWS, ITEMS), ["{title}", "({year})", "Genres: {genres}."], "")
    rows = texts.select("item_id", embed(F.col("text")).alias("embedding")).collect()
    return embed, [(r["item_id"], r["embedding"], embed.model) for r in rows]


@pytest.fixture
def tables(spark, make_config, vectors):
    """Items, their vectors, u1 (liked Toy Story, so its vector is Toy Story's) and u2 (Alien), and the queries."""
    _, items = vectors
    cfg = make_config("model.backend=transformers")
    write(spark, cfg, "items", ITEMS_ROWS, ITEMS)
    item_df = write(spark, cfg, "item_embeddings", items, "item_id string, embedding array<float>, model string")
    centred = {r["item_id"]: r["embedding"] for r in center(item_df.select("item_id", "embedding")).collect()}
    users = [("u1", centred["i1"]), ("u2", centred["i4"])]
    write(spark, cfg, "user_embeddings", users, "user_id string, embedding array<float>")
    seen = [("u1", "i1", "rating", 5.0, dt.datetime(2024, 1, 1), None)]
    write(spark, cfg, "behaviors", seen, BEHAVIORS)
    write(spark, cfg, "queries", QUERIES, SCHEMA)
    return cfg


def results(spark, cfg, name="query_results"):
    return read(spark, cfg, name).where(F.col("run_id") == cfg.run_id).drop("run_id")


def ranked(frame, query_id):
    return [
        (r["item_id"], r["score"], r["reason"])
        for r in frame.where(F.col("query_id") == query_id).orderBy("rank").collect()
    ]


def test_plain_personal_blank_and_odd_queries_and_rerun(spark, connect, tables):
    cfg = tables
    metrics = search.main(job_args(cfg, *BASE))
    got = results(spark, cfg)
    assert metrics["queries"] == 6 and metrics["queries_blank"] == 1 and metrics["queries_personal"] == 3
    assert metrics["queries_unreadable"] == 1
    assert metrics["queries_duplicate_id"] == 1 and metrics["queries_without_id"] == 1
    # War films first for the war query; the duplicate id's text was never searched.
    war = ranked(got, "q1")
    assert {war[0][0], war[1][0]} <= {"i2", "i5", "i6"} and len(war) == 3
    assert all(re.fullmatch(r"matches your query \(cosine \d\.\d\d\)", reason) for _, _, reason in war)
    # u1 saw Toy Story: never returned to u1; the score is the stated blend of the two cosines in the reason.
    personal = ranked(got, "q2")
    assert "i1" not in [i for i, _, _ in personal] and personal[0][0] == "i3"
    assert "close to what you liked" in personal[0][2]
    for _, score, reason in personal:
        # The liked part is said only where that cosine is positive; without it the score is at most 0.7 q.
        q, u = re.fullmatch(r"(?:matches|only a weak match for) your query \(cosine (-?[\d.]+)\)"
                            r"(?:; close to what you liked \(cosine (-?[\d.]+)\))?", reason).groups()  # fmt: skip
        if u is None:
            assert score <= 0.7 * float(q) + 0.01
        else:
            assert score == pytest.approx(0.7 * float(q) + 0.3 * float(u), abs=0.01)
    # A blank query (whitespace and a zero-width space) is one row without an item.
    assert [(r["item_id"], r["rank"], r["reason"]) for r in got.where("query_id = 'q3'").collect()] == [
        (None, None, EMPTY_QUERY)
    ]
    # Known words in a script the vocabulary lacks: too little read, nothing arbitrary returned.
    assert ranked(got, "q4") == [(None, None, UNREADABLE)]
    # 10,000 characters are a query like any other.
    assert len(ranked(got, "q5")) == 3
    # An unknown user: the plain results, nothing personal in the reason.
    unknown = ranked(got, "q6")
    assert [i for i, _, _ in unknown] == [i for i, _, _ in war]
    assert [s for _, s, _ in unknown] == pytest.approx([s for _, s, _ in war], abs=1e-5)
    assert all("liked" not in reason for _, _, reason in unknown)
    audience = results(spark, cfg, "query_audience")
    assert audience.groupBy("query_id").count().where("count = 2").count() == 4
    assert audience.where("query_id = 'q2' and rank = 1").first()["user_id"] == "u1"
    # The same run id again: the same rows, not twice as many.
    search.main(job_args(cfg, *BASE))
    assert_same_rows(results(spark, cfg), got)
    assert_same_rows(results(spark, cfg, "query_audience"), audience)
    with connect():  # as a Spark Connect client: the same rows
        search.main(job_args(cfg, *BASE))
    assert_same_rows(results(spark, cfg), got)
    assert_same_rows(results(spark, cfg, "query_audience"), audience)


def test_missing_column_names_table_and_column(spark, tables):
    cfg = tables
    write(spark, cfg, "queries", [("q1", "a war movie")], "query_id string, question string")
    with pytest.raises(InputContractError, match=r"'queries'.*'text'"):
        search.main(job_args(cfg, *BASE))
    # An array of texts was searched as its text, "[a war movie, kids]".
    write(spark, cfg, "queries", [("q1", ["a war movie", "kids"])], "query_id string, text array<string>")
    with pytest.raises(InputContractError, match=r"'queries': column 'text' is array<string>"):
        search.main(job_args(cfg, *BASE))


def test_user_vectors_left_from_another_encoder_are_an_error_naming_the_stage_to_rerun(spark, tables):
    """embed-items rerun with another backend (384-d -> 512-d) left user_embeddings behind: a matrix product failed
    deep in a task. Now one error names both tables and embed-users, by model id or, with none stored, by length."""
    cfg = tables
    write(spark, cfg, "user_embeddings", [("u1", [0.1] * 512, "use-multilingual@x")],
          "user_id string, embedding array<float>, model string")  # fmt: skip
    with pytest.raises(EmbeddingSpaceError, match=r"user_embeddings hold vectors of model 'use-multilingual@x' but "
                       r"item_embeddings of 'all-MiniLM-L6-v2@.*: run embed-users again"):  # fmt: skip
        search.main(job_args(cfg, *BASE))
    write(spark, cfg, "user_embeddings", [("u1", [0.1] * 512)], "user_id string, embedding array<float>")
    with pytest.raises(EmbeddingSpaceError, match="user_embeddings hold 512-d vectors but item_embeddings 384-d"):
        search.main(job_args(cfg, *BASE))


def test_an_empty_queries_table_searches_nothing_without_a_traceback(spark, tables):
    cfg = tables
    write(spark, cfg, "queries", [], "query_id long, text string, user_id string")
    metrics = search.main(job_args(cfg, *BASE))
    assert metrics["queries"] == 0 and metrics["result_rows"] == 0


def test_query_and_user_ids_are_read_as_ingest_reads_ids(spark):
    """A float or padded user id still names its user ("123.0" matched nobody and the query was silently plain)."""
    raw = spark.createDataFrame([(1.0, "a", 123.0), (float("nan"), "b", None), (2.0, "c", 456.5)],
                                "query_id double, text string, user_id double")  # fmt: skip
    padded = spark.createDataFrame([(" q1 ", "a", " 456 ")], "query_id string, text string, user_id string")
    rows = one_per_id(raw, "query_id").unionByName(one_per_id(padded, "query_id")).collect()
    assert sorted((r["query_id"], r["user_id"], r["_n"]) for r in rows if r["query_id"]) == [
        ("1", "123", 1), ("2", "456.5", 1), ("q1", "456", 1)
    ]  # fmt: skip
    assert [(r["user_id"], r["_n"]) for r in rows if r["query_id"] is None] == [(None, None)]  # NaN: no id


def test_no_queries_table_writes_nothing_and_a_parquet_one_is_an_error(spark, make_config, tmp_path):
    cfg = make_config()
    assert search.main(job_args(cfg)) == {"queries": 0}
    assert not os.path.exists(f"{cfg.tables.root}/query_results")
    # Written as Parquet, not Delta: it used to be skipped as if absent.
    parquet = str(tmp_path / "queries_parquet")
    spark.createDataFrame([("p1", "科幻小说")], "query_id string, text string").write.parquet(parquet)
    with pytest.raises(TableNotFoundError, match=r"queries \(path .*queries_parquet\) is not a Delta table"):
        search.main(job_args(cfg, f"tables.queries={parquet}"))


def test_reasons_do_not_claim_a_match_or_a_liking_that_is_not_there(spark):
    cosines = spark.createDataFrame([(0.62, 0.41), (0.05, -0.2), (-0.01, None)], "q double, u double")
    got = [r[0] for r in cosines.select(match_reason(F.col("q"), F.col("u"))).collect()]
    assert got == ["matches your query (cosine 0.62); close to what you liked (cosine 0.41)",
                   "matches your query (cosine 0.05)",
                   "only a weak match for your query (cosine -0.01)"]  # fmt: skip


def test_notebook_api(spark, vectors):
    embed, items = vectors
    frame = spark.createDataFrame(items, "item_id string, embedding array<float>, model string")
    texts = ["a war movie", "", "🍿🎬!", "搞笑的喜剧", "war 喜剧"]
    got = top_items(spark, texts, k=2, items=frame, embed=embed, min_readable=0.6).collect()
    war = [r["item_id"] for r in got if r["query_id"] == "0"]
    assert len(war) == 2 and set(war) <= {"i2", "i5", "i6"}
    assert [(r["text"], r["item_id"], r["reason"]) for r in got if r["query_id"] in "123"] == [
        ("", None, EMPTY_QUERY), ("🍿🎬!", None, UNREADABLE), ("搞笑的喜剧", None, UNREADABLE)]  # fmt: skip
    # Mixed: MiniLM reads "war" and neither Chinese character, 3 of 5: at the floor is enough to search with.
    assert len([r for r in got if r["query_id"] == "4" and r["item_id"]]) == 2
    # Two encoders as one (intents' features): a text is readable when either part reads it.
    both = EmbedConcat([embed, make_embed_fn(spark, str(model_dir()), backend=multilingual.NAME)])
    texts = spark.createDataFrame([("🍿🎬!",), ("war, war",), ("war 喜剧",)], "t string")
    shares = texts.select(both.readable_share(F.col("t")).alias("s")).collect()
    assert [r["s"] for r in shares] == [0.0, 1.0, 1.0]


def test_a_heavy_user_lengthens_only_its_own_list(spark, monkeypatch):
    """Each query's list is k + the next power of two of its own user's seen count (not the heaviest user's): every
    query still gets k items, none of them seen by its user; a query without a user gets the plain top k."""
    unit = [(f"i{j:02d}", [math.cos(j / 50), math.sin(j / 50)]) for j in range(30)]  # farther from (1, 0) as j grows
    items = spark.createDataFrame(unit, "item_id string, embedding array<float>")
    pairs = [(u, f"i{j:02d}") for u, n in {"light": 1, "heavy": 20, "all": 30}.items() for j in range(n)]
    seen = spark.createDataFrame(pairs, "user_id string, item_id string")
    queries = spark.createDataFrame(
        [("q_light", [1.0, 0.0], "light"), ("q_heavy", [1.0, 0.0], "heavy"), ("q_none", [1.0, 0.0], None),
         ("q_all", [1.0, 0.0], "all")],
        "query_id string, embedding array<float>, user_id string",
    )  # fmt: skip
    lengths = []

    def recording(vectors, candidates, k, *args, **kwargs):
        lengths.append((sorted(r["query_id"] for r in vectors.collect()), k))
        return exact_top_k(vectors, candidates, k, *args, **kwargs)

    monkeypatch.setattr(search_lib, "exact_top_k", recording)
    got = search_lib.search_items(queries, items, k=3, seen=seen).collect()
    assert sorted(lengths) == [(["q_all", "q_heavy"], 3 + 32), (["q_light"], 3 + 1), (["q_none"], 3)]
    ranked_items = {q: [r["item_id"] for r in sorted(got, key=lambda r: r["rank"] or 0) if r["query_id"] == q]
                    for q in ("q_light", "q_heavy", "q_none")}  # fmt: skip
    assert ranked_items == {"q_none": ["i00", "i01", "i02"], "q_light": ["i01", "i02", "i03"],
                            "q_heavy": ["i20", "i21", "i22"]}  # fmt: skip
    # A user who saw every item gets one row that says so (it used to get no row at all).
    assert [(r["item_id"], r["reason"]) for r in got if r["query_id"] == "q_all"] == [(None, search_lib.ALL_SEEN)]
    monkeypatch.undo()
    # No items at all: a query without a user and one whose user saw nothing are not told they saw everything.
    fresh = queries.where("query_id = 'q_none'").unionByName(queries.where("query_id = 'q_all'").replace("all", "new"))
    nothing = search_lib.search_items(fresh, items.limit(0), k=3, seen=seen).collect()
    assert sorted((r["query_id"], r["item_id"], r["reason"]) for r in nothing) == [
        ("q_all", None, search_lib.NO_ITEMS), ("q_none", None, search_lib.NO_ITEMS)]  # fmt: skip
