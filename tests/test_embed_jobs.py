"""embed-items and embed-users on small inline tables, through Spark with the real model in Python workers.

The catalogue mixes Chinese, emoji and English, which `model.backend: auto` would hand to the multilingual backend:
the tests of the transformers path pin `model.backend=transformers`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from behaviorlm import delta
from behaviorlm.assets import model_dir
from behaviorlm.config import ConfigError
from behaviorlm.schemas import BEHAVIORS, ITEMS
from behaviorlm.text import display_titles, item_texts
from behaviorlm.users import event_weights, pooled_vectors, render_sequences, weighted_mean_vectors
from behaviorlm.vectors import center
from jobs import embed_items, embed_users
from tests.test_encoder import reference_vectors

ITEM_ROWS = [
    ("1", "Toy Story", None, ["Animation", "Comedy"], 1995),
    ("2", "卧虎藏龙", "武侠电影", None, 2000),
    ("3", "🎬 night", None, [], None),
    ("4", None, None, None, None),
    ("5", "x" * 10_000, None, None, None),
]


def write(spark, cfg, name, rows, schema):
    delta.overwrite(spark.createDataFrame(rows, schema), delta.table_ref(cfg.tables, name))


def read(spark, cfg, name):
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def argv(cfg, *overrides):
    pairs = [f"tables.root={cfg.tables.root}", *overrides]
    if not any(o.startswith("model.backend=") for o in overrides):
        pairs.append("model.backend=transformers")
    return [a for o in pairs for a in ("--set", o)] + ["--run-id", cfg.run_id]


def test_item_text_template(spark):
    items = spark.createDataFrame(ITEM_ROWS[:4], ITEMS)
    got = item_texts(items, ["{title}", "({year})", "Genres: {genres}.", "{description}"], "unknown item")
    expected = spark.createDataFrame(
        [
            ("1", "Toy Story (1995) Genres: Animation, Comedy.", False),
            ("2", "卧虎藏龙 (2000) 武侠电影", False),
            ("3", "🎬 night", False),
            ("4", "unknown item", True),
        ],
        "item_id string, text string, fallback boolean",
    )
    assert_df_equality(got.drop("text_hash"), expected, ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(ConfigError, match=r"\{rating\}"):
        item_texts(items, ["{rating}"], "x")


def test_a_blank_or_missing_title_is_named_by_the_item_id_and_a_long_one_is_cut(spark):
    schema = "item_id string, title string"
    rows = [("1", "Fargo"), ("2", "  \t\n"), ("3", None), (" 4", ""), ("5", "Epic " * 4000), ("6", "x" * 80)]
    items = spark.createDataFrame(rows, schema)
    expected = spark.createDataFrame(
        [("1", "Fargo"), ("2", "2"), ("3", "3"), (" 4", " 4"), ("5", "Epic " * 15 + "Epic…"), ("6", "x" * 80)], schema
    )
    assert_df_equality(display_titles(items), expected, ignore_row_order=True, ignore_nullable=True)


def test_udf_vectors_equal_direct_transformers_and_load_once_per_worker(spark, make_config):
    cfg = make_config("embed.arrow_batch_size=2", "model.batch_size=2")
    write(spark, cfg, "items", ITEM_ROWS, ITEMS)
    metrics = embed_items.main(argv(cfg, "embed.arrow_batch_size=2", "model.batch_size=2"))
    assert metrics["items_embedded"] == 5 and metrics["items_fallback_text"] == 1
    # Several Arrow batches per task, yet no Python worker loaded the model more than once (a worker that earlier
    # tests in this session already used may hold it from then: 0 loads).
    assert metrics["python_workers"] >= 1 and metrics["max_loads_per_worker"] <= 1

    got = read(spark, cfg, "item_embeddings").join(
        item_texts(read(spark, cfg, "items"), cfg.embed.item_fields, cfg.embed.empty_text), "item_id"
    )
    rows = sorted(got.collect(), key=lambda r: r["item_id"])
    expected = reference_vectors([r["text"] for r in rows])
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-5)
    assert {(r["dim"], r["model"].split("@")[0]) for r in rows} == {(384, "all-MiniLM-L6-v2")}


def test_second_run_embeds_nothing_and_changes_are_picked_up(spark, make_config):
    cfg = make_config()
    write(spark, cfg, "items", ITEM_ROWS[:3], ITEMS)
    assert embed_items.main(argv(cfg))["items_embedded"] == 3
    first = read(spark, cfg, "item_embeddings").collect()

    again = embed_items.main(argv(cfg))
    assert (again["items_embedded"], again["items_skipped"], again["model_loads"]) == (0, 3, 0)
    assert_df_equality(read(spark, cfg, "item_embeddings"), spark.createDataFrame(first, read(spark, cfg,
                       "item_embeddings").schema), ignore_row_order=True)  # fmt: skip

    changed = [("1", "Toy Story 2", None, ["Animation"], 1999), ITEM_ROWS[1]]  # 1 changed, 3 removed
    write(spark, cfg, "items", changed, ITEMS)
    assert embed_items.main(argv(cfg))["items_embedded"] == 1
    assert sorted(r["item_id"] for r in read(spark, cfg, "item_embeddings").collect()) == ["1", "2"]

    # Another pooling makes other vectors: everything is re-embedded.
    assert embed_items.main(argv(cfg, "model.pooling=cls"))["items_embedded"] == 2
    # So does another backend; its id is stable, so a second run embeds nothing.
    switched = embed_items.main(argv(cfg, "model.backend=use-multilingual"))
    assert (switched["items_embedded"], switched["backend_use_multilingual"]) == (2, 1)
    stored = {(r["model"].split("@")[0], r["dim"], len(r["embedding"])) for r in read(spark, cfg, "item_embeddings")
              .collect()}  # fmt: skip
    assert stored == {("use-multilingual", 512, 512)}
    assert embed_items.main(argv(cfg, "model.backend=use-multilingual"))["items_embedded"] == 0


def test_pooled_user_vectors_are_weighted_means(spark):
    item_vectors = spark.createDataFrame(
        [("a", [1.0, 0.0]), ("b", [0.0, 1.0])], "item_id string, embedding array<float>"
    )
    ts = dt.datetime(2024, 1, 1)
    behaviors = spark.createDataFrame(
        [
            ("u1", "a", "rating", 5.0, ts, None),
            ("u1", "b", "view", None, ts, None),
            ("u2", "b", "click", None, ts, None),
            ("u3", "a", "teleport", None, ts, None),  # weight 0: no vector
        ],
        BEHAVIORS,
    )
    weighted = event_weights(behaviors, {"rating": 1.0, "view": 0.5, "click": 1.0}, 5.0, 0.0)
    got = pooled_vectors(weighted, item_vectors, None, 1.0)
    norm = np.sqrt(1 + 0.25)
    expected = spark.createDataFrame(
        [("u1", [float(1 / norm), float(0.5 / norm)]), ("u2", [0.0, 1.0])], "user_id string, embedding array<float>"
    )
    assert_approx_df_equality(got, expected, 1e-6, ignore_row_order=True, ignore_nullable=True)


def test_a_users_vector_does_not_depend_on_the_order_its_rows_arrive_in(spark):
    # Floats summed in another order give other bits: here the running mean of 1e16, 1 and -1e16 is 0 or 1/3. Rows
    # arrive in file and shuffle order, which a rewritten table changes (a re-run moved 160 of ML-100K's users).
    rows = [([1e16, 1.0], 1.0), ([1.0, 1.0], 1.0), ([-1e16, 1.0], 1.0)]
    got = []
    for order in (rows, rows[::-1], rows[1:] + rows[:1]):
        frame = spark.createDataFrame([("u", v, w) for v, w in order], "user_id string, vec array<float>, w double")
        got.append(weighted_mean_vectors(frame.coalesce(1)).first()["embedding"])
    assert got[0] == got[1] == got[2]


def test_centring_on_no_catalogue_leaves_vectors_as_they_are(spark):
    """A catalogue of no items made embed-users fail in MLlib's Summarizer ("Nothing has been added")."""
    schema = "item_id string, embedding array<float>"
    none, users = spark.createDataFrame([], schema), spark.createDataFrame([("u1", [0.6, 0.8])], schema)
    assert center(none).collect() == []
    assert [r["embedding"] for r in center(users, reference=none).collect()] == [pytest.approx([0.6, 0.8])]
    a = 2**-0.5
    mean_of_two = center(spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0])], schema))
    assert sorted(r["embedding"] for r in mean_of_two.collect()) == [pytest.approx([-a, a]), pytest.approx([a, -a])]


def test_recency_half_life_halves_the_weight(spark):
    behaviors = spark.createDataFrame(
        [("u", "a", "view", None, dt.datetime(2024, 1, 11), None), ("u", "b", "view", None, dt.datetime(2024, 1, 1),
         None)], BEHAVIORS)  # fmt: skip
    weights = {r["item_id"]: r["w"] for r in event_weights(behaviors, {"view": 1.0}, 5.0, 10.0).collect()}
    assert weights == pytest.approx({"a": 1.0, "b": 0.5})


def test_sequence_text_is_the_latest_behaviours_newest_first(spark):
    items = spark.createDataFrame([ITEM_ROWS[0]], ITEMS)
    behaviors = spark.createDataFrame(
        [
            ("u", "1", "rating", 4.0, dt.datetime(2024, 1, 1), None),
            ("u", "9", "search", None, dt.datetime(2024, 1, 3), "space movies"),
            ("u", "1", "view", None, dt.datetime(2024, 1, 2), None),
            ("u", "1", "click", None, dt.datetime(2023, 1, 1), None),  # beyond the latest 3
        ],
        BEHAVIORS,
    )
    got = render_sequences(behaviors, items, 3, 5.0).first()
    assert got["text"] == "searched item 9 'space movies'; viewed Toy Story (1995); rated Toy Story (1995) 4/5"


@pytest.mark.parametrize("mode", ["pooled", "sequence"])
def test_embed_users_job_writes_one_unit_vector_per_user(spark, make_config, mode):
    cfg = make_config()
    write(spark, cfg, "items", ITEM_ROWS[:2], ITEMS)
    ts = dt.datetime(2024, 1, 1)
    behaviors = [
        ("u1", "1", "rating", 5.0, ts, None),
        ("u1", "2", "view", None, ts, "great wuxia"),
        ("u2", "2", "purchase", None, ts, None),
        ("u3", "7", "search", None, ts, "kung fu"),  # unknown item: only its text carries signal
    ]
    write(spark, cfg, "behaviors", behaviors, BEHAVIORS)
    embed_items.main(argv(cfg))
    metrics = embed_users.main(argv(cfg, f"embed.user_mode={mode}"))
    users = read(spark, cfg, "user_embeddings")
    assert metrics["users_embedded"] == 3 and metrics["users_without_vector"] == 0
    rows = {r["user_id"]: r for r in users.collect()}
    assert {u: r["n_events"] for u, r in rows.items()} == {"u1": 2, "u2": 1, "u3": 1}
    assert {r["mode"] for r in rows.values()} == {mode}
    for r in rows.values():
        assert len(r["embedding"]) == 384 and abs(np.linalg.norm(r["embedding"]) - 1) < 1e-5
    # Re-running leaves the same rows.
    before = users.select("user_id", "embedding").collect()
    embed_users.main(argv(cfg, f"embed.user_mode={mode}"))
    after = read(spark, cfg, "user_embeddings").select("user_id", "embedding")
    assert_approx_df_equality(after, spark.createDataFrame(before, after.schema), 1e-6, ignore_row_order=True)


def test_model_path_without_model_is_a_clear_error(spark, make_config, tmp_path):
    cfg = make_config()
    write(spark, cfg, "items", ITEM_ROWS[:1], ITEMS)
    from behaviorlm.embedding import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        embed_items.main(argv(cfg, f"model.path={tmp_path}"))
    with pytest.raises(ModelNotFoundError, match="has no config.json"):  # auto reads the tokenizer first
        embed_items.main(argv(cfg, "model.backend=auto", f"model.path={tmp_path}"))
    assert model_dir().is_dir()


def test_udf_on_the_executor_picks_cpu_without_gpus(spark):
    import pandas as pd

    from udfs.device import task_device

    def devices(batches):
        for _ in batches:
            yield pd.DataFrame({"device": [task_device()]})

    got = spark.range(2, numPartitions=2).mapInPandas(devices, "device string").collect()
    assert {r["device"] for r in got} == {"cpu"}


def test_identical_texts_stay_identical_after_centring(spark):
    """A catalogue of one repeated title centred to rounding noise (norm ~4e-7), which normalising turned into random
    directions: identical items got a cosine of -0.49 and were split into several segments."""
    rng = np.random.default_rng(3)
    v = rng.normal(size=384)
    noisy = [v + rng.normal(scale=1e-7, size=384) for _ in range(4)]  # float32 rounding of one text's vector
    rows = [(i, (x / np.linalg.norm(x)).astype(np.float32).tolist()) for i, x in zip("abcd", noisy, strict=True)]
    items = spark.createDataFrame(rows, "item_id string, embedding array<float>")
    got = [np.array(r["embedding"]) for r in center(items).collect()]
    assert all(g @ got[0] == pytest.approx(1.0, abs=1e-5) for g in got)
    assert got[0] == pytest.approx(v / np.linalg.norm(v), abs=1e-5)
    # Just above the floor (5e-4 from the mean) two items are still centred: opposite directions.
    t = 1e-3
    pair = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [float(np.cos(t)), float(np.sin(t))])],
                                 "item_id string, embedding array<float>")  # fmt: skip
    a, b = (np.array(r["embedding"]) for r in center(pair).orderBy("item_id").collect())
    assert a @ b == pytest.approx(-1.0, abs=1e-3)
