"""Item text: render each item's text from a template of `{column}` entries, hash it, and fill behaviour rows that
carry no text of their own with their item's text."""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import ITEM_COL
from behaviorlm.errors import ConfigError

FIELD = re.compile(r"\{(\w+)\}")
# Runs of whitespace of any kind: tabs, newlines, no-break and other Unicode spaces (Spark's trim strips spaces only).
SPACES = r"[\s\p{Z}]+"
NAME_WIDTH = 80  # characters of a title inside a reason or a label; longer ones end in "…"


def clean_text(c: Column) -> Column:
    """Text with every whitespace run made one space and the edges trimmed; null where nothing is left."""
    cleaned = F.trim(F.regexp_replace(c.cast("string"), SPACES, " "))
    return F.when(cleaned != "", cleaned)


def short_name(c: Column, width: int = NAME_WIDTH) -> Column:
    """`c` cut to `width` characters, the last an ellipsis, where it is longer: a 20,000-character title must not
    make a 40,000-character reason."""
    return F.when(F.length(c) > width, F.concat(F.substring(c, 1, width - 1), F.lit("…"))).otherwise(c)


def _field_text(items: DataFrame, name: str) -> Column:
    if name not in items.columns:
        raise ConfigError(f"embed.item_fields names {{{name}}}, but table 'items' has no such column: {items.columns}")
    col = F.col(name)
    if dict(items.dtypes)[name].startswith("array"):
        return F.when(F.size(col) > 0, F.array_join(col, ", "))
    return clean_text(col)


def render_template(items: DataFrame, entry: str) -> Column:
    """One template entry as a column: null unless every {field} in it has a value (concat is null-propagating)."""
    parts: list[Column] = []
    pos = 0
    for match in FIELD.finditer(entry):
        parts += [F.lit(entry[pos : match.start()]), _field_text(items, match.group(1))]
        pos = match.end()
    parts.append(F.lit(entry[pos:]))
    return F.concat(*parts)


def item_texts(items: DataFrame, fields: list[str], empty_text: str, item_col: str = ITEM_COL) -> DataFrame:
    """(item_id, text, text_hash, fallback): the rendered text, its SHA-256, and whether `empty_text` was used."""
    rendered = F.trim(F.concat_ws(" ", *[render_template(items, f) for f in fields]))
    return (
        items.select(F.col(item_col).alias("item_id"), rendered.alias("_text"))
        .select(
            "item_id",
            F.when(F.col("_text") != "", F.col("_text")).otherwise(F.lit(empty_text)).alias("text"),
            (F.col("_text") == "").alias("fallback"),
        )
        .withColumn("text_hash", F.sha2(F.col("text"), 256))
    )


def fill_texts(behaviors: DataFrame, items: DataFrame, fields: list[str], empty_text: str) -> DataFrame:
    """Behaviour rows with a missing/blank `text`, filled from the item catalogue text or given a reason."""
    texts = item_texts(items, fields, empty_text).select("item_id", F.col("text").alias("_t"), "fallback")
    missing = behaviors.where(F.col("text").isNull() | (F.trim("text") == ""))
    joined = missing.drop("text").join(texts, "item_id", "left")
    reason = F.when(F.col("_t").isNull(), "item_not_in_catalogue").when(F.col("fallback"), "item_has_no_text")
    return joined.select(
        "user_id",
        "item_id",
        "event_type",
        "ts",
        F.when(reason.isNull(), F.col("_t")).alias("text"),
        F.when(reason.isNull(), "item_catalogue_text").alias("method"),
        reason.alias("reason"),
    )


def display_titles(items: DataFrame, item_col: str = ITEM_COL, title_col: str = "title") -> DataFrame:
    """(`item_col`, `title_col`): what reasons and examples name an item by, its id where the title is null or
    blank (a reason must never read "because you chose "), cut to NAME_WIDTH characters."""
    named = F.coalesce(short_name(clean_text(F.col(title_col))), F.col(item_col).cast("string"))
    return items.select(item_col, named.alias(title_col))
