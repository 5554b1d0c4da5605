"""Input contract checks: map source columns to the canonical names, then tag every bad row with a reason.

Pure `DataFrame -> DataFrame` transforms. `check_columns` fails fast, before any Spark action, naming the table and
the missing column. `tag_behaviors` / `tag_items` add a `reason` column (null for good rows) instead of dropping
anything, so the ingest job can write good rows and rejected rows and reconcile `read = written + rejected`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from behaviorlm.errors import InputContractError
from behaviorlm.schemas import REASON

# Numeric timestamps are epoch seconds; beyond this they are garbage (and would overflow timestamp_seconds).
_MAX_EPOCH_SECONDS = 1e11



def check_columns(df: DataFrame, table: str, mapping: dict[str, str], required: list[str]) -> None:
    """Raise `InputContractError` if a required canonical column's source column is missing from `df`."""
    present = set(df.columns)
    for canonical in required:
        source = mapping.get(canonical, canonical)
        if source not in present:
            raise InputContractError(
                f"table {table!r}: required column {source!r} (canonical {canonical!r}) is missing; "
                f"columns present: {sorted(present)}"
            )


def rename_to_canonical(df: DataFrame, mapping: dict[str, str], canonical: list[str]) -> DataFrame:
    """Select `canonical` columns from their mapped source names; absent optional columns become null."""
    present = set(df.columns)
    return df.select(
        [
            F.col(f"`{mapping.get(c, c)}`").alias(c) if mapping.get(c, c) in present else F.lit(None).alias(c)
            for c in canonical
        ]
    )


def _blank_to_null(c: Column) -> Column:
    trimmed = F.trim(c.cast("string"))
    return F.when(trimmed == "", None).otherwise(trimmed)


def _parse_ts(c: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        return c.cast("timestamp")
    seconds = c.cast("double") if isinstance(dtype, T.NumericType) else c.try_cast("double")
    from_epoch = F.when(F.abs(seconds) < _MAX_EPOCH_SECONDS, F.timestamp_seconds(seconds))
    if isinstance(dtype, T.NumericType):
        return from_epoch
    return F.coalesce(F.try_to_timestamp(c.cast("string")), from_epoch)


def _parse_number(c: Column, dtype: T.DataType, to: str) -> Column:
    parsed = c.cast(to) if isinstance(dtype, T.NumericType) else c.try_cast(to)
    return F.when(~F.isnan(parsed.cast("double")), parsed) if to == "double" else parsed


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The first failing check's reason, else null."""
    reason: Column = F.lit(None).cast("string")
    for failed, name in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return reason


def tag_behaviors(
    raw: DataFrame,
    event_types: list[str],
    rating_min: float,
    rating_max: float,
) -> DataFrame:
    """Typed canonical behaviours plus a `reason` column (null = valid) and `raw_*` text copies for quarantine.

    Reasons, first match wins: null_user_id, null_item_id, unknown_event_type, invalid_ts, invalid_rating,
    missing_rating (a `rating` event without one), rating_out_of_range, duplicate_event (same user, item, event
    type and timestamp as an earlier valid row; the row with the highest rating, then text, is kept).
    """
    types = {f.name: f.dataType for f in raw.schema.fields}
    user = _blank_to_null(F.col("user_id"))
    item = _blank_to_null(F.col("item_id"))
    event = F.lower(_blank_to_null(F.col("event_type")))
    ts = _parse_ts(F.col("ts"), types["ts"])
    rating = _parse_number(F.col("rating"), types["rating"], "double")
    typed = raw.select(
        *[F.col(c).cast("string").alias(f"raw_{c}") for c in raw.columns],
        user.alias("user_id"),
        item.alias("item_id"),
        event.alias("event_type"),
        rating.alias("rating"),
        ts.alias("ts"),
        F.col("text").cast("string").alias("text"),
    )
    reason = _first_reason(
        [
            (F.col("user_id").isNull(), "null_user_id"),
            (F.col("item_id").isNull(), "null_item_id"),
            (F.col("event_type").isNull() | ~F.col("event_type").isin(event_types), "unknown_event_type"),
            (F.col("ts").isNull(), "invalid_ts"),
            (F.col("raw_rating").isNotNull() & F.col("rating").isNull(), "invalid_rating"),
            ((F.col("event_type") == "rating") & F.col("rating").isNull(), "missing_rating"),
            (~F.col("rating").between(rating_min, rating_max), "rating_out_of_range"),
        ]
    )
    tagged = typed.withColumn(REASON, reason)
    key = ["user_id", "item_id", "event_type", "ts"]
    order = Window.partitionBy(*key).orderBy(F.col("rating").desc_nulls_last(), F.col("text").asc_nulls_last())
    rank = F.when(F.col(REASON).isNull(), F.row_number().over(order))
    return tagged.withColumn(REASON, F.when(rank > 1, F.lit("duplicate_event")).otherwise(F.col(REASON)))


def tag_items(raw: DataFrame, genre_separator: str = r"[|,]") -> DataFrame:
    """Typed canonical items plus `reason` (null = valid) and `raw_*` text copies.

    `genres` may arrive as an array or as text separated by `|` or `,`. Reasons: null_item_id, invalid_year,
    duplicate_item (the first by title is kept).
    """
    types = {f.name: f.dataType for f in raw.schema.fields}
    if isinstance(types["genres"], T.ArrayType):
        genres = F.col("genres").cast("array<string>")
    else:
        genres = F.split(_blank_to_null(F.col("genres")), genre_separator)
    genres = F.filter(F.transform(genres, lambda g: F.trim(g)), lambda g: g != "")
    genres = F.when(F.size(genres) > 0, genres)
    year = _parse_number(F.col("year"), types["year"], "int")
    typed = raw.select(
        *[F.col(c).cast("string").alias(f"raw_{c}") for c in raw.columns],
        _blank_to_null(F.col("item_id")).alias("item_id"),
        F.col("title").cast("string").alias("title"),
        F.col("description").cast("string").alias("description"),
        genres.alias("genres"),
        year.alias("year"),
    )
    reason = _first_reason(
        [
            (F.col("item_id").isNull(), "null_item_id"),
            (F.col("raw_year").isNotNull() & F.col("year").isNull(), "invalid_year"),
        ]
    )
    tagged = typed.withColumn(REASON, reason)
    order = Window.partitionBy("item_id").orderBy(F.col("title").asc_nulls_last(), F.col("year").asc_nulls_last())
    rank = F.when(F.col(REASON).isNull(), F.row_number().over(order))
    return tagged.withColumn(REASON, F.when(rank > 1, F.lit("duplicate_item")).otherwise(F.col(REASON)))


def accepted(tagged: DataFrame, schema: T.StructType) -> DataFrame:
    """The valid rows, in the canonical schema."""
    return tagged.where(F.col(REASON).isNull()).select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def rejected(tagged: DataFrame, raw_columns: list[str]) -> DataFrame:
    """The bad rows: their original values as text plus `reason`."""
    return tagged.where(F.col(REASON).isNotNull()).select(
        *[F.col(f"raw_{c}").alias(c) for c in raw_columns], F.col(REASON)
    )
