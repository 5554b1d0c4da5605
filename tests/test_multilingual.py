"""Chinese behaviours end to end with the default `model.backend: auto`: ingest from a table, embed-items, embed-users,
similar-users. The English MiniLM reads these words as [UNK] (every user alike); auto measures that and encodes with
the multilingual backend, and the users who share two of three interests become each other's nearest neighbours."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm.config import load_config
from behaviorlm.embedding import EmbeddingSpaceError
from jobs import embed_items, embed_users, ingest, similar_users
from tests.util import job_args, read

# film, books, games / books, music, travel / travel, books, food
HISTORIES = {"123": ["电影", "书籍", "游戏"], "456": ["书籍", "音乐", "旅游"], "789": ["旅游", "书籍", "美食"]}
T0 = dt.datetime(2024, 5, 1)


def chinese_source(spark: SparkSession, folder: Path) -> list[str]:
    """Raw Delta tables of the example (items are the words, their titles the words; click events, no rating);
    returns the ingest settings that read them."""
    rows = [(user, word, "click", T0 + dt.timedelta(minutes=n)) for user, words in HISTORIES.items()
            for n, word in enumerate(words)]  # fmt: skip
    behaviors = spark.createDataFrame(rows, "user_id string, item_id string, event_type string, ts timestamp")
    words = sorted({w for words in HISTORIES.values() for w in words})
    items = spark.createDataFrame([(w, w) for w in words], "item_id string, title string")
    behaviors.write.format("delta").save(str(folder / "behaviors"))
    items.write.format("delta").save(str(folder / "items"))
    return ["ingest.source=table", f"ingest.behaviors_source={folder / 'behaviors'}",
            f"ingest.items_source={folder / 'items'}"]  # fmt: skip


def stage_metrics(spark: SparkSession, cfg, stage: str) -> dict[str, float]:
    rows = read(spark, cfg, "run_metrics").where((F.col("run_id") == cfg.run_id) & (F.col("stage") == stage))
    return {r["metric"]: r["value"] for r in rows.collect()}


@pytest.fixture(scope="module")
def example(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    """The example through ingest -> embed-items -> embed-users -> similar-users, model.backend at its default (auto).
    Module-scoped (so built with `load_config`, as `make_config` does): the four stages run once for every test here.
    Exact neighbour search: three users need no index."""
    root = tmp_path_factory.mktemp("multilingual")
    cfg = load_config(overrides=[f"tables.root={root / 'delta'}", "run_id=multilingual"])
    source = chinese_source(spark, root / "raw")
    ingest.main(job_args(cfg, *source))
    for stage in (embed_items, embed_users, similar_users):
        stage.main(job_args(cfg, "neighbors.mode=exact"))
    return cfg


def test_auto_picks_the_multilingual_backend_for_chinese_items(spark, example):
    items = stage_metrics(spark, example, "embed_items")
    assert items["backend_use_multilingual"] == 1.0 and items["auto_unknown_token_share"] > 0.5
    # Measured again with the backend that encoded: it reads the words.
    assert items["unknown_token_share"] == 0.0 and items["identical_pair_share"] == 0.0
    assert stage_metrics(spark, example, "embed_users")["backend_use_multilingual"] == 1.0
    models = {(r["model"], len(r["embedding"])) for r in read(spark, example, "item_embeddings").collect()}
    users = {(r["model"], len(r["embedding"])) for r in read(spark, example, "user_embeddings").collect()}
    assert len(models) == 1 and models == users
    model, dim = models.pop()
    assert model.startswith("use-multilingual@") and dim == 512


def test_users_sharing_two_interests_are_nearest_neighbours(spark, example):
    found = read(spark, example, "user_neighbors").where(F.col("run_id") == example.run_id)
    nearest = {r["user_id"]: r["neighbor_id"] for r in found.where("rank = 1").collect()}
    assert nearest["456"] == "789" and nearest["789"] == "456"
    vectors = {r["user_id"]: np.array(r["embedding"]) for r in read(spark, example, "user_embeddings").collect()}
    cosine = {pair: float(vectors[pair[0]] @ vectors[pair[1]]) for pair in [("123", "456"), ("123", "789"),
              ("456", "789")]}  # fmt: skip
    assert cosine[("456", "789")] > max(cosine[("123", "456")], cosine[("123", "789")]) + 0.1
    similarities = [r["similarity"] for r in found.collect()]
    assert max(similarities) - min(similarities) > 0.1  # not the all-1.0 of the [UNK] vectors


def test_sequence_mode_users_are_encoded_in_the_items_space(spark, example):
    metrics = embed_users.main(job_args(example, "embed.user_mode=sequence"))
    assert metrics["backend_use_multilingual"] == 1.0 and metrics["users_embedded"] == 3
    item_model = read(spark, example, "item_embeddings").first()["model"]
    assert {(r["model"], len(r["embedding"])) for r in read(spark, example, "user_embeddings").collect()} == {
        (item_model, 512)
    }  # fmt: skip


def test_users_in_another_space_than_the_items_are_refused(example):
    with pytest.raises(EmbeddingSpaceError, match="use-multilingual@.*all-MiniLM-L6-v2"):
        embed_users.main(job_args(example, "model.backend=transformers"))
