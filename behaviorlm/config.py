"""Typed configuration: YAML files plus `--set key=value` overrides, validated by pydantic into frozen models.

Every job takes `--conf FILE` (repeatable; later files override earlier ones) and `--set a.b=value`. Values are
YAML-parsed, so `--set ingest.synthetic.users=500` is an int. An unknown key, a wrong type or a value out of range
raises `ConfigError` naming the key, before any Spark work starts. `${VAR}` in a string is replaced from the
environment; `BEHAVIORLM_CACHE` defaults to `~/.cache/behaviorlm` (where `behaviorlm setup` puts jars, data and
the model). Only the job layer reads a `Config`: library functions take plain parameters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from behaviorlm.constants import BLOCK_SIZE, SEED
from behaviorlm.errors import ConfigError
from behaviorlm.overrides import describe, merge_sources

CACHE_ENV = "BEHAVIORLM_CACHE"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def cache_dir() -> Path:
    """Where set-up caches live: `$BEHAVIORLM_CACHE`, else `~/.cache/behaviorlm`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "behaviorlm")


def _expand(value: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == CACHE_ENV:
            return str(cache_dir())
        if name not in os.environ:
            raise ValueError(f"environment variable ${{{name}}} is not set")
        return os.environ[name]

    return _VAR.sub(sub, value)


def _spark_values(value: Any) -> Any:
    # Spark conf values are strings on the JVM side; YAML gives ints, floats and booleans: stringify scalars.
    if not isinstance(value, dict):
        return value
    return {str(k): str(v).lower() if isinstance(v, bool) else v if isinstance(v, str) else _scalar(v)
            for k, v in value.items()}  # fmt: skip


def _scalar(v: Any) -> Any:
    return str(v) if isinstance(v, (int, float)) else v


Text = Annotated[str, AfterValidator(_expand)]
SparkConf = Annotated[dict[str, Text], BeforeValidator(_spark_values)]
Positive = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class Section(BaseModel):
    """Every config section: strict types (no "5" for 5), unknown keys rejected, frozen, defaults expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class SparkConfig(Section):
    app_name: str = "behaviorlm"
    # Used only when no session is active and we are not under spark-submit (laptop, tests).
    master: str = "local[*]"
    # Spark's own log level for sessions we start: ERROR keeps its INFO/WARN chatter out of the console.
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = "ERROR"
    conf: SparkConf = Field(default_factory=dict)


class TablesConfig(Section):
    """Table locations. A value with '/' or '://' is a path, a dotted name without '/' is a catalog table
    (e.g. `main.recs.behaviors`), and a bare word is a path table under `root`."""

    root: Text = "data/delta"
    behaviors: Text = "behaviors"
    items: Text = "items"
    rejected_behaviors: Text = "rejected_behaviors"
    rejected_items: Text = "rejected_items"
    run_metrics: Text = "run_metrics"
    item_embeddings: Text = "item_embeddings"
    user_embeddings: Text = "user_embeddings"
    user_neighbors: Text = "user_neighbors"
    neighbor_rejects: Text = "neighbor_rejects"
    recommendations: Text = "recommendations"
    completed_ratings: Text = "completed_ratings"
    completed_attributes: Text = "completed_attributes"
    completed_behaviors: Text = "completed_behaviors"

    def names(self) -> list[str]:
        """Every logical table name (the fields other than `root`)."""
        return [name for name in type(self).model_fields if name != "root"]


class BehaviorColumns(Section):
    """Source column name for each canonical behaviours column (used by the `table` source)."""

    user_id: str = "user_id"
    item_id: str = "item_id"
    event_type: str = "event_type"
    rating: str = "rating"
    ts: str = "ts"
    text: str = "text"


class ItemColumns(Section):
    """Source column name for each canonical items column (used by the `table` source)."""

    item_id: str = "item_id"
    title: str = "title"
    description: str = "description"
    genres: str = "genres"
    year: str = "year"


class SyntheticConfig(Section):
    users: Positive = 1000
    items: Positive = 500
    events: Positive = 20000
    clusters: Positive = 8
    # The data's own seed (what data is generated), apart from the algorithms' `seed`.
    seed: int = 42
    # Share of events whose item comes from the user's own taste cluster (the planted ground truth).
    in_cluster: Share = 0.8
    # Share of events deliberately corrupted, to exercise quarantine at scale.
    bad_fraction: Share = 0.0
    partitions: Positive = 8


class IngestConfig(Section):
    source: Literal["movielens", "synthetic", "table"] = "movielens"
    # movielens: a folder with RecBole's ml-100k.{inter,item} or GroupLens' u.data/u.item.
    path: Text = "${BEHAVIORLM_CACHE}/data/ml-100k"
    # table: where the raw behaviours and items are (path or catalog name) and their format.
    behaviors_source: Text = ""
    items_source: Text = ""
    source_format: Literal["delta", "parquet", "csv", "json", "orc"] = "delta"
    behavior_columns: BehaviorColumns = Field(default_factory=BehaviorColumns)
    item_columns: ItemColumns = Field(default_factory=ItemColumns)
    event_types: list[str] = Field(
        default_factory=lambda: ["rating", "view", "click", "purchase", "search", "review"], min_length=1
    )
    rating_min: float = 1.0
    rating_max: float = 5.0
    # Numeric `ts`: epoch seconds, milliseconds, or `auto` (values of 1e11 and above are milliseconds).
    ts_unit: Literal["auto", "seconds", "milliseconds"] = "auto"
    # Behaviours whose item is not in the catalogue: kept (and counted) or rejected as `unknown_item`.
    unknown_items: Literal["keep", "reject"] = "keep"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @model_validator(mode="after")
    def _consistent(self) -> IngestConfig:
        if self.rating_min >= self.rating_max:
            raise ValueError(f"ingest.rating_min {self.rating_min} must be below ingest.rating_max {self.rating_max}")
        if self.source == "table" and not (self.behaviors_source and self.items_source):
            raise ValueError("ingest.source 'table' needs 'ingest.behaviors_source' and 'ingest.items_source'")
        return self


class ModelConfig(Section):
    path: Text = "${BEHAVIORLM_CACHE}/models/all-MiniLM-L6-v2"
    max_length: Annotated[int, Field(ge=8)] = 128
    batch_size: Positive = 64
    pooling: Literal["mean", "cls"] = "mean"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"


class EmbedConfig(Section):
    # Item text: each entry is rendered only when all its {fields} are present, then entries are joined by spaces.
    item_fields: list[str] = Field(
        default_factory=lambda: ["{title}", "({year})", "Genres: {genres}.", "{description}"], min_length=1
    )
    # Text for an item or behaviour whose text is entirely missing (never a zero vector).
    empty_text: str = "unknown item"
    user_mode: Literal["pooled", "sequence"] = "pooled"
    # pooled: weight of each event type in a user's weighted mean of item vectors (unknown types weigh 0).
    event_weights: dict[str, NonNegative] = Field(
        default_factory=lambda: {
            "rating": 1.0,
            "purchase": 1.0,
            "review": 1.0,
            "click": 0.5,
            "search": 0.5,
            "view": 0.3,
        }  # fmt: skip
    )
    # Recency half-life in days, counted back from the user's latest event; 0 turns decay off.
    half_life_days: NonNegative = 0.0
    # Weight of a behaviour's own free text (search query, review) next to the item it refers to.
    text_weight: NonNegative = 1.0
    # sequence: how many of the user's latest behaviours are rendered as text and encoded.
    sequence_length: Positive = 20
    # Rows per Arrow batch handed to the embedding UDF (`spark.sql.execution.arrow.maxRecordsPerBatch`, set by the
    # embedding stages at run time): the one place this is set.
    arrow_batch_size: Positive = 2048
    # Subtract the catalogue's mean item vector before pooling and scoring. Every item text shares a large common
    # direction ("a movie title, year, genres"); without centring it dominates every user vector and all users
    # look alike (measured on ML-100K: neighbour-CF nDCG@10 0.41 -> 0.43, content-only 0.03 -> 0.14).
    center_items: bool = True
    # Warn when the model reads this share of the item texts' tokens as unknown, or when this share of sampled item
    # pairs have (near) identical vectors: the model cannot read the data.
    max_unknown_token_share: Share = 0.2
    max_identical_pair_share: Share = 0.2


class NeighborsConfig(Section):
    k: Positive = 50  # neighbour CF in `recommend` wants tens of neighbours; 10 is too few to vote
    mode: Literal["approx", "exact"] = "approx"
    cells: Annotated[int, Field(ge=0)] = 0  # k-means cells; 0 = about sqrt(number of users)
    nprobe: Positive = 8  # cells each user searches: the recall/speed knob
    max_cell_size: Positive = 4000  # candidates per task; bigger cells are split into chunks
    train_sample: Positive = 20000  # vectors sampled (to the driver) to train the centroids
    kmeans_iters: Positive = 10
    recall_sample: Positive = 200  # users whose neighbours are checked against exact search every run


Part = Literal["neighbors", "content", "popularity"]


class RecommendConfig(Section):
    k: Positive = 10
    # Blend of the per-user normalised parts: neighbour CF, content (user x item cosine), popularity.
    weights: dict[Part, NonNegative] = Field(
        default_factory=lambda: {"neighbors": 1.0, "content": 0.1, "popularity": 0.1}
    )
    # Neighbour CF votes with similarity ** power: a higher power trusts the closest neighbours more.
    similarity_power: float = 2.0
    # How much a neighbour's rating, centred on their own mean, moves their vote: strength x (1 + c x dev / range).
    rating_centering: float = 0.5
    content_candidates: Positive = 100  # items per user from the content side (cold items come in this way)
    # Optional table (path or catalog name) of user_id to recommend for, beside every user with behaviours; users
    # in it without history (cold users) get popular items.
    users: Text = ""


class AlsConfig(Section):
    rank: Positive = 64
    reg: NonNegative = 0.05
    alpha: NonNegative = 10.0
    iterations: Positive = 15


class EvaluateConfig(Section):
    split: Literal["stratified", "chronological"] = "stratified"
    ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.75  # share of each user's (user, item) pairs for training
    k: Positive = 10
    # Tune the blend on a validation split carved from the training part (never on the test part).
    tune: bool = True
    grid: dict[Literal["similarity_power", "content", "popularity"], Annotated[list[float], Field(min_length=1)]] = (
        Field(
            default_factory=lambda: {
                "similarity_power": [1.0, 2.0, 4.0],
                "content": [0.0, 0.1, 0.2],
                "popularity": [0.0, 0.1, 0.2],
            }
        )  # fmt: skip
    )
    baselines: list[Literal["popularity", "als"]] = Field(default_factory=lambda: ["popularity", "als"])
    als: AlsConfig = Field(default_factory=AlsConfig)
    # Folder under tables.root for the backtest's own tables, one subfolder per run id (train split, its user
    # vectors and neighbours): never the real tables, never another run's.
    workdir: Text = "_evaluate"


class CompleteConfig(Section):
    # Optional table (path or catalog name) of (user_id, item_id) pairs to predict, beside the unrated behaviours.
    pairs: Text = ""
    bias_epochs: Positive = 10  # baseline: alternating rounds of item then user bias fitting
    reg_user: NonNegative = 15.0
    reg_item: NonNegative = 10.0
    user_shrinkage: NonNegative = 20.0  # neighbour deviation x n / (n + shrinkage): few supporters, small correction
    item_neighbors: Positive = 100  # items most similar by embedding used for the item-item term
    item_similarity_power: float = 2.0
    item_shrinkage: NonNegative = 10.0
    item_weight: NonNegative = 1.0  # 0 turns the embedding item-item term off
    # Item attributes to fill when missing (columns of `items`; an array column is multi-label).
    attributes: list[str] = Field(default_factory=lambda: ["genres"])
    attribute_neighbors: Positive = 50
    attribute_similarity_power: float = 4.0  # a neighbour's vote: max(cosine, 0) ** power
    # Multi-label: keep values with at least this share of the neighbours' vote.
    label_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    # Share of observed ratings and attribute values hidden (seeded) and filled too, to measure the fills.
    holdout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class ReportConfig(Section):
    dir: Text = "reports"  # where run-<run_id>.html goes: a local folder or a file system URI
    sample_users: Positive = 2000  # user vectors projected to 2-D for the report (the only per-user rows collected)


class Config(Section):
    run_id: str = ""
    # The algorithms' seed: k-means sampling, recall samples, splits, holdouts.
    seed: int = SEED
    # Rows per side of every blocked vector product (users x users, users x items, items x items): bounds the
    # memory of one task.
    block_size: Positive = BLOCK_SIZE
    spark: SparkConfig = Field(default_factory=SparkConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    neighbors: NeighborsConfig = Field(default_factory=NeighborsConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    complete: CompleteConfig = Field(default_factory=CompleteConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    def but(self, **changes: Any) -> Config:
        """A copy with top-level fields replaced (e.g. `cfg.but(run_id="x")`), validated again."""
        return Config.model_validate({**self.model_dump(), **changes})


def load_config(paths: list[str] | None = None, overrides: list[str] | None = None) -> Config:
    """Start from the model defaults (spelled out in `conf/default.yaml`), apply each file in `paths`, then the
    `key=value` overrides, and return a validated `Config`."""
    merged = merge_sources(paths or [], overrides or [], Config)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(describe(exc.errors()[0])) from None
