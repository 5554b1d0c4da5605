"""Typed configuration: YAML files plus `--set key=value` overrides, parsed into frozen dataclasses.

Every job takes `--conf FILE` (repeatable; later files override earlier ones) and `--set a.b=value`. Values are
YAML-parsed, so `--set ingest.synthetic.users=500` is an int. An unknown key or a value of the wrong type raises
`ConfigError` naming the key, before any Spark work starts. `${VAR}` in a string is replaced from the environment;
`BEHAVIORLM_CACHE` defaults to `~/.cache/behaviorlm` (where `behaviorlm setup` puts jars, data and the model).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from jobs.config_checks import check_config
from jobs.errors import ConfigError

CACHE_ENV = "BEHAVIORLM_CACHE"


def cache_dir() -> Path:
    """Where set-up caches live: `$BEHAVIORLM_CACHE`, else `~/.cache/behaviorlm`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "behaviorlm")


@dataclass(frozen=True)
class SparkConfig:
    app_name: str = "behaviorlm"
    # Used only when no session is active and we are not under spark-submit (laptop, tests).
    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TablesConfig:
    """Table locations. A value with '/' or '://' is a path, a dotted name without '/' is a catalog table
    (e.g. `main.recs.behaviors`), and a bare word is a path table under `root`."""

    root: str = "data/delta"
    behaviors: str = "behaviors"
    items: str = "items"
    rejected_behaviors: str = "rejected_behaviors"
    rejected_items: str = "rejected_items"
    run_metrics: str = "run_metrics"
    item_embeddings: str = "item_embeddings"
    user_embeddings: str = "user_embeddings"
    user_neighbors: str = "user_neighbors"
    neighbor_rejects: str = "neighbor_rejects"
    recommendations: str = "recommendations"
    completed_ratings: str = "completed_ratings"
    completed_attributes: str = "completed_attributes"
    completed_behaviors: str = "completed_behaviors"


@dataclass(frozen=True)
class BehaviorColumns:
    """Source column name for each canonical behaviours column (used by the `table` source)."""

    user_id: str = "user_id"
    item_id: str = "item_id"
    event_type: str = "event_type"
    rating: str = "rating"
    ts: str = "ts"
    text: str = "text"


@dataclass(frozen=True)
class ItemColumns:
    """Source column name for each canonical items column (used by the `table` source)."""

    item_id: str = "item_id"
    title: str = "title"
    description: str = "description"
    genres: str = "genres"
    year: str = "year"


@dataclass(frozen=True)
class SyntheticConfig:
    users: int = 1000
    items: int = 500
    events: int = 20000
    clusters: int = 8
    seed: int = 42
    # Share of events whose item comes from the user's own taste cluster (the planted ground truth).
    in_cluster: float = 0.8
    # Share of events deliberately corrupted, to exercise quarantine at scale.
    bad_fraction: float = 0.0
    partitions: int = 8


@dataclass(frozen=True)
class IngestConfig:
    source: str = "movielens"  # movielens | synthetic | table
    # movielens: a folder with RecBole's ml-100k.{inter,item} or GroupLens' u.data/u.item.
    path: str = "${BEHAVIORLM_CACHE}/data/ml-100k"
    # table: where the raw behaviours and items are (path or catalog name) and their format.
    behaviors_source: str = ""
    items_source: str = ""
    source_format: str = "delta"
    behavior_columns: BehaviorColumns = field(default_factory=BehaviorColumns)
    item_columns: ItemColumns = field(default_factory=ItemColumns)
    event_types: list[str] = field(default_factory=lambda: ["rating", "view", "click", "purchase", "search", "review"])
    rating_min: float = 1.0
    rating_max: float = 5.0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class ModelConfig:
    path: str = "${BEHAVIORLM_CACHE}/models/all-MiniLM-L6-v2"
    max_length: int = 128
    batch_size: int = 64
    pooling: str = "mean"  # mean | cls
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16


@dataclass(frozen=True)
class EmbedConfig:
    # Item text: each entry is rendered only when all its {fields} are present, then entries are joined by spaces.
    item_fields: list[str] = field(
        default_factory=lambda: ["{title}", "({year})", "Genres: {genres}.", "{description}"]
    )
    # Text for an item or behaviour whose text is entirely missing (never a zero vector).
    empty_text: str = "unknown item"
    user_mode: str = "pooled"  # pooled | sequence
    # pooled: weight of each event type in a user's weighted mean of item vectors (unknown types weigh 0).
    event_weights: dict[str, float] = field(
        default_factory=lambda: {
            "rating": 1.0,
            "purchase": 1.0,
            "review": 1.0,
            "click": 0.5,
            "search": 0.5,
            "view": 0.3,
        }
    )
    # Recency half-life in days, counted back from the user's latest event; 0 turns decay off.
    half_life_days: float = 0.0
    # Weight of a behaviour's own free text (search query, review) next to the item it refers to.
    text_weight: float = 1.0
    # sequence: how many of the user's latest behaviours are rendered as text and encoded.
    sequence_length: int = 20
    # Rows per Arrow batch handed to the UDF (spark.sql.execution.arrow.maxRecordsPerBatch).
    arrow_batch_size: int = 2048
    # pooled: subtract the catalogue's mean item vector before pooling. Every item text shares a large common
    # direction ("a movie title, year, genres"); without centring it dominates every user vector and all users
    # look alike (measured on ML-100K: neighbour-CF nDCG@10 0.41 -> 0.43, content-only 0.03 -> 0.14).
    center_items: bool = True


@dataclass(frozen=True)
class NeighborsConfig:
    k: int = 50  # neighbour CF in `recommend` wants tens of neighbours; 10 is too few to vote
    mode: str = "approx"  # approx | exact
    cells: int = 0  # k-means cells; 0 = about sqrt(number of users)
    nprobe: int = 8  # cells each user searches: the recall/speed knob
    max_cell_size: int = 4000  # candidates per task; bigger cells are split into chunks
    block_size: int = 4000  # exact mode: users per block
    train_sample: int = 20000  # vectors sampled (to the driver) to train the centroids
    kmeans_iters: int = 10
    seed: int = 42
    recall_sample: int = 200  # users whose neighbours are checked against exact search every run


@dataclass(frozen=True)
class RecommendConfig:
    k: int = 10
    # Blend of the per-user normalised parts: neighbour CF, content (user x item cosine), popularity.
    weights: dict[str, float] = field(default_factory=lambda: {"neighbors": 1.0, "content": 0.1, "popularity": 0.1})
    # Neighbour CF votes with similarity ** power: a higher power trusts the closest neighbours more.
    similarity_power: float = 2.0
    # How much a neighbour's rating, centred on their own mean, moves their vote: strength x (1 + c x dev / range).
    rating_centering: float = 0.5
    content_candidates: int = 100  # items per user from the content side (cold items come in this way)
    block_size: int = 4000  # content: users and items per block of the blocked user x item product
    # Optional table (path or catalog name) of user_id to recommend for, beside every user with behaviours; users
    # in it without history (cold users) get popular items.
    users: str = ""


@dataclass(frozen=True)
class AlsConfig:
    rank: int = 64
    reg: float = 0.05
    alpha: float = 10.0
    iterations: int = 15


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = "stratified"  # stratified (per-user random share) | chronological (per-user latest share)
    ratio: float = 0.75  # share of each user's behaviours kept for training
    seed: int = 42
    k: int = 10
    # Tune the blend on a validation split carved from the training part (never on the test part).
    tune: bool = True
    grid: dict[str, list[float]] = field(
        default_factory=lambda: {
            "similarity_power": [1.0, 2.0, 4.0],
            "content": [0.0, 0.1, 0.2],
            "popularity": [0.0, 0.1, 0.2],
        }  # fmt: skip
    )
    baselines: list[str] = field(default_factory=lambda: ["popularity", "als"])
    als: AlsConfig = field(default_factory=AlsConfig)
    # Folder under tables.root for the backtest's own tables (train split, its user vectors, neighbours, recs).
    workdir: str = "_evaluate"


@dataclass(frozen=True)
class CompleteConfig:
    # Optional table (path or catalog name) of (user_id, item_id) pairs to predict, beside the unrated behaviours.
    pairs: str = ""
    bias_epochs: int = 10  # baseline: alternating rounds of item then user bias fitting
    reg_user: float = 15.0
    reg_item: float = 10.0
    user_shrinkage: float = 20.0  # neighbour deviation x n / (n + shrinkage): few supporters, small correction
    item_neighbors: int = 100  # items most similar by embedding used for the item-item term
    item_similarity_power: float = 2.0
    item_shrinkage: float = 10.0
    item_weight: float = 1.0  # 0 turns the embedding item-item term off
    # Item attributes to fill when missing (columns of `items`; an array column is multi-label).
    attributes: list[str] = field(default_factory=lambda: ["genres"])
    attribute_neighbors: int = 50
    attribute_similarity_power: float = 4.0  # a neighbour's vote: max(cosine, 0) ** power
    label_threshold: float = 0.25  # multi-label: keep values with at least this share of the neighbours' vote
    block_size: int = 4000
    # Share of observed ratings and attribute values hidden (seeded) and filled too, to measure the fills.
    holdout: float = 0.0


@dataclass(frozen=True)
class ReportConfig:
    dir: str = "reports"  # where run-<run_id>.html goes: a local folder or a file system URI
    sample_users: int = 2000  # user vectors projected to 2-D for the report (the only per-user rows collected)


@dataclass(frozen=True)
class Config:
    run_id: str = ""
    spark: SparkConfig = field(default_factory=SparkConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    neighbors: NeighborsConfig = field(default_factory=NeighborsConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    complete: CompleteConfig = field(default_factory=CompleteConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(paths: list[str] | None = None, overrides: list[str] | None = None) -> Config:
    """Start from the dataclass defaults (spelled out in `conf/default.yaml`), apply each file in `paths`, then the
    `key=value` overrides, and return a validated `Config`."""
    merged: dict[str, Any] = {}
    for path in paths or []:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
        _deep_merge(merged, data)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        _set_override(merged, key.strip(), yaml.safe_load(raw))
    cfg = _build(Config, merged, "")
    check_config(cfg)
    return cfg


def _set_override(merged: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key; inside a mapping-typed field (e.g. `spark.conf`) the rest of the key is one dict key, so
    `--set spark.conf.spark.sql.shuffle.partitions=4` works."""
    node, cls, parts = merged, Config, key.split(".")
    while len(parts) > 1:
        part = parts.pop(0)
        hint = typing.get_type_hints(cls).get(part) if cls else None
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
        if typing.get_origin(hint) is dict:
            parts = [".".join(parts)]
            break
        cls = hint if dataclasses.is_dataclass(hint) else None
    node[parts[0]] = value


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; known keys here: {sorted(names)}")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    for f in dataclasses.fields(cls):
        if f.name in kwargs:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], {}, f"{prefix}{f.name}.")
        elif isinstance(f.default, str):
            kwargs[f.name] = _expand(f.default, f"{prefix}{f.name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        if item is str:  # Spark conf values are strings on the JVM side; accept YAML scalars and stringify them.
            return {str(k): _scalar_str(v, f"{key}.{k}") for k, v in value.items()}
        return {str(k): _coerce(item, v, f"{key}.{k}") for k, v in value.items()}
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return _expand(value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    raise ConfigError(f"config key {key!r}: unsupported type {hint!r}")


def _scalar_str(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return _expand(str(value), key)
    raise ConfigError(f"config key {key!r}: expected a scalar, got {value!r}")


def _expand(value: str, key: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == CACHE_ENV:
            return str(cache_dir())
        if name not in os.environ:
            raise ConfigError(f"config key {key!r}: environment variable ${{{name}}} is not set")
        return os.environ[name]

    return _VAR.sub(sub, value)
