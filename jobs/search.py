"""Search: natural-language queries from `queries(query_id, text, user_id?)` against the item vectors into
`query_results(query_id, item_id, rank, score, reason, run_id)`, and the users closest to each query into
`query_audience(query_id, user_id, rank, score, run_id)`, both replaced per run id. A query with a known user blends
in that user's vector (`search.personal_weight`) and never returns what the user already interacted with; a blank
query gets one row with no item and the reason "empty query: nothing to match", as do a query the model reads too
little of (under `model.min_readable_share` of its letters in known tokens: a script it does not know, emoji,
punctuation; `queries_unreadable` in run_metrics) and a query nothing is left for (its user saw every item).
Scoring is `behaviorlm.search`.
Without a `queries` table the stage logs one line and writes nothing.
Run: `behaviorlm search --conf conf/local.yaml`.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.search import (
    EMPTY_QUERY,
    UNREADABLE,
    blank_results,
    encode_texts,
    one_per_id,
    require_columns,
    search_audience,
    search_items,
)
from behaviorlm.vectors import center
from jobs import params
from jobs.runtime import job_main, save_run, write_metrics

log = logging.getLogger(__name__)


def read_queries(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The queries with an id, one row per id (the first by text, user); None when there is no queries table."""
    ref = delta.table_ref(cfg.tables, "queries")
    if not delta.input_exists(spark, ref):
        log.info("search: no queries table %s; nothing to search", ref)
        return None
    raw = delta.read_table(spark, ref)
    require_columns(raw, "queries", ["query_id", "text"])
    return one_per_id(raw, "query_id")


def vector_spaces(spark: SparkSession, cfg: Config) -> tuple[DataFrame, DataFrame, DataFrame | None]:
    """(raw item vectors, items in the users' space, valid user vectors or None when there are none)."""
    stored = params.table(spark, cfg, "item_embeddings")
    raw = stored.select("item_id", "embedding")
    items = params.item_space(cfg, raw).persist(StorageLevel.MEMORY_AND_DISK)
    if not delta.table_exists(spark, delta.table_ref(cfg.tables, "user_embeddings")):
        log.info("search: no user_embeddings table; no personal results and no audience")
        return raw, items, None
    vectors = params.stored_users(spark, cfg, stored)
    valid, _ = split_valid(vectors, vector_dim(vectors))
    return raw, items, valid.persist(StorageLevel.MEMORY_AND_DISK)


def seen_items(spark: SparkSession, cfg: Config) -> DataFrame | None:
    ref = delta.table_ref(cfg.tables, "behaviors")
    return delta.read_table(spark, ref).select("user_id", "item_id") if delta.table_exists(spark, ref) else None


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    queries = read_queries(spark, cfg)
    if queries is None:
        metrics = {"queries": 0}
        write_metrics(spark, cfg, "search", metrics)
        return metrics
    queries = queries.persist(StorageLevel.MEMORY_AND_DISK)
    raw, items, users = vector_spaces(spark, cfg)
    picked, embed = queries.where("_n = 1"), params.embed_fn(spark, cfg)
    encoded, blank = encode_texts(picked, embed, min_readable=cfg.model.min_readable_share)
    # Queries move into the items' space as users do: by the catalogue mean, when items are centred.
    encoded = center(encoded, reference=raw) if cfg.embed.center_items else encoded
    encoded = encoded.persist(StorageLevel.MEMORY_AND_DISK)
    s = cfg.search
    found = search_items(encoded, items, s.k, users, seen_items(spark, cfg), s.personal_weight, cfg.block_size)
    save_run(found.unionByName(blank_results(blank)), cfg, "query_results")
    audience = 0
    if users is not None:
        audience = save_run(search_audience(encoded, users, s.audience_k, cfg.block_size), cfg, "query_audience")
    metrics = query_metrics(queries, params.table(spark, cfg, "query_results"), cfg.run_id, audience)
    log.info("search: %s", metrics)
    write_metrics(spark, cfg, "search", metrics)
    for frame in (queries, encoded, items, users):
        if frame is not None:
            frame.unpersist()
    return metrics


def query_metrics(queries: DataFrame, results: DataFrame, run_id: str, audience: int) -> dict:
    """Queries searched, blank, read too little by the model, personal (with a user), rows skipped (a duplicate or
    no id), result rows, and queries that found no item."""
    counts = queries.agg(
        F.count("query_id").alias("rows"),
        F.sum(F.col("query_id").isNull().cast("int")).alias("no_id"),
        F.sum((F.col("_n") == 1).cast("int")).alias("queries"),
        F.sum(((F.col("_n") == 1) & F.col("user_id").isNotNull()).cast("int")).alias("personal"),
    ).first()
    own = results.where(F.col("run_id") == run_id)
    answered = own.where(F.col("item_id").isNotNull()).select("query_id").distinct().count()
    rows = own.agg(F.count(F.lit(1)).alias("rows"), F.count_if(F.col("reason") == EMPTY_QUERY).alias("blank"),
                   F.count_if(F.col("reason") == UNREADABLE).alias("unreadable")).first()  # fmt: skip
    searched = counts["queries"] or 0  # a sum over no rows is null
    return {"queries": searched, "queries_blank": rows["blank"], "queries_unreadable": rows["unreadable"],
            "queries_duplicate_id": counts["rows"] - searched,
            "queries_without_id": counts["no_id"] or 0, "queries_personal": counts["personal"] or 0,
            "queries_without_items": searched - answered, "result_rows": rows["rows"],
            "audience_rows": audience}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    return job_main(argv, "Semantic search: queries -> query_results and query_audience.", "search", run)


if __name__ == "__main__":
    main()
