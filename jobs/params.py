"""Config -> library parameters, for the library calls that more than one stage makes (the job layer is the only
place that reads a `Config`)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from behaviorlm import delta
from behaviorlm.config import Config
from behaviorlm.embedding import EmbedFn, make_embed_fn
from behaviorlm.neighbors import top_k
from behaviorlm.ratings import RatingModel
from behaviorlm.scoring import Strength
from behaviorlm.users import user_vectors
from behaviorlm.vectors import center


def table(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def embed_fn(spark: SparkSession, cfg: Config) -> EmbedFn:
    m = cfg.model
    return make_embed_fn(spark, m.path, m.max_length, m.pooling, m.dtype, m.batch_size, cfg.embed.empty_text,
                         cfg.embed.arrow_batch_size)  # fmt: skip


def item_space(cfg: Config, item_vectors: DataFrame) -> DataFrame:
    """(item_id, embedding) in the space users are compared in: centred on the catalogue mean when configured."""
    vectors = item_vectors.select("item_id", "embedding")
    return center(vectors) if cfg.embed.center_items else vectors


def strength(cfg: Config) -> Strength:
    return Strength(cfg.embed.event_weights, cfg.ingest.rating_min, cfg.ingest.rating_max,
                    cfg.recommend.rating_centering)  # fmt: skip


def rating_model(cfg: Config) -> RatingModel:
    c = cfg.complete
    return RatingModel(c.bias_epochs, c.reg_user, c.reg_item, c.user_shrinkage, c.item_similarity_power,
                       c.item_shrinkage, c.item_weight, cfg.ingest.rating_min, cfg.ingest.rating_max)  # fmt: skip


def users(cfg: Config, behaviors: DataFrame, item_vectors: DataFrame, items: DataFrame, embed: EmbedFn) -> DataFrame:
    """User vectors as configured (`embed.user_mode`), from the stored (raw) item vectors."""
    e = cfg.embed
    return user_vectors(behaviors, item_vectors.select("item_id", "embedding"), embed, e.user_mode, items,
                        weights=e.event_weights, rating_max=cfg.ingest.rating_max, center_items=e.center_items,
                        half_life_days=e.half_life_days, text_weight=e.text_weight,
                        sequence_length=e.sequence_length)  # fmt: skip


def neighbors(cfg: Config, valid_users: DataFrame) -> DataFrame:
    """Each valid user's `neighbors.k` most similar users, as configured."""
    nb = cfg.neighbors
    return top_k(valid_users, nb.k, nb.mode == "approx", cells=nb.cells, nprobe=nb.nprobe,
                 max_cell_size=nb.max_cell_size, train_sample=nb.train_sample, kmeans_iters=nb.kmeans_iters,
                 seed=cfg.seed, block_size=cfg.block_size)  # fmt: skip
