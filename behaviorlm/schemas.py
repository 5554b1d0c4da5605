"""Canonical table schemas: the input contract every source is mapped to, and the rejected-rows tables.

Columns are nullable in the Delta schema (Spark cannot prove non-nullness after a filter); the REQUIRED_* lists are
the contract, enforced by `behaviorlm.validate`, which routes rows with a null required value to the rejected table.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

BEHAVIOR_COLUMNS = ["user_id", "item_id", "event_type", "rating", "ts", "text"]
ITEM_COLUMNS = ["item_id", "title", "description", "genres", "year"]
REQUIRED_BEHAVIOR_COLUMNS = ["user_id", "item_id", "event_type", "ts"]
REQUIRED_ITEM_COLUMNS = ["item_id", "title"]
REASON = "reason"
# Flag column on tagged behaviours: an otherwise-valid event whose item is not in the catalogue. Also the reason such
# events get when `ingest.unknown_items` is `reject`.
UNKNOWN_ITEM = "unknown_item"

# Source column types the contract accepts, per canonical column; anything else (struct, map, binary, an array where
# a scalar belongs) fails before any Spark action instead of surfacing as a cast error or as "{1, x}"-like text.
# Kinds: string (also char/varchar), numeric (integral, float, double, decimal), timestamp (timestamp,
# timestamp_ntz, date), array (of strings or numbers). A column of type void (all null, or absent) always passes.
SOURCE_TYPES: dict[str, tuple[str, ...]] = {
    "user_id": ("string", "numeric"),
    "item_id": ("string", "numeric"),
    "event_type": ("string", "numeric"),
    "rating": ("numeric", "string"),
    "ts": ("numeric", "string", "timestamp"),
    "text": ("string", "numeric"),
    "title": ("string", "numeric"),
    "description": ("string", "numeric"),
    "genres": ("array", "string"),
    "year": ("numeric", "string"),
}

BEHAVIORS = StructType(
    [
        StructField("user_id", StringType(), True),
        StructField("item_id", StringType(), True),
        StructField("event_type", StringType(), True),
        StructField("rating", DoubleType(), True),
        StructField("ts", TimestampType(), True),
        StructField("text", StringType(), True),
    ]
)

ITEMS = StructType(
    [
        StructField("item_id", StringType(), True),
        StructField("title", StringType(), True),
        StructField("description", StringType(), True),
        StructField("genres", ArrayType(StringType()), True),
        StructField("year", IntegerType(), True),
    ]
)


def rejected_schema(columns: list[str]) -> StructType:
    """Rejected rows keep every input value as text (it may not parse) plus the reason."""
    return StructType([StructField(c, StringType(), True) for c in columns] + [StructField(REASON, StringType(), True)])


# The setting a user most likely has to change when rows are rejected for this reason.
REASON_HINTS = {
    "rating_out_of_range": "ingest.rating_min / ingest.rating_max set the scale",
    "invalid_ts": "ingest.ts_format reads text dates, ingest.ts_unit numeric ones",
    "future_ts": "a numeric ts may be in another ingest.ts_unit",
    "early_ts": "digits such as 20240501 are epoch seconds unless ingest.ts_format says yyyyMMdd; "
    "ingest.earliest_ts=null accepts any date",
    "unknown_event_type": "ingest.event_types lists the accepted types",
    "unknown_item": "ingest.unknown_items=keep keeps them",
}
