"""MovieLens-100K readers: RecBole's atomic files (`ml-100k.inter`, `ml-100k.item`) or GroupLens' `u.data`/`u.item`.

Both return raw frames with the canonical column names (values still text where the files are text), ready for
`behaviorlm.validate`. Every rating becomes an event of type `rating`; the genre `unknown` means no genre (null).
Known defects of the shipped files are repaired here, not rejected: RecBole's item 1412 has its year inside the
title and `V` as year, and the placeholder item 267 has `unkonwn` as year; a title's trailing `(yyyy)` becomes the
year when the year column has none.
Reading goes through Spark, so the folder may be local, DBFS or object storage.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm.delta import path_exists
from behaviorlm.errors import BehaviorLMError
from behaviorlm.schemas import BEHAVIOR_COLUMNS, ITEM_COLUMNS

GROUPLENS_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


class MovieLensNotFoundError(BehaviorLMError, FileNotFoundError):
    """The folder holds neither RecBole's nor GroupLens' MovieLens-100K files."""


def _csv(spark: SparkSession, path: str, sep: str, header: bool, encoding: str = "UTF-8") -> DataFrame:
    # quote="" turns quoting off: titles contain quote characters that are data, not CSV syntax.
    return (
        spark.read.option("sep", sep)
        .option("header", str(header).lower())
        .option("quote", "")
        .option("encoding", encoding)
        .csv(path)
    )


def _genre_array(genres):
    kept = F.filter(genres, lambda g: g != "unknown")
    return F.when(F.size(kept) > 0, kept)


def _title_and_year(title: Column, year: Column) -> tuple[Column, Column]:
    in_title = F.regexp_extract(title, r"\((\d{4})\)\s*$", 1)
    clean_year = F.when(year.rlike(r"^\d{4}$"), year).when(in_title != "", in_title)
    clean_title = F.trim(F.regexp_replace(title, r"\s*\(\d{4}\)\s*$", ""))
    return clean_title.alias("title"), clean_year.alias("year")


def read_recbole(spark: SparkSession, folder: str) -> tuple[DataFrame, DataFrame]:
    inter = _csv(spark, f"{folder}/ml-100k.inter", "\t", True)
    inter = inter.toDF(*[c.split(":")[0] for c in inter.columns])
    behaviors = inter.select(
        F.col("user_id"),
        F.col("item_id"),
        F.lit("rating").alias("event_type"),
        F.col("rating"),
        F.col("timestamp").alias("ts"),
        F.lit(None).cast("string").alias("text"),
    )
    item = _csv(spark, f"{folder}/ml-100k.item", "\t", True)
    item = item.toDF(*[c.split(":")[0] for c in item.columns])
    title, year = _title_and_year(F.col("movie_title"), F.col("release_year"))
    items = item.select(
        F.col("item_id"),
        title,
        F.lit(None).cast("string").alias("description"),
        _genre_array(F.split(F.trim(F.col("class")), " ")).alias("genres"),
        year,
    )
    return behaviors.select(BEHAVIOR_COLUMNS), items.select(ITEM_COLUMNS)


def read_grouplens(spark: SparkSession, folder: str) -> tuple[DataFrame, DataFrame]:
    data = _csv(spark, f"{folder}/u.data", "\t", False).toDF("user_id", "item_id", "rating", "ts")
    behaviors = data.select(
        "user_id",
        "item_id",
        F.lit("rating").alias("event_type"),
        "rating",
        "ts",
        F.lit(None).cast("string").alias("text"),
    )
    # u.item is Latin-1: id | title (year) | release date | video date | url | 19 genre flags.
    raw = _csv(spark, f"{folder}/u.item", "|", False, encoding="ISO-8859-1")
    raw = raw.toDF("item_id", "title", "release", "video", "url", *GROUPLENS_GENRES)
    flagged = F.array(*[F.when(F.col(f"`{g}`") == "1", F.lit(g)) for g in GROUPLENS_GENRES])
    title, year = _title_and_year(F.col("title"), F.regexp_extract("release", r"(\d{4})$", 1))
    items = raw.select(
        F.col("item_id"),
        title,
        F.lit(None).cast("string").alias("description"),
        _genre_array(F.filter(flagged, lambda g: g.isNotNull())).alias("genres"),
        year,
    )
    return behaviors.select(BEHAVIOR_COLUMNS), items.select(ITEM_COLUMNS)


def read_movielens(spark: SparkSession, folder: str) -> tuple[DataFrame, DataFrame]:
    """Raw (behaviors, items) from whichever MovieLens-100K layout `folder` holds."""
    if path_exists(spark, f"{folder}/ml-100k.inter"):
        return read_recbole(spark, folder)
    if path_exists(spark, f"{folder}/u.data"):
        return read_grouplens(spark, folder)
    raise MovieLensNotFoundError(
        f"ingest.path {folder!r} holds neither ml-100k.inter/ml-100k.item (RecBole) nor u.data/u.item (GroupLens); "
        f"run `behaviorlm setup` to cache RecBole's copy"
    )
