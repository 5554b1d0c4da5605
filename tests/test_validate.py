from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

from behaviorlm.errors import InputContractError
from behaviorlm.schemas import BEHAVIOR_COLUMNS, BEHAVIORS, ITEM_COLUMNS, ITEMS, REASON, UNKNOWN_ITEM, rejected_schema
from behaviorlm.validate import (
    accepted,
    check_columns,
    check_types,
    rejected,
    rename_to_canonical,
    tag_behaviors,
    tag_items,
    tag_unknown_items,
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
        ("u3", "i1", "view", None, "1e21", None),  # too large even as epoch nanoseconds
        ("u3", "i1", "view", None, "0001-01-01", None),  # a placeholder date
        ("u3", "i1", "view", None, "20240501", None),  # yyyyMMdd without ts_format: epoch seconds, August 1970
        ("u2", "i1", "rating", "3", "881250949", None),  # same key as row 3, lower rating: the duplicate
        # A blank rating is no rating, as a CSV reader reads it (it was invalid_rating from a Delta source).
        ("u4", "i1", "rating", " ", "881250949", None),
        ("u4", "i2", "view", "", "881250949", None),
    ]
    tagged = tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1.0, 5.0, earliest=dt.datetime(1971, 1, 1))

    expected_good = spark.createDataFrame(
        [
            ("u1", "i1", "rating", 4.0, dt.datetime(1997, 12, 4, 15, 55, 49), None),
            ("u1", "i2", "view", None, dt.datetime(2024, 1, 2, 3, 4, 5), "searched: space"),
            ("u2", "i1", "rating", 4.0, dt.datetime(1997, 12, 4, 15, 55, 49), None),
            ("u4", "i2", "view", None, dt.datetime(1997, 12, 4, 15, 55, 49), None),
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
            ("u3", "i1", "view", None, "1e21", None, "invalid_ts"),
            ("u3", "i1", "view", None, "0001-01-01", None, "early_ts"),
            ("u3", "i1", "view", None, "20240501", None, "early_ts"),
            ("u2", "i1", "rating", "3", "881250949", None, "duplicate_event"),
            ("u4", "i1", "rating", " ", "881250949", None, "missing_rating"),
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
            ("2", "GoldenEye", "spy\n\tthriller ", "", None),
            ("2", "GoldenEye (dup)", None, "Action", "1995"),
            (None, "Orphan", None, None, None),
            ("3", "Heat", None, "Crime,Thriller", "mid-nineties"),
            ("4", "   \t\u3000", None, '["Action", "Comedy"]', "1995.0"),  # blank title; JSON array as text; pandas
            ("5", "Half", None, None, "1995.5"),
        ],
        StructType([StructField(c, StringType()) for c in ITEM_COLUMNS]),
    )
    tagged = tag_items(raw)
    expected = spark.createDataFrame(
        [("1", "Toy Story", None, ["Animation", "Comedy"], 1995), ("2", "GoldenEye", "spy thriller", None, None),
         ("4", None, None, ["Action", "Comedy"], 1995)],
        ITEMS,
    )  # fmt: skip
    assert_df_equality(accepted(tagged, ITEMS), expected, ignore_row_order=True)
    reasons = sorted(r[REASON] for r in rejected(tagged, ITEM_COLUMNS).collect())
    assert reasons == ["duplicate_item", "invalid_year", "invalid_year", "null_item_id"]

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


def test_a_misspelt_mapping_of_an_optional_column_is_an_error_not_a_column_of_nulls(spark):
    """An optional column absent under its own name is null; one the mapping names and the source lacks was a typo
    (it used to read as null text on every row); a near match by case is pointed out."""
    df = spark.createDataFrame([("u", "i", "good")], "user_id string, item_id string, Comments string")
    required = ["user_id", "item_id"]
    check_columns(df, "raw.events", {"user_id": "user_id", "item_id": "item_id", "text": "text"}, required)
    with pytest.raises(InputContractError, match=r"table 'raw\.events': column 'comments', which "
                       r"ingest\.behavior_columns\.text names, is missing; .*did you mean 'Comments'\?"):  # fmt: skip
        check_columns(df, "raw.events", {"text": "comments"}, required, "ingest.behavior_columns")


def test_rename_to_canonical_maps_columns_and_fills_optional_ones(spark):
    df = spark.createDataFrame([("u", "i", "view", 1.0)], "uid string, iid string, kind string, t double")
    mapping = {"user_id": "uid", "item_id": "iid", "event_type": "kind", "ts": "t"}
    out = rename_to_canonical(df, mapping, BEHAVIOR_COLUMNS)
    assert out.columns == BEHAVIOR_COLUMNS
    assert out.first().asDict() == {
        "user_id": "u", "item_id": "i", "event_type": "view", "rating": None, "ts": 1.0, "text": None
    }  # fmt: skip


def test_invalid_rows_never_push_a_valid_row_of_their_key_out_as_a_duplicate(spark):
    rows = [
        ("u1", "i1", "rating", "9", "881250949", None),  # out of range, and first by rating desc
        ("u1", "i1", "rating", "4", "881250949", None),
        ("u1", "i1", "rating", "3", "881250949", None),  # the real duplicate of the row above
    ]
    tagged = tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1.0, 5.0)
    got = sorted((r["raw_rating"], r[REASON]) for r in tagged.collect())
    assert got == [("3", "duplicate_event"), ("4", None), ("9", "rating_out_of_range")]
    assert accepted(tagged, BEHAVIORS).count() + rejected(tagged, BEHAVIOR_COLUMNS).count() == 3


def test_an_invalid_item_row_never_pushes_the_valid_one_of_its_id_out_as_a_duplicate(spark):
    items = spark.createDataFrame(
        [("1", "A", None, None, "soon"), ("1", "B", None, None, "1995"), ("1", "C", None, None, "1996")],
        StructType([StructField(c, StringType()) for c in ITEM_COLUMNS]),
    )
    tagged_items = tag_items(items)
    assert sorted((r["title"], r[REASON]) for r in tagged_items.collect()) == [
        ("A", "invalid_year"), ("B", None), ("C", "duplicate_item")
    ]  # fmt: skip
    assert accepted(tagged_items, ITEMS).count() + rejected(tagged_items, ITEM_COLUMNS).count() == 3


@pytest.mark.parametrize(
    "column, dtype",
    [
        ("ts", "array<int>"),
        ("ts", "struct<s:bigint>"),
        ("ts", "map<string,int>"),
        ("ts", "binary"),
        ("user_id", "struct<a:int,b:string>"),
        ("user_id", "binary"),
        ("item_id", "array<string>"),
        ("item_id", "map<string,string>"),
    ],
)
def test_unsupported_column_types_fail_before_any_spark_job(spark, column, dtype):
    raw = spark.createDataFrame([], ", ".join(f"{c} {dtype if c == column else 'string'}" for c in BEHAVIOR_COLUMNS))
    message = rf"table 'behaviors': column '{column}' \(canonical '{column}'\) has type {re.escape(dtype)}; accepted"
    with pytest.raises(InputContractError, match=message):
        tag_behaviors(raw, EVENTS, 1.0, 5.0)


def test_check_types_names_the_source_column_and_the_accepted_types(spark):
    df = spark.createDataFrame([], "sku struct<id:int>, name string")
    canonical = rename_to_canonical(df, {"item_id": "sku", "title": "name"}, ITEM_COLUMNS)
    with pytest.raises(InputContractError) as err:
        check_types(canonical, "raw.items", {"item_id": "sku", "title": "name"})
    assert str(err.value) == (
        "table 'raw.items': column 'sku' (canonical 'item_id') has type struct<id:int>; accepted types: string; "
        "numeric (tinyint, smallint, int, bigint, float, double, decimal)"
    )
    check_types(rename_to_canonical(df.drop("sku"), {"title": "name"}, ITEM_COLUMNS), "raw.items")  # void is fine


def test_integral_float_and_decimal_ids_lose_their_fraction(spark):
    numeric = spark.createDataFrame(
        [
            (123.0, Decimal("7.00"), "view", None, 881250949, None),
            (1.5, Decimal("7.25"), "view", None, 881250949, None),
            (float("nan"), Decimal("8.00"), "view", None, 881250949, None),
        ],
        "user_id double, item_id decimal(10,2), event_type string, rating double, ts bigint, text string",
    )
    got = {
        (r["raw_user_id"], r["user_id"], r["item_id"], r[REASON])
        for r in tag_behaviors(numeric, EVENTS, 1, 5).collect()
    }
    assert got == {("123.0", "123", "7", None), ("1.5", "1.5", "7.25", None), ("NaN", None, "8", "null_user_id")}

    items = spark.createDataFrame([(42.0, "Answer"), (None, "Nobody")], "item_id double, title string")
    items = rename_to_canonical(items, {}, ITEM_COLUMNS)
    assert {r["item_id"] for r in accepted(tag_items(items), ITEMS).collect()} == {"42"}

    # The same value as text (a CSV written by pandas from an int column with gaps): the same id, so a behaviour
    # still finds its item; other text keeps its spelling.
    texts = spark.createDataFrame([(" 10.0 ",), ("10.50",), ("-3.00",), ("v1.0",), ("1.0.0",)], "item_id string")
    got = {r["raw_item_id"]: r["item_id"] for r in tag_items(rename_to_canonical(texts, {}, ITEM_COLUMNS)).collect()}
    assert got == {" 10.0 ": "10", "10.50": "10.50", "-3.00": "-3", "v1.0": "v1.0", "1.0.0": "1.0.0"}


def test_ids_lose_edge_whitespace_of_every_kind_and_blank_ids_are_null(spark):
    rows = [
        ("\tu1\n", " i1\u00a0", "view", None, "881250949", None),
        ("\t\n", "i1", "view", None, "881250949", None),
        ("u1", "\t", "view", None, "881250949", None),
    ]
    got = [
        (r["user_id"], r["item_id"], r[REASON])
        for r in tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1, 5).collect()
    ]
    assert sorted(got, key=str) == sorted(
        [("u1", "i1", None), (None, "i1", "null_user_id"), ("u1", None, "null_item_id")], key=str
    )
    items = spark.createDataFrame([("\t\n", "Blank")], "item_id string, title string")
    assert tag_items(rename_to_canonical(items, {}, ITEM_COLUMNS)).first()[REASON] == "null_item_id"


EPOCH = dt.datetime(1970, 1, 1)
S, MS, US = 881250949, 881250949123, 881250949123456  # one instant, 1997-12-04 15:55:49.123456, in three units
NS = US * 1000


def at(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)


@pytest.mark.parametrize(
    "unit, expected",
    [
        ("auto", [at(S * 10**6), at(MS * 1000), at(US), at(US), at(10**14)]),
        ("seconds", [at(S * 10**6), None, None, None, None]),
        ("milliseconds", [at(S * 1000), at(MS * 1000), None, None, at(10**14)]),
        ("microseconds", [at(S), at(MS), at(US), None, at(10**11)]),
        ("nanoseconds", [at(881251), at(S), at(MS), at(US), at(10**8)]),
    ],
)
def test_numeric_ts_is_epoch_time_in_its_unit_or_by_size(spark, unit, expected):
    values = [S, MS, US, NS, 10**11]  # 1e11 is ms in auto (too big as s); each unit has a year-5138 ceiling
    for dtype, cast in (("bigint", int), ("string", str)):
        rows = [("u1", f"i{n}", "view", None, cast(v), None) for n, v in enumerate(values)]
        raw = spark.createDataFrame(
            rows, f"user_id string, item_id string, event_type string, rating double, ts {dtype}, text string"
        )
        got = {r["item_id"]: r["ts"] for r in tag_behaviors(raw, EVENTS, 1.0, 5.0, ts_unit=unit).collect()}
        assert [got[f"i{n}"] for n in range(len(values))] == expected, dtype


def test_unknown_items_are_flagged_and_rejected_only_on_request(spark):
    rows = [
        ("u1", "i1", "view", None, "881250949", None),
        ("u1", "zz", "view", None, "881250949", None),
        (None, "zz", "view", None, "881250949", None),
    ]
    tagged = tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1.0, 5.0)
    known = spark.createDataFrame([("i1",), ("i1",)], "item_id string")  # duplicates must not duplicate behaviours

    def outcome(reject):
        return sorted(
            ((r["item_id"], r[REASON], r[UNKNOWN_ITEM]) for r in tag_unknown_items(tagged, known, reject).collect()),
            key=str,
        )

    assert outcome(False) == sorted([("i1", None, False), ("zz", None, True), ("zz", "null_user_id", False)], key=str)
    assert outcome(True) == sorted(
        [("i1", None, False), ("zz", "unknown_item", True), ("zz", "null_user_id", False)], key=str
    )


def test_text_ts_in_a_given_pattern_and_behaviours_after_latest_are_future_ts(spark):
    rows = [
        ("u1", "i1", "view", None, "01.03.2024 07:00", None),  # day first, as the pattern says
        ("u1", "i2", "view", None, "2024-03-01T07:00:00", None),  # ISO, but not the given pattern
        ("u1", "i3", "view", None, "20240301", None),  # digits: under a pattern not an epoch
        ("u1", "i4", "view", None, "01.03.2124 07:00", None),  # a century ahead
    ]
    latest = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    tagged = tag_behaviors(raw_behaviors(spark, rows), EVENTS, 1.0, 5.0, ts_format="dd.MM.yyyy HH:mm", latest=latest)
    got = {r["item_id"]: (r["ts"], r[REASON]) for r in tagged.collect()}
    assert got == {
        "i1": (dt.datetime(2024, 3, 1, 7), None),
        "i2": (None, "invalid_ts"),
        "i3": (None, "invalid_ts"),
        "i4": (dt.datetime(2124, 3, 1, 7), "future_ts"),
    }
    epoch_2100 = raw_behaviors(spark, [("u1", "i5", "view", None, "4102444800", None)])
    assert [r[REASON] for r in tag_behaviors(epoch_2100, EVENTS, 1.0, 5.0, latest=latest).collect()] == ["future_ts"]
    assert [r[REASON] for r in tag_behaviors(epoch_2100, EVENTS, 1.0, 5.0).collect()] == [None]
