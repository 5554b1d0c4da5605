from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

from behaviorlm.schemas import BEHAVIOR_COLUMNS, BEHAVIORS, ITEM_COLUMNS, ITEMS, REASON, rejected_schema
from behaviorlm.errors import InputContractError
from behaviorlm.validate import (
    accepted,
    check_columns,
    rejected,
    rename_to_canonical,
    tag_behaviors,
    tag_items,
)

RAW_BEHAVIORS = StructType([StructField(c, StringType()) for c in BEHAVIOR_COLUMNS])
EVENTS = ["rating", "view", "click"]


def raw_behaviors(spark, rows):
    return spark.createDataFrame(rows, RAW_BEHAVIORS)


def test_every_bad_row_gets_its_reason_and_good_rows_are_typed(spark):
    rows = [
        ("u1", "i1", "rating", "4", "881250949", None),  # epoch seconds
        ("u1", "i2", "VIEW", None, "2024-01-02 03:04:05", "searched: space"),  # event type case-folded
        ("u2", "i1", "rating", "4", "881250949", None),
        (None, "i1", "view", None, "881250949", None),
        ("  ", "i1", "view", None, "881250949", None),
        ("u3", None, "view", None, "881250949", None),
        ("u3", "i1", "teleport", None, "881250949", None),
        ("u3", "i1", "view", None, "yesterday", None),
        ("u3", "i1", "rating", "five", "881250949", None),
        ("u3", "i1", "rating", None, "881250949", None),
        ("u3", "i1", "rating", "9", "881250949", None),
        ("u3", "i1", "rating", "NaN", "881250949", None),
        ("u3", "i1", "view", None, "99999999999999", None),
        ("u2", "i1", "rating", "3", "881250949", None),  # same key as row 3, lower rating: the duplicate
    ]
    tagged = tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1.0, 5.0)

    expected_good = spark.createDataFrame(
        [
            ("u1", "i1", "rating", 4.0, dt.datetime(1997, 12, 4, 15, 55, 49), None),
            ("u1", "i2", "view", None, dt.datetime(2024, 1, 2, 3, 4, 5), "searched: space"),
            ("u2", "i1", "rating", 4.0, dt.datetime(1997, 12, 4, 15, 55, 49), None),
        ],
        BEHAVIORS,
    )
    assert_df_equality(accepted(tagged, BEHAVIORS), expected_good, ignore_row_order=True)

    bad = rejected(tagged, BEHAVIOR_COLUMNS)
    expected_bad = spark.createDataFrame(
        [
            (None, "i1", "view", None, "881250949", None, "null_user_id"),
            ("  ", "i1", "view", None, "881250949", None, "null_user_id"),
            ("u3", None, "view", None, "881250949", None, "null_item_id"),
            ("u3", "i1", "teleport", None, "881250949", None, "unknown_event_type"),
            ("u3", "i1", "view", None, "yesterday", None, "invalid_ts"),
            ("u3", "i1", "rating", "five", "881250949", None, "invalid_rating"),
            ("u3", "i1", "rating", None, "881250949", None, "missing_rating"),
            ("u3", "i1", "rating", "9", "881250949", None, "rating_out_of_range"),
            ("u3", "i1", "rating", "NaN", "881250949", None, "invalid_rating"),
            ("u3", "i1", "view", None, "99999999999999", None, "invalid_ts"),
            ("u2", "i1", "rating", "3", "881250949", None, "duplicate_event"),
        ],
        rejected_schema(BEHAVIOR_COLUMNS),
    )
    assert_df_equality(bad, expected_bad, ignore_row_order=True, ignore_nullable=True)


def test_typed_sources_parse_without_text_round_trip(spark):
    schema = StructType(
        [
            StructField("user_id", IntegerType()),
            StructField("item_id", IntegerType()),
            StructField("event_type", StringType()),
            StructField("rating", DoubleType()),
            StructField("ts", DoubleType()),
            StructField("text", StringType()),
        ]
    )
    raw = spark.createDataFrame([(7, 8, "rating", 2.5, 0.0, None), (7, 9, "rating", 0.5, 1.0, None)], schema)
    tagged = tag_behaviors(raw, EVENTS, 1.0, 5.0)
    got = {r["item_id"]: (r[REASON], r["ts"]) for r in tagged.collect()}
    assert got["8"] == (None, dt.datetime(1970, 1, 1))
    assert got["9"][0] == "rating_out_of_range"


def test_items_accept_text_or_array_genres_and_reject_bad_rows(spark):
    raw = spark.createDataFrame(
        [
            ("1", "Toy Story", None, "Animation| Comedy", "1995"),
            ("2", "GoldenEye", "spy", "", None),
            ("2", "GoldenEye (dup)", None, "Action", "1995"),
            (None, "Orphan", None, None, None),
            ("3", "Heat", None, "Crime,Thriller", "mid-nineties"),
        ],
        StructType([StructField(c, StringType()) for c in ITEM_COLUMNS]),
    )
    tagged = tag_items(raw)
    expected = spark.createDataFrame(
        [("1", "Toy Story", None, ["Animation", "Comedy"], 1995), ("2", "GoldenEye", "spy", None, None)], ITEMS
    )
    assert_df_equality(accepted(tagged, ITEMS), expected, ignore_row_order=True)
    reasons = sorted(r[REASON] for r in rejected(tagged, ITEM_COLUMNS).collect())
    assert reasons == ["duplicate_item", "invalid_year", "null_item_id"]

    arrays = spark.createDataFrame(
        [("9", "Alien", None, [" Sci-Fi ", "", "Horror"], 1979)],
        StructType(
            [
                StructField("item_id", StringType()),
                StructField("title", StringType()),
                StructField("description", StringType()),
                StructField("genres", ArrayType(StringType())),
                StructField("year", IntegerType()),
            ]
        ),
    )
    assert accepted(tag_items(arrays), ITEMS).first()["genres"] == ["Sci-Fi", "Horror"]


def test_missing_required_column_names_table_and_column(spark):
    df = spark.createDataFrame([("u", "i")], "uid string, iid string")
    mapping = {"user_id": "uid", "item_id": "iid", "ts": "when"}
    with pytest.raises(InputContractError, match=r"table 'raw\.events': required column 'event_type'"):
        check_columns(df, "raw.events", mapping, ["user_id", "item_id", "event_type", "ts"])


def test_rename_to_canonical_maps_columns_and_fills_optional_ones(spark):
    df = spark.createDataFrame([("u", "i", "view", 1.0)], "uid string, iid string, kind string, t double")
    mapping = {"user_id": "uid", "item_id": "iid", "event_type": "kind", "ts": "t"}
    out = rename_to_canonical(df, mapping, BEHAVIOR_COLUMNS)
    assert out.columns == BEHAVIOR_COLUMNS
    assert out.first().asDict() == {
        "user_id": "u", "item_id": "i", "event_type": "view", "rating": None, "ts": 1.0, "text": None
    }  # fmt: skip
