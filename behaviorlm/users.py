"""User vectors from behaviour: event weights (type x rating x recency), weighted means of item vectors (pooled
mode), and each user's latest behaviours rendered as one line of text (sequence mode, encoded by the UDF)."""

from __future__ import annotations

from itertools import chain

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.embedding import EmbedFn
from behaviorlm.vectors import center, in_sum_order, l2_normalize

VERBS = {"rating": "rated", "view": "viewed", "click": "clicked", "purchase": "bought", "search": "searched",
         "review": "reviewed"}  # fmt: skip


def map_lookup(mapping: dict[str, object], key: Column) -> Column:
    return F.create_map(*[F.lit(x) for x in chain.from_iterable(mapping.items())])[key]


def event_weights(
    behaviors: DataFrame, weights: dict[str, float], rating_max: float, half_life_days: float
) -> DataFrame:
    """Adds `w`: event-type weight x (rating / rating_max when rated) x 0.5^(age / half-life), age counted from the
    user's latest event. Unknown event types weigh 0."""
    w = F.coalesce(map_lookup(weights, F.col("event_type")), F.lit(0.0))
    w = w * F.coalesce(F.col("rating") / F.lit(rating_max), F.lit(1.0))
    if half_life_days > 0:
        latest = F.max("ts").over(Window.partitionBy("user_id"))
        age_days = (F.unix_timestamp(latest) - F.unix_timestamp("ts")) / 86_400.0
        w = w * F.pow(F.lit(0.5), age_days / half_life_days)
    return behaviors.withColumn("w", w.cast("double"))


def weighted_mean_vectors(rows: DataFrame, key: str = "user_id") -> DataFrame:
    """(key, vec array<float>, w double) rows -> (key, embedding) unit vectors of the weighted mean per key, the
    same bits on every run (`in_sum_order`)."""
    mean = Summarizer.mean(F.col("_v"), F.col("w"))
    return (
        in_sum_order(rows.where(F.col("w") > 0).select(key, "vec", "w"), key, "vec", "w")
        .select(key, array_to_vector("vec").alias("_v"), "w")
        .groupBy(key)
        .agg(mean.alias("_mean"))
        .select(key, l2_normalize(vector_to_array("_mean", "float32")).alias("embedding"))
    )


def pooled_vectors(
    weighted: DataFrame, item_vectors: DataFrame, embed: EmbedFn | None, text_weight: float
) -> DataFrame:
    """Users' weighted means of item vectors plus, if `embed` is given, of their own free-text vectors."""
    items = weighted.join(item_vectors.select("item_id", F.col("embedding").alias("vec")), "item_id")
    rows = items.select("user_id", "vec", "w")
    if embed is not None:
        texts = weighted.where(F.trim("text") != "").select("text").distinct()
        text_vectors = texts.withColumn("vec", embed(F.col("text")))
        own = weighted.join(text_vectors, "text").select("user_id", "vec", (F.col("w") * text_weight).alias("w"))
        rows = rows.unionByName(own)
    return weighted_mean_vectors(rows)


def render_sequences(behaviors: DataFrame, items: DataFrame, length: int, rating_max: float) -> DataFrame:
    """(user_id, text): the latest `length` behaviours, newest first, as one line of text per user."""
    title = F.concat_ws(" ", F.col("title"), F.when(F.col("year").isNotNull(), F.format_string("(%d)", "year")))
    phrase = F.concat_ws(
        " ",
        F.coalesce(map_lookup(VERBS, F.col("event_type")), F.col("event_type")),
        F.when(F.col("title").isNotNull(), title).otherwise(F.concat(F.lit("item "), F.col("item_id"))),
        F.when(
            F.col("rating").isNotNull(), F.format_string("%s/%s", F.col("rating").cast("int"), F.lit(int(rating_max)))
        ),
        F.when(F.trim("text") != "", F.concat(F.lit("'"), F.col("text"), F.lit("'"))),
    )
    latest = Window.partitionBy("user_id").orderBy(F.col("ts").desc(), F.col("item_id"))
    recent = (
        behaviors.join(items.select("item_id", "title", "year"), "item_id", "left")
        .withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") <= length)
    )
    ordered = F.array_sort(F.collect_list(F.struct(F.col("_rank"), phrase.alias("p"))))
    return recent.groupBy("user_id").agg(F.concat_ws("; ", F.transform(ordered, lambda s: s["p"])).alias("text"))


def user_vectors(
    behaviors: DataFrame,
    item_vectors: DataFrame,
    embed: EmbedFn,
    mode: str = "pooled",
    items: DataFrame | None = None,
    *,
    weights: dict[str, float],
    rating_max: float,
    center_items: bool = True,
    half_life_days: float = 0.0,
    text_weight: float = 1.0,
    sequence_length: int = 20,
) -> DataFrame:
    """(user_id, embedding) unit vectors from behaviours and the stored (raw) item vectors.

    `pooled`: weighted mean of the vectors of the items each user touched (centred on the catalogue mean when
    `center_items`) plus their own free texts' vectors. `sequence`: the latest `sequence_length` behaviours as text
    (titles from `items`), encoded, then moved by the same catalogue mean, so user-item cosines compare like with
    like in either mode.
    """
    if mode == "pooled":
        weighted = event_weights(behaviors, weights, rating_max, half_life_days)
        pool_from = center(item_vectors) if center_items else item_vectors
        return pooled_vectors(weighted, pool_from, embed, text_weight)
    if items is None:
        raise ValueError("user_vectors: sequence mode needs the items (for titles)")
    texts = render_sequences(behaviors, items, sequence_length, rating_max)
    encoded = texts.select("user_id", embed(F.col("text")).alias("embedding"))
    return center(encoded, reference=item_vectors) if center_items else encoded
