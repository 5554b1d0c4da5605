"""Config -> library parameters, for the library calls that more than one stage makes (the job layer is the only
place that reads a `Config`)."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta, runs
from behaviorlm.config import Config
from behaviorlm.embedding import (
    MULTILINGUAL,
    EmbedConcat,
    Embedder,
    EmbedFn,
    check_same_space,
    make_embed_fn,
    stored_backend,
)
from behaviorlm.factors import FactorModel
from behaviorlm.neighbors import top_k
from behaviorlm.onboarding import Onboarding, settle
from behaviorlm.ratings import RatingModel
from behaviorlm.readability import choose_backend
from behaviorlm.scoring import ItemModel, Strength, Thin
from behaviorlm.text import item_texts
from behaviorlm.users import user_vectors
from behaviorlm.vectors import center
from udfs import multilingual

log = logging.getLogger(__name__)


def table(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def run_rows(spark: SparkSession, cfg: Config, name: str, stage: str) -> DataFrame:
    """This run's rows of the per-run table `name`, none where `stage` (which writes it) ran under this run id and
    wrote none, else those of the run written last (`runs.rows_for_run`)."""
    ran = runs.stage_ran(spark, delta.table_ref(cfg.tables, "run_metrics"), cfg.run_id, stage)
    return runs.rows_for_run(table(spark, cfg, name), cfg.run_id, name, ran)


def maybe_table(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    """The table, or None when no stage has written it yet."""
    ref = delta.table_ref(cfg.tables, name)
    return delta.read_table(spark, ref) if delta.table_exists(spark, ref) else None


def embed_fn(spark: SparkSession, cfg: Config, texts: DataFrame | None = None) -> EmbedFn:
    """The encoder as configured. `model.backend: auto` is decided once per stage, on the driver, before encoding:
    the stage that encodes the item texts (embed-items, passing them as `texts`) measures whether model.path reads
    them; the others follow the backend of the stored item vectors, so users are embedded in the items' space, and
    measure the items' texts only when no item vectors are stored yet."""
    m, e = cfg.model, cfg.embed
    backend, share = m.backend, None
    if backend == "auto" and texts is None:
        ref = delta.table_ref(cfg.tables, "item_embeddings")
        backend = (stored_backend(delta.read_table(spark, ref)) if delta.table_exists(spark, ref) else None) or backend
    if backend == "auto":
        items = texts if texts is not None else item_texts(table(spark, cfg, "items"), e.item_fields, e.empty_text)
        backend, share = choose_backend(items.where(~F.col("fallback")), m.path, m.max_length,
                                        e.max_unknown_token_share, cfg.seed)  # fmt: skip
    return make_embed_fn(spark, m.path, m.max_length, m.pooling, m.dtype, m.batch_size, e.empty_text,
                         e.arrow_batch_size, backend, share)  # fmt: skip


def intents_embed(spark: SparkSession, cfg: Config) -> Embedder:
    """The encoder intents match with: the model's, joined by the multilingual one (`intents.multilingual_features`)
    unless the model is that one already; a missing multilingual extra is said once, then the model alone is used."""
    embed = embed_fn(spark, cfg)
    if not cfg.intents.multilingual_features or embed.backend == MULTILINGUAL:
        return embed
    if not multilingual.installed():
        log.warning("intents.multilingual_features: the multilingual encoder is not installed (%s); matching with %s "
                    "alone", multilingual.INSTALL_HINT, embed.model)  # fmt: skip
        return embed
    m, e = cfg.model, cfg.embed
    second = make_embed_fn(spark, m.path, m.max_length, m.pooling, m.dtype, m.batch_size, e.empty_text,
                           e.arrow_batch_size, MULTILINGUAL)  # fmt: skip
    return EmbedConcat([embed, second])


def stored_users(spark: SparkSession, cfg: Config, item_vectors: DataFrame) -> DataFrame:
    """(user_id, embedding) of user_embeddings, checked to be in the space of `item_vectors` (the stored ones)."""
    users = table(spark, cfg, "user_embeddings")
    check_same_space(users, item_vectors, "user_embeddings", "item_embeddings")
    return users.select("user_id", "embedding")


def item_space(cfg: Config, item_vectors: DataFrame) -> DataFrame:
    """(item_id, embedding) in the space users are compared in: centred on the catalogue mean when configured."""
    vectors = item_vectors.select("item_id", "embedding")
    return center(vectors) if cfg.embed.center_items else vectors


def item_model(cfg: Config, weight: float) -> ItemModel | None:
    """recommend's item-item part as configured; None (not computed at all) when the blend gives it no `weight`."""
    m = cfg.recommend.item_model
    return ItemModel(m.reg, m.max_items, m.candidates, m.neighbors) if weight > 0 else None


def items_weight(cfg: Config, weights: dict[str, float]) -> float:
    """The largest weight the `items` part gets from `weights` or the thin-history blend (0: not computed)."""
    t = cfg.recommend.thin
    return max(weights.get("items", 0.0), t.weights.get("items", 0.0) if t.max_history > 0 else 0.0)


def thin(cfg: Config) -> Thin | None:
    """recommend's blend for thin histories, or None when `recommend.thin.max_history` is 0."""
    t = cfg.recommend.thin
    return Thin(t.max_history, dict(t.weights)) if t.max_history > 0 else None


def onboarding(cfg: Config) -> Onboarding | None:
    """recommend's part for thin histories, or None (not computed) when the thin blend gives it no weight."""
    t, o = cfg.recommend.thin, cfg.recommend.onboarding
    if t.max_history == 0 or not t.weights.get("onboarding"):
        return None
    return Onboarding(t.max_history, o.reg, o.candidates, o.features, o.max_ids, o.holdout, o.min_users)


def settled_onboarding(
    cfg: Config, behaviors: DataFrame, item_vectors: DataFrame
) -> tuple[Onboarding | None, dict[str, float]]:
    """`onboarding` with `features: auto` settled on these behaviours (`behaviorlm.onboarding.settle`), and what
    settling it measured (run metrics)."""
    model = onboarding(cfg)
    return (None, {}) if model is None else settle(behaviors, item_vectors, model, cfg.block_size, cfg.seed)


def strength(cfg: Config) -> Strength:
    return Strength(cfg.embed.event_weights, cfg.ingest.rating_min, cfg.ingest.rating_max,
                    cfg.recommend.rating_centering)  # fmt: skip


def factor_model(cfg: Config) -> FactorModel | None:
    """complete's ALS part, or None when `complete.als.rank` is 0."""
    a = cfg.complete.als
    return FactorModel(a.rank, a.reg, a.iterations, a.fit_share, cfg.seed) if a.rank > 0 else None


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
                 seed=cfg.seed, block_size=cfg.block_size, exact_below=nb.exact_below)  # fmt: skip
