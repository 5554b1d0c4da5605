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
