"""Embed users into `user_embeddings(user_id, embedding, n_events, mode, model, updated_at)`, in one of two modes:

- `pooled`: a weighted mean of the vectors of the items a user interacted with (weight = event-type weight x
  rating / rating_max x recency half-life decay), plus the vectors of the user's own free text (search queries,
  reviews) at `text_weight`. Item vectors are first centred on the catalogue mean (`embed.center_items`), so what
  users share with every item does not make them all alike. Computed in Spark with MLlib's `Summarizer` (memory
  O(dim) per user), so no model call except for the free texts.
- `sequence`: the user's latest `sequence_length` behaviours rendered as text, newest first ("rated Toy Story
  (1995) 5/5; searched 'space movies'; ...") and encoded by the UDF, as in the classic approach.

Users whose behaviours carry no usable vector (all weights 0) get no row; their count is logged and in run_metrics.
The table is a snapshot, rewritten whole, so a re-run leaves the same rows.
Run: `behaviorlm embed-users --conf conf/local.yaml [--set embed.user_mode=sequence]`.
"""

from __future__ import annotations

import logging
from itertools import chain

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import Config
from jobs.encoding import EmbedFn, make_embed_fn, model_info
from jobs.runtime import job_main, write_metrics
from jobs.vectors import center, l2_normalize

log = logging.getLogger(__name__)
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
    """(key, vec array<float>, w double) rows -> (key, embedding) unit vectors of the weighted mean per key."""
    mean = Summarizer.mean(F.col("_v"), F.col("w"))
    return (
        rows.where(F.col("w") > 0)
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


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    emb = cfg.embed
    behaviors = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "behaviors"))
    embed = make_embed_fn(spark, cfg)
    if emb.user_mode == "pooled":
        item_vectors = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "item_embeddings"))
        model = item_vectors.select("model").limit(1).first()
        model = model["model"] if model else model_info(cfg)[0]
        if emb.center_items:
            item_vectors = center(item_vectors)
        weighted = event_weights(behaviors, emb.event_weights, cfg.ingest.rating_max, emb.half_life_days)
        vectors = pooled_vectors(weighted, item_vectors, embed, emb.text_weight)
    else:
        model = model_info(cfg)[0]
        items = delta_io.read_table(spark, delta_io.table_ref(cfg.tables, "items"))
        texts = render_sequences(behaviors, items, emb.sequence_length, cfg.ingest.rating_max)
        vectors = texts.select("user_id", embed(F.col("text")).alias("embedding"))
    n_events = behaviors.groupBy("user_id").agg(F.count("*").alias("n_events"))
    table = vectors.join(n_events, "user_id").select(
        "user_id",
        "embedding",
        "n_events",
        F.lit(emb.user_mode).alias("mode"),
        F.lit(model).alias("model"),
        F.current_timestamp().alias("updated_at"),
    )
    target = delta_io.table_ref(cfg.tables, "user_embeddings")
    delta_io.overwrite(table, target)
    written = int(delta_io.last_operation_metrics(spark, target).get("numOutputRows", 0))
    users = n_events.count()
    log.info("user vectors written=%d of %d users (%s mode); without vector=%d", written, users, emb.user_mode,
             users - written)  # fmt: skip
    metrics = {"users_embedded": written, "users_without_vector": users - written, **embed.report()}
    write_metrics(spark, cfg, "embed_users", metrics)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(
        argv, "Embed users (pooled item vectors or encoded history) into user_embeddings.", "embed-users", run
    )


if __name__ == "__main__":
    main()
