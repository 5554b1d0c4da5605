"""Embed users into `user_embeddings(user_id, embedding, n_events, mode, model, updated_at)`, in one of two modes
(`embed.user_mode`, see `behaviorlm.users.user_vectors`):

- `pooled`: a weighted mean of the vectors of the items a user interacted with (weight = event-type weight x
  rating / rating_max x recency half-life decay), plus the vectors of the user's own free text at `text_weight`;
  item vectors are first centred on the catalogue mean (`embed.center_items`). Computed with MLlib's `Summarizer`.
- `sequence`: the user's latest `sequence_length` behaviours rendered as text, newest first, encoded by the UDF and
  moved by the same catalogue mean, so both modes live in the space the items are compared in.

The encoder is the one the stored item vectors were made with (`model.backend: auto` follows them); settings that
name another model are an error, since such user vectors could not be compared with the items.

Users whose behaviours carry no usable vector (all weights 0) get no row; their count is logged and in run_metrics.
The table is a snapshot, rewritten whole, so a re-run leaves the same rows.
Run: `behaviorlm embed-users --conf conf/local.yaml [--set embed.user_mode=sequence]`.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.embedding import EmbeddingSpaceError, stored_model
from jobs import params
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> dict[str, float]:
    behaviors = params.table(spark, cfg, "behaviors")
    item_vectors = params.table(spark, cfg, "item_embeddings")
    embed = params.embed_fn(spark, cfg)
    model = stored_model(item_vectors) or embed.model
    if model != embed.model:
        raise EmbeddingSpaceError(
            f"item_embeddings hold vectors of model {model!r} but model.backend / model.path settings give "
            f"{embed.model!r}: run embed-items with these settings first, or leave model.backend: auto to follow them"
        )
    vectors = params.users(cfg, behaviors, item_vectors, params.table(spark, cfg, "items"), embed)
    n_events = behaviors.groupBy("user_id").agg(F.count("*").alias("n_events"))
    table = vectors.join(n_events, "user_id").select(
        "user_id",
        "embedding",
        "n_events",
        F.lit(cfg.embed.user_mode).alias("mode"),
        F.lit(model).alias("model"),
        F.current_timestamp().alias("updated_at"),
    )
    target = delta.table_ref(cfg.tables, "user_embeddings")
    delta.overwrite(table, target)
    written = delta.written_rows(spark, target)
    users = n_events.count()
    log.info("user vectors written=%d of %d users (%s mode); without vector=%d", written, users, cfg.embed.user_mode,
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
