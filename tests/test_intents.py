"""intents on five small intents (five examples each), one intent with a single example and a few out-of-scope
examples, embedded by the real MiniLM model: matches, out of scope, answers with and without the personal part,
blank, emoji-only and 10,000-character messages, unknown intents in the answers, re-runs and bad input."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
from pyspark.sql import functions as F

from behaviorlm.answers import check_templates, render_answers, top_interest
from behaviorlm.errors import InputContractError
from behaviorlm.intents import (
    UNCHOSEN_THRESHOLD,
    choose_threshold,
    decide,
    fit_intents,
    load_intents,
    save_intents,
    score_intents,
    split_examples,
)
from behaviorlm.vectors import concat_unit
from jobs import intents
from tests.util import assert_same_rows, job_args, read, write

EXAMPLES = {
    "order_status": ["where is my order", "has my package shipped yet", "track my delivery",
                     "when will my order arrive", "what is the status of my order"],
    "refund": ["i want my money back", "how do i get a refund", "refund this purchase please",
               "can i return this for a refund", "i was charged twice, refund me"],
    "recommend": ["suggest a movie for tonight", "what should i watch", "recommend me a good film",
                  "any good movies to watch", "give me a film recommendation"],
    "reset_password": ["i forgot my password", "reset my password", "i can't log in to my account",
                       "how do i change my password", "my login does not work"],
    "cancel_subscription": ["cancel my subscription", "stop my membership", "i want to unsubscribe",
                            "end my plan", "how do i cancel my account"],
    "greeting": ["hello there"],
    "oos": ["what's the weather in paris", "how tall is mount everest", "what is the capital of peru",
            "how many calories are in a banana", "who won the football game last night"],
}  # fmt: skip
MESSAGES = [
    ("m1", "has my order shipped?", "u1"),
    ("m1", "the second row of id m1: never matched", "u1"),
    ("m2", "please refund my purchase", "ghost"),
    ("m3", "how deep is the pacific ocean", "u1"),
    ("m4", " \n\t ", "u1"),
    ("m5", "🍿🍿 ?! refund ሰላም እንዴት ነህ", None),  # neither encoder reads Amharic: 6 of 17 characters read
    ("m6", "i forgot my password " * 500, None),
    ("m7", "hello there", None),
    (None, "a message without an id", None),
]
ANSWERS = [
    ("order_status", "Your order is on its way, {user_id}. Since you like {interest}, a film is waiting for you."),
    ("refund", "Sorry about that! As a fan of {interest}, you get a voucher too."),
    ("refund", "Zz: a second refund template, never used."),
    ("greeting", "Hi {user_id}! How can I help?"),
    ("weather", "It is sunny."),
]
INTERESTS = [("u1", 0, 0.7, 0.5, "Comedy 63% · Heat", "Comedy", "r0"), ("u1", 1, 0.3, 0.5, "War 90%", "War", "r0")]
INTEREST_SCHEMA = (
    "user_id string, segment_id int, weight double, recent_share double, label string, name string, run_id string"
)
BASE = ["model.backend=transformers", "intents.reg=0.001"]


@pytest.fixture
def tables(spark, make_config):
    cfg = make_config()
    examples = [(text, intent) for intent, texts in EXAMPLES.items() for text in texts]
    write(spark, cfg, "intent_examples", examples, "text string, intent string")
    write(spark, cfg, "messages", MESSAGES, "message_id string, text string, user_id string")
    write(spark, cfg, "intent_answers", ANSWERS, "intent string, answer_template string")
    write(spark, cfg, "user_interests", INTERESTS, INTEREST_SCHEMA)
    return cfg


def rows(spark, cfg):
    got = read(spark, cfg, "message_intents").where(F.col("run_id") == cfg.run_id).drop("run_id")
    return got, {r["message_id"]: r for r in got.collect()}


def test_match_answer_fallback_and_rerun(spark, connect, tables):
    cfg = tables
    metrics = intents.main(job_args(cfg, *BASE))
    got, by_id = rows(spark, cfg)
    assert metrics["messages"] == 7 and metrics["messages_skipped"] == 2 and metrics["intents"] == 6
    assert metrics["answers_unknown_intent"] == 1 and metrics["answers_duplicate"] == 1
    assert 0.0 < metrics["threshold"] < 1.0 and metrics["threshold_chosen"] == 1
    assert metrics["encoders"] == 2  # MiniLM's vectors joined by the multilingual encoder's
    assert by_id["m1"]["intent"] == "order_status" and not by_id["m1"]["fallback"]
    assert by_id["m1"]["answer"] == "Your order is on its way, u1. Since you like Comedy, a film is waiting for you."
    # An unknown user: the answer without its personal sentence.
    assert (by_id["m2"]["intent"], by_id["m2"]["answer"]) == ("refund", "Sorry about that!")
    # Out of scope: no intent, no answer, the confidence that was too low.
    m3 = by_id["m3"]
    assert (m3["intent"], m3["answer"], m3["fallback"]) == (None, None, True) and m3["confidence"] < metrics[
        "threshold"
    ]
    # Blank, or too little read by either encoder (one known word, "refund", once had it encoded): fallback without
    # a confidence.
    for blank in ("m4", "m5"):
        assert (by_id[blank]["intent"], by_id[blank]["confidence"], by_id[blank]["fallback"]) == (None, None, True)
    assert metrics["messages_blank"] == 1 and metrics["messages_unreadable"] == 1
    # 10,000 characters are read up to the model's length; an intent with one example is matched, no user no name.
    assert by_id["m6"]["intent"] == "reset_password" and by_id["m6"]["answer"] is None
    # Matched but left without an answer (m6: its intent has no template) is counted, and warned of.
    unanswered = [m for m, r in by_id.items() if not r["fallback"] and r["answer"] is None]
    assert "m6" in unanswered and metrics["messages_unanswered"] == len(unanswered)
    assert (by_id["m7"]["intent"], by_id["m7"]["answer"]) == ("greeting", "How can I help?")
    model = os.path.join(cfg.tables.root, "_models", cfg.run_id)
    assert {"meta", "examples", "classifier"} <= set(os.listdir(model))
    intents.main(job_args(cfg, *BASE))
    assert_same_rows(rows(spark, cfg)[0], got)
    with connect():  # as a Spark Connect client (MLlib's classifier fitted and saved there): the same rows
        intents.main(job_args(cfg, *BASE))
    assert_same_rows(rows(spark, cfg)[0], got)


def test_centroid_model_saves_reloads_and_scores_by_cosine(spark, tmp_path):
    schema = "intent string, embedding array<float>"
    # Intent a's mean points along x, b's along y; the out-of-scope examples are never a centroid.
    vectors = [("a", [1.0, 0.0]), ("a", [0.8, 0.6]), ("a", [0.8, -0.6]), ("b", [0.0, 1.0]), ("oos", [-1.0, 0.0])]
    fitted = fit_intents(spark.createDataFrame(vectors, schema), "centroid")
    save_intents(replace(fitted, threshold=0.7), str(tmp_path / "model"))
    model = load_intents(spark, str(tmp_path / "model"))
    assert (model.method, model.labels, model.threshold) == ("centroid", ["a", "b"], 0.7)
    messages = spark.createDataFrame(
        [("m1", [0.6, 0.8]), ("m2", [-0.6, -0.8])], "message_id string, embedding array<float>"
    )
    got = {r["message_id"]: r for r in decide(score_intents(model, messages), model.threshold).collect()}
    assert (got["m1"]["intent"], got["m1"]["confidence"]) == ("b", pytest.approx(0.8, abs=1e-6))
    assert (got["m2"]["intent"], got["m2"]["fallback"]) == (None, True)


def test_bad_input_is_a_clear_error_and_missing_tables_write_nothing(spark, tables, make_config, tmp_path):
    cfg = tables
    write(spark, cfg, "intent_answers", [("refund", "Hi {name}.")], "intent string, answer_template string")
    with pytest.raises(InputContractError, match=r"'intent_answers'.*'answer_template'.*\{name\}"):
        intents.main(job_args(cfg, *BASE))
    write(spark, cfg, "intent_examples", [("hello", "greeting")], "text string, label string")
    with pytest.raises(InputContractError, match=r"'intent_examples'.*'intent'"):
        intents.main(job_args(cfg, *BASE))
    empty = make_config(f"tables.root={tmp_path / 'empty'}")
    assert intents.main(job_args(empty, *BASE)) == {"messages": 0}
    assert not os.path.exists(os.path.join(empty.tables.root, "message_intents"))


def test_concatenated_vectors_are_unit_and_their_cosine_is_the_parts_mean(spark):
    schema = "a array<float>, b array<float>"
    frame = spark.createDataFrame([([3.0, 4.0], [2.0, 0.0, 0.0]), ([0.0, 1.0], [1.0, 1.0, 0.0]), (None, [1.0])], schema)
    got = [r[0] for r in frame.select(concat_unit([F.col("a"), F.col("b")])).collect()]
    first, second = np.array(got[0]), np.array(got[1])
    assert first == pytest.approx([0.6 / np.sqrt(2), 0.8 / np.sqrt(2), 1 / np.sqrt(2), 0, 0], abs=1e-6)
    assert first @ second == pytest.approx((0.8 + 1 / np.sqrt(2)) / 2, abs=1e-6) and got[2] is None


def test_split_keeps_one_example_per_intent(spark):
    rows_ = [(f"t{n}", "a") for n in range(5)] + [("t", "b"), ("u", "c"), ("v", "c")]
    got = split_examples(spark.createDataFrame(rows_, "text string, intent string"), 0.2, 7)
    held = {
        r["intent"]: r["n"]
        for r in got.groupBy("intent").agg(F.sum(F.col("validation").cast("int")).alias("n")).collect()
    }
    assert held == {"a": 1, "b": 0, "c": 0}


def test_too_few_examples_to_hold_out_still_fall_back(spark, make_config):
    """One example per intent leaves none to choose the threshold on: it was 0, so no message ever fell back."""
    cfg = make_config()
    write(spark, cfg, "intent_examples", [("hello there", "greeting"), ("i want my money back", "refund")],
          "text string, intent string")  # fmt: skip
    write(spark, cfg, "messages", [("m1", "hello there"), ("m2", "how deep is the pacific ocean")],
          "message_id string, text string")  # fmt: skip
    metrics = intents.main(job_args(cfg, *BASE, "intents.multilingual_features=false"))
    assert metrics["threshold_chosen"] == 0 and metrics["threshold"] == UNCHOSEN_THRESHOLD["logistic"]
    _, by_id = rows(spark, cfg)
    assert (by_id["m1"]["intent"], by_id["m1"]["fallback"]) == ("greeting", False)
    assert (by_id["m2"]["intent"], by_id["m2"]["fallback"]) == (None, True)


def test_threshold_balances_in_scope_accuracy_and_oos_recall(spark):
    schema = "truth string, intent string, confidence double"
    # In scope right at 0.9, 0.8 and 0.6, wrong at 0.5; out of scope at 0.3 and 0.55.
    scored = [("a", "a", 0.9), ("b", "b", 0.8), ("a", "a", 0.6), ("b", "a", 0.5), ("oos", "a", 0.3),
              ("oos", "b", 0.55)]  # fmt: skip
    # Best with OOS_SHARE 0.1: above both out-of-scope ones, still keeping the right one at 0.6.
    t = choose_threshold(spark.createDataFrame(scored, schema), "truth", "oos", 0.1)
    assert 0.55 < t <= 0.6
    # Without out-of-scope examples: the 5% quantile of the right ones' confidences.
    assert choose_threshold(spark.createDataFrame(scored[:4], schema), "truth", "oos") == 0.6
    assert choose_threshold(spark.createDataFrame(scored[4:], schema), "truth", "oos") is None  # no in-scope one
    decided = decide(spark.createDataFrame(scored, schema), t).orderBy(F.desc("confidence")).collect()
    assert [(r["intent"], r["fallback"]) for r in decided][2:4] == [("a", False), (None, True)]


def test_render_drops_sentences_whose_placeholders_have_no_value(spark):
    answers = spark.createDataFrame(ANSWERS, "intent string, answer_template string")
    templates, counts = check_templates(answers, ["order_status", "refund", "greeting"])
    assert counts == {"answers_unknown_intent": 1, "answers_blank": 0, "answers_duplicate": 1}
    interests = top_interest(spark.createDataFrame(INTERESTS, INTEREST_SCHEMA))
    people = [("x", "greeting", "u1"), ("y", "greeting", " "), ("z", None, "u1"), ("w", "order_status", None)]
    decided = spark.createDataFrame(people, "message_id string, intent string, user_id string")
    got = {r["message_id"]: r["answer"] for r in render_answers(decided, templates, interests).collect()}
    assert got == {"x": "Hi u1! How can I help?", "y": "How can I help?", "z": None, "w": None}
    # The top interest's name is said; a top segment without a name ("segment 7") leaves the sentence out.
    named = [("a", 0, 0.6, "书籍"), ("a", 1, 0.4, "War"), ("b", 0, 0.5, "三体"), ("b", 1, 0.5, "Heat"),
             ("c", 2, 0.9, None), ("c", 0, 0.1, "书籍"), ("d", 3, 1.0, " ")]  # fmt: skip
    labels = [(user, seg, w, 0.5, "label", name, "r0") for user, seg, w, name in named]
    said = top_interest(spark.createDataFrame(labels, INTEREST_SCHEMA)).orderBy("user_id").collect()
    assert [r["interest"] for r in said] == ["书籍", "Heat", None, None]
    assert top_interest(spark.createDataFrame(labels, INTEREST_SCHEMA).drop("name")) is None  # an older table


def test_chinese_templates_split_at_chinese_stops_and_non_ascii_placeholders_are_checked(spark):
    """。！？ end a sentence with no space after them: only the sentence whose value is missing goes (the whole answer
    went before); a placeholder named in Chinese is an unknown one, an error like {name}'s (it was left unfilled)."""
    answers = [("greeting", "好的。作为{interest}的爱好者，你会喜欢这些！祝你愉快？Bye {user_id}. See you.")]
    schema = "intent string, answer_template string"
    templates, _ = check_templates(spark.createDataFrame(answers, schema), ["greeting"])
    decided = spark.createDataFrame([("m1", "greeting", "u9")], "message_id string, intent string, user_id string")
    assert render_answers(decided, templates).first()["answer"] == "好的。祝你愉快？Bye u9. See you."
    named = spark.createDataFrame([("shipping", "{订单号} 已发货。"), ("greeting", "你好 {用户名}！")], schema)
    # Every bad template is named in one error, not the first one found.
    with pytest.raises(InputContractError, match=r"intent 'greeting': \{用户名\}; intent 'shipping': \{订单号\}"):
        check_templates(named, ["greeting", "shipping"])
