"""Input contract checks: map source columns to the canonical names, then tag every bad row with a reason.

Pure `DataFrame -> DataFrame` transforms. `check_columns` and `check_types` fail fast, before any Spark action,
naming the table and the offending column. `tag_behaviors` / `tag_items` add a `reason` column (null for good rows)
instead of dropping anything, so the ingest job can write good rows and rejected rows and reconcile
`read = written + rejected`.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from behaviorlm.errors import InputContractError
from behaviorlm.schemas import REASON, SOURCE_TYPES, UNKNOWN_ITEM
from behaviorlm.text import clean_text

# Epoch timestamps beyond this many seconds (year ~5138) are garbage and would overflow the timestamp type.
_MAX_EPOCH_SECONDS = 1e11
# Microseconds per unit of a numeric ts. With ts_unit=auto the unit is the coarsest that keeps the value below
# _MAX_EPOCH_SECONDS: from 1e11 milliseconds, from 1e14 microseconds, from 1e17 nanoseconds (each a date from 1973 on).
_MICROS_PER = {"seconds": 1e6, "milliseconds": 1e3, "microseconds": 1.0, "nanoseconds": 1e-3}
TS_UNITS = ("auto", *_MICROS_PER)
# Doubles are exact integers only up to 2**53; a larger "integral" double is not a trustworthy id, so keep its text.
_MAX_EXACT_DOUBLE = 2.0**53
# Leading/trailing whitespace of any kind: tabs, newlines, no-break and other Unicode spaces.
_EDGE_SPACE = r"^[\s\p{Z}]+|[\s\p{Z}]+$"

# What a source without one of the required columns can do instead.
_MISSING_HINTS = {
    "event_type": "; a log of one kind of behaviour can set ingest.default_event_type (e.g. click)",
    "title": "; a catalogue of ids only can set ingest.item_columns.title=item_id",
}

_KIND_NAMES = {
    "string": "string",
    "numeric": "numeric (tinyint, smallint, int, bigint, float, double, decimal)",
    "timestamp": "timestamp, timestamp_ntz, date",
    "array": "array of strings or numbers",
}


def check_columns(
    df: DataFrame,
    table: str,
    mapping: dict[str, str],
    required: list[str],
    setting: str = "",
    options: str = "ingest.source_options",
) -> None:
    """Raise `InputContractError` if the source column of a required canonical column is missing from `df`, or that
    of an optional one `setting` maps to another name: a mapping names a column on purpose, so a misspelt one must
    not read as a column the source lacks (every value null, silently). A header read as one column is said to
    want the separator set in `options`, the setting that holds this source's reader options."""
    present = set(df.columns)
    mapped = [c for c, source in mapping.items() if source != c and c not in required]
    for canonical in [*required, *mapped]:
        source = mapping.get(canonical, canonical)
        if source in present:
            continue
        what = f"required column {source!r} (canonical {canonical!r})"
        if canonical not in required:
            what = f"column {source!r}, which {setting or 'the mapping'}.{canonical} names,"
        near = [p for p in sorted(present) if p.strip().lower() == source.strip().lower()]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        hint += _separator_hint(present, options) or _MISSING_HINTS.get(canonical, "")
        raise InputContractError(f"table {table!r}: {what} is missing; columns present: {sorted(present)}{hint}")


def _separator_hint(present: set[str], options: str) -> str:
    """A hint when a delimited file's header was read as one column: its separator is not the reader's."""
    if len(present) != 1:
        return ""
    (name,) = present
    # A comma: the reader was given another separator (the behaviours' own, applied to a comma catalogue).
    seps = [sep for sep in (";", "\t", "|", ",") if sep in name]
    return f"; the header reads as one column: set {options}.sep={seps[0]!r}" if seps else ""


def with_default(df: DataFrame, column: str, value: str | None) -> DataFrame:
    """`df` with `column` set to `value` on every row, when it has no such column and a value is given."""
    if value is None or column in df.columns:
        return df
    return df.withColumn(column, F.lit(value))


def _is_kind(dtype: T.DataType, kind: str) -> bool:
    if kind == "string":
        return isinstance(dtype, (T.StringType, T.CharType, T.VarcharType))
    if kind == "numeric":
        return isinstance(dtype, T.NumericType)
    if kind == "timestamp":
        return isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType))
    if kind == "array":
        return isinstance(dtype, T.ArrayType) and (
            _is_kind(dtype.elementType, "string") or _is_kind(dtype.elementType, "numeric")
        )
    raise ValueError(f"unknown column kind {kind!r}")


def check_types(df: DataFrame, table: str, mapping: dict[str, str] | None = None) -> None:
    """Raise `InputContractError` if a canonical column of `df` has a type the input contract does not accept.

    Args:
        df: a frame with canonical column names (after `rename_to_canonical`).
        table: the source, named in the message.
        mapping: canonical -> source column names, so the message names the column the user knows.
    """
    mapping = mapping or {}
    for field in df.schema.fields:
        kinds = SOURCE_TYPES.get(field.name)
        if kinds is None or isinstance(field.dataType, T.NullType):
            continue
        if not any(_is_kind(field.dataType, k) for k in kinds):
            source = mapping.get(field.name, field.name)
            raise InputContractError(
                f"table {table!r}: column {source!r} (canonical {field.name!r}) has type "
                f"{field.dataType.simpleString()}; accepted types: {'; '.join(_KIND_NAMES[k] for k in kinds)}"
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
    trimmed = F.regexp_replace(c.cast("string"), _EDGE_SPACE, "")
    return F.when(trimmed != "", trimmed)


def parse_id(c: Column, dtype: T.DataType) -> Column:
    """Ids as trimmed text; an integral float or decimal loses its fraction (123.0 -> "123"), and so does text
    holding one ("123.0": pandas writes an int column with gaps as floats, so a CSV of behaviours would name items
    the catalogue calls "123"); NaN/inf -> null."""
    # Both branches are cast to text: a `when` over bigint and double would coerce the bigint back to 123.0.
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        integral = (c == F.floor(c)) & (F.abs(c) < _MAX_EXACT_DOUBLE)
        text = F.when(integral, F.floor(c).cast("string")).otherwise(c.cast("string"))
        c = F.when(~F.isnan(c) & (F.abs(c) != float("inf")), text)
    elif isinstance(dtype, T.DecimalType):
        c = F.when(c == F.floor(c), F.floor(c).cast("string")).otherwise(c.cast("string"))
    elif isinstance(dtype, T.StringType):
        return F.regexp_replace(_blank_to_null(c), r"^(-?\d+)\.0+$", "$1")
    return _blank_to_null(c)


def _epoch(number: Column, unit: str) -> Column:
    """Epoch time in `unit` to a timestamp (auto: the unit by magnitude, see _MICROS_PER); out of range -> null."""
    if unit == "auto":
        scale = F.lit(1e6)
        for name, threshold in (("milliseconds", 1e11), ("microseconds", 1e14), ("nanoseconds", 1e17)):
            scale = F.when(F.abs(number) >= threshold, F.lit(_MICROS_PER[name])).otherwise(scale)
    else:
        scale = F.lit(_MICROS_PER[unit])
    # Scale straight to whole microseconds (exact for integral input) instead of going through fractional seconds.
    micros = number * scale
    return F.when(F.abs(micros) < _MAX_EPOCH_SECONDS * 1e6, F.timestamp_micros(F.round(micros).cast("long")))


def _parse_ts(c: Column, dtype: T.DataType, unit: str, pattern: str | None = None) -> Column:
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType, T.NullType)):
        return c.cast("timestamp")
    if isinstance(dtype, T.NumericType):
        return _epoch(c.cast("double"), unit)
    if pattern:  # text in the given pattern only: "20240306" in yyyyMMdd is a date, not an epoch
        return F.try_to_timestamp(c.cast("string"), F.lit(pattern))
    # Text holding a number is an epoch like a numeric column ("2024" is 2024 s, not a year); other text is a date.
    number = c.try_cast("double")
    return F.when(number.isNotNull(), _epoch(number, unit)).otherwise(F.try_to_timestamp(c.cast("string")))


def _parse_number(c: Column, dtype: T.DataType, to: str) -> Column:
    parsed = c.cast("double") if isinstance(dtype, T.NumericType) else c.try_cast("double")
    if to == "int":  # whole numbers only, "1995.0" included: pandas writes an int column with gaps as floats
        whole = (parsed == F.floor(parsed)) & (F.abs(parsed) < 2.0**31)
        return F.when(whole, parsed.cast("int"))
    return F.when(~F.isnan(parsed), parsed.cast(to))


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The first failing check's reason, else null."""
    reason: Column = F.lit(None).cast("string")
    for failed, name in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return reason


def _mark_duplicates(tagged: DataFrame, key: list[str], order: list[Column], reason: str) -> DataFrame:
    """Every valid row after the first of its key gets `reason`. Invalid rows are ranked apart, so a bad row that
    sorts first (a rating of 9, say) never pushes the valid one of its key out as a duplicate."""
    valid = F.col(REASON).isNull()
    window = Window.partitionBy(*[F.col(k) for k in key], valid).orderBy(*order)
    rank = F.when(valid, F.row_number().over(window))
    return tagged.withColumn(REASON, F.when(rank > 1, F.lit(reason)).otherwise(F.col(REASON)))


def _typed_behaviors(raw: DataFrame, ts_unit: str, ts_format: str | None) -> DataFrame:
    types = {f.name: f.dataType for f in raw.schema.fields}
    return raw.select(
        *[F.col(c).cast("string").alias(f"raw_{c}") for c in raw.columns],
        parse_id(F.col("user_id"), types["user_id"]).alias("user_id"),
        parse_id(F.col("item_id"), types["item_id"]).alias("item_id"),
        F.lower(_blank_to_null(F.col("event_type"))).alias("event_type"),
        _parse_number(F.col("rating"), types["rating"], "double").alias("rating"),
        _parse_ts(F.col("ts"), types["ts"], ts_unit, ts_format).alias("ts"),
        F.col("text").cast("string").alias("text"),
    )


def tag_behaviors(
    raw: DataFrame,
    event_types: list[str],
    rating_min: float,
    rating_max: float,
    ts_unit: str = "auto",
    ts_format: str | None = None,
    latest: datetime | None = None,
    earliest: date | None = None,
) -> DataFrame:
    """Typed canonical behaviours plus a `reason` column (null = valid) and `raw_*` text copies for quarantine.

    Ids are text with all edge whitespace trimmed (blank = null); integral float/decimal ids lose their `.0`.
    A numeric `ts` (or text holding a number) is epoch time in `ts_unit` (seconds, milliseconds, microseconds,
    nanoseconds) or, with `auto`, in milliseconds from 1e11, microseconds from 1e14 and nanoseconds from 1e17 on;
    other text is parsed as a date-time, in the Spark datetime pattern `ts_format` when one is given. Reasons,
    first match wins: null_user_id, null_item_id, unknown_event_type, invalid_ts, early_ts (before `earliest`, when
    given), future_ts (after `latest`, when given), invalid_rating, missing_rating (a `rating` event without one),
    rating_out_of_range, duplicate_event
    (same user, item, event type and timestamp as another valid row; the row with the highest rating, then text,
    is kept). `tag_unknown_items` may then add unknown_item.

    Raises:
        InputContractError: a column has a type the contract does not accept (e.g. a struct id, an array ts).
        ValueError: `ts_unit` is not one of TS_UNITS.
    """
    if ts_unit not in TS_UNITS:
        raise ValueError(f"ts_unit must be one of {TS_UNITS}, got {ts_unit!r}")
    check_types(raw, "behaviors")
    typed = _typed_behaviors(raw, ts_unit, ts_format)
    future = F.col("ts") > F.lit(latest) if latest is not None else F.lit(False)
    early = F.col("ts") < F.lit(earliest) if earliest is not None else F.lit(False)
    reason = _first_reason(
        [
            (F.col("user_id").isNull(), "null_user_id"),
            (F.col("item_id").isNull(), "null_item_id"),
            (F.col("event_type").isNull() | ~F.col("event_type").isin(event_types), "unknown_event_type"),
            (F.col("ts").isNull(), "invalid_ts"),
            (early, "early_ts"),
            (future, "future_ts"),
            (_blank_to_null(F.col("raw_rating")).isNotNull() & F.col("rating").isNull(), "invalid_rating"),
            ((F.col("event_type") == "rating") & F.col("rating").isNull(), "missing_rating"),
            (~F.col("rating").between(rating_min, rating_max), "rating_out_of_range"),
        ]
    )
    order = [F.col("rating").desc_nulls_last(), F.col("text").asc_nulls_last()]
    key = ["user_id", "item_id", "event_type", "ts"]
    return _mark_duplicates(typed.withColumn(REASON, reason), key, order, "duplicate_event")


def tag_unknown_items(tagged: DataFrame, known_items: DataFrame, reject: bool = False) -> DataFrame:
    """Flag otherwise-valid behaviours whose `item_id` is not in `known_items` (boolean column `unknown_item`, for
    counting); with `reject` they also get reason `unknown_item`. Rows already rejected are left as they are."""
    known = known_items.select(F.col("item_id").alias("_known_item_id")).distinct()
    joined = tagged.join(known, F.col("item_id") == F.col("_known_item_id"), "left")
    flagged = joined.withColumn(UNKNOWN_ITEM, F.col(REASON).isNull() & F.col("_known_item_id").isNull())
    if reject:
        flagged = flagged.withColumn(
            REASON, F.when(F.col(UNKNOWN_ITEM), F.lit("unknown_item")).otherwise(F.col(REASON))
        )
    return flagged.drop("_known_item_id")


def tag_items(raw: DataFrame, genre_separator: str = r"[|,]") -> DataFrame:
    """Typed canonical items plus `reason` (null = valid) and `raw_*` text copies.

    `genres` may arrive as an array or as text separated by `|` or `,`. Ids are normalised as in `tag_behaviors`.
    Reasons: null_item_id, invalid_year, duplicate_item (among valid rows of an id, the first by title is kept).

    Raises:
        InputContractError: a column has a type the contract does not accept.
    """
    check_types(raw, "items")
    types = {f.name: f.dataType for f in raw.schema.fields}
    if isinstance(types["genres"], T.ArrayType):
        genres = F.col("genres").cast("array<string>")
    else:
        # A JSON source whose rows hold an array in some rows and text in others is read as text throughout: an
        # array's text ('["Action","Comedy"]') is parsed back, anything else split on the separator.
        text = _blank_to_null(F.col("genres"))
        as_json = F.when(text.startswith("["), F.from_json(text, "array<string>"))
        genres = F.coalesce(as_json, F.split(text, genre_separator))
    genres = F.filter(F.transform(genres, lambda g: F.trim(g)), lambda g: g != "")
    genres = F.when(F.size(genres) > 0, genres)
    year = _parse_number(F.col("year"), types["year"], "int")
    typed = raw.select(
        *[F.col(c).cast("string").alias(f"raw_{c}") for c in raw.columns],
        parse_id(F.col("item_id"), types["item_id"]).alias("item_id"),
        clean_text(F.col("title")).alias("title"),
        clean_text(F.col("description")).alias("description"),
        genres.alias("genres"),
        year.alias("year"),
    )
    reason = _first_reason(
        [
            (F.col("item_id").isNull(), "null_item_id"),
            (F.col("raw_year").isNotNull() & F.col("year").isNull(), "invalid_year"),
        ]
    )
    order = [F.col("title").asc_nulls_last(), F.col("year").asc_nulls_last()]
    return _mark_duplicates(typed.withColumn(REASON, reason), ["item_id"], order, "duplicate_item")


def accepted(tagged: DataFrame, schema: T.StructType) -> DataFrame:
    """The valid rows, in the canonical schema."""
    return tagged.where(F.col(REASON).isNull()).select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def rejected(tagged: DataFrame, raw_columns: list[str]) -> DataFrame:
    """The bad rows: their original values as text plus `reason`."""
    return tagged.where(F.col(REASON).isNotNull()).select(
        *[F.col(f"raw_{c}").alias(c) for c in raw_columns], F.col(REASON)
    )
