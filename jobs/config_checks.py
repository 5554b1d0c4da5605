"""Value checks of a parsed `Config` (choices, ranges, combinations), run by `load_config` before any Spark work;
each failure is a `ConfigError` naming the key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.errors import ConfigError

if TYPE_CHECKING:
    from jobs.config import Config

_CHOICES = {
    "ingest.source": {"movielens", "synthetic", "table"},
    "model.pooling": {"mean", "cls"},
    "model.dtype": {"auto", "float32", "float16", "bfloat16"},
    "embed.user_mode": {"pooled", "sequence"},
    "neighbors.mode": {"approx", "exact"},
    "evaluate.split": {"stratified", "chronological"},
}


def check_config(cfg: Config) -> None:
    """Every value check beyond types: choices, ranges, and settings that only make sense together."""
    for key, allowed in _CHOICES.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value not in allowed:
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {sorted(allowed)}")
    ing = cfg.ingest
    if ing.rating_min >= ing.rating_max:
        raise ConfigError(f"config keys 'ingest.rating_min'/'ingest.rating_max': {ing.rating_min} >= {ing.rating_max}")
    if not ing.event_types:
        raise ConfigError("config key 'ingest.event_types': must list at least one event type")
    if ing.source == "table" and not (ing.behaviors_source and ing.items_source):
        raise ConfigError("ingest.source 'table' needs 'ingest.behaviors_source' and 'ingest.items_source'")
    syn = ing.synthetic
    for name in ("users", "items", "events", "clusters", "partitions"):
        if getattr(syn, name) < 1:
            raise ConfigError(f"config key 'ingest.synthetic.{name}': must be >= 1, got {getattr(syn, name)}")
    for name in ("in_cluster", "bad_fraction"):
        if not 0.0 <= getattr(syn, name) <= 1.0:
            raise ConfigError(f"config key 'ingest.synthetic.{name}': must be in [0, 1], got {getattr(syn, name)}")
    emb = cfg.embed
    if not emb.item_fields or emb.sequence_length < 1 or emb.arrow_batch_size < 1 or emb.half_life_days < 0:
        raise ConfigError(
            "config section 'embed': item_fields must be non-empty, sequence_length and arrow_batch_size >= 1, "
            "half_life_days >= 0"
        )
    if any(w < 0 for w in emb.event_weights.values()) or emb.text_weight < 0:
        raise ConfigError(
            f"config key 'embed.event_weights'/'embed.text_weight': weights must be >= 0, got {emb.event_weights}"
        )
    nb = cfg.neighbors
    for name in ("k", "nprobe", "max_cell_size", "block_size", "train_sample", "kmeans_iters", "recall_sample"):
        if getattr(nb, name) < 1:
            raise ConfigError(f"config key 'neighbors.{name}': must be >= 1, got {getattr(nb, name)}")
    if nb.cells < 0:
        raise ConfigError(f"config key 'neighbors.cells': must be >= 0 (0 = automatic), got {nb.cells}")
    _check_recommend(cfg)
    _check_complete(cfg)
    if cfg.model.max_length < 8 or cfg.model.batch_size < 1:
        raise ConfigError("config keys 'model.max_length' (>= 8) and 'model.batch_size' (>= 1) are out of range")


def _check_recommend(cfg: Config) -> None:
    rec, ev = cfg.recommend, cfg.evaluate
    unknown = sorted(set(rec.weights) - {"neighbors", "content", "popularity"})
    if unknown or any(w < 0 for w in rec.weights.values()):
        raise ConfigError(
            f"config key 'recommend.weights': parts are neighbors, content, popularity with weights >= 0; "
            f"got {rec.weights}"
        )
    for name in ("k", "content_candidates", "block_size"):
        if getattr(rec, name) < 1:
            raise ConfigError(f"config key 'recommend.{name}': must be >= 1, got {getattr(rec, name)}")
    if not 0.0 < ev.ratio < 1.0 or ev.k < 1:
        raise ConfigError(f"config keys 'evaluate.ratio' (0..1) / 'evaluate.k' (>= 1): got {ev.ratio}, {ev.k}")
    unknown = sorted(set(ev.grid) - {"similarity_power", "content", "popularity"})
    if unknown or not all(ev.grid.values()):
        raise ConfigError(f"config key 'evaluate.grid': unknown or empty entries {unknown or ev.grid}")
    bad = sorted(set(ev.baselines) - {"popularity", "als"})
    if bad:
        raise ConfigError(f"config key 'evaluate.baselines': {bad[0]!r} is not one of ['als', 'popularity']")


def _check_complete(cfg: Config) -> None:
    comp = cfg.complete
    for name in ("bias_epochs", "item_neighbors", "attribute_neighbors", "block_size"):
        if getattr(comp, name) < 1:
            raise ConfigError(f"config key 'complete.{name}': must be >= 1, got {getattr(comp, name)}")
    if not 0.0 <= comp.holdout < 1.0 or not 0.0 < comp.label_threshold <= 1.0:
        raise ConfigError(
            f"config keys 'complete.holdout' [0, 1) / 'complete.label_threshold' (0, 1]: got {comp.holdout}, "
            f"{comp.label_threshold}"
        )
