"""Typed configuration: YAML files plus `--set key=value` overrides, validated by pydantic into frozen models.

Every job takes `--conf FILE` (repeatable; later files override earlier ones) and `--set a.b=value`. Values are
YAML-parsed, so `--set ingest.synthetic.users=500` is an int. An unknown key, a wrong type or a value out of range
raises `ConfigError` naming the key, before any Spark work starts. `${VAR}` in a string is replaced from the
environment; `BEHAVIORLM_CACHE` defaults to `~/.cache/behaviorlm` (where `behaviorlm setup` puts jars, data and
the model). Only the job layer reads a `Config`: library functions take plain parameters.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from behaviorlm.constants import BLOCK_SIZE, SEED
from behaviorlm.errors import ConfigError
from behaviorlm.overrides import describe, merge_sources
from behaviorlm.sections import (
    CACHE_ENV,
    CompleteConfig,
    EvaluateConfig,
    IntentsConfig,
    MlflowConfig,
    NeighborsConfig,
    NonNegative,
    Positive,
    PredictConfig,
    RecommendConfig,
    ReportConfig,
    SearchConfig,
    Section,
    SegmentsConfig,
    Share,
    SparkConf,
    Text,
    cache_dir,
)

__all__ = ["CACHE_ENV", "Config", "ConfigError", "cache_dir", "load_config"]


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
    segments: Text = "segments"
    item_segments: Text = "item_segments"
    user_interests: Text = "user_interests"
    segment_trends: Text = "segment_trends"
    next_behaviors: Text = "next_behaviors"
    queries: Text = "queries"
    query_results: Text = "query_results"
    query_audience: Text = "query_audience"
    intent_examples: Text = "intent_examples"
    intent_answers: Text = "intent_answers"
    messages: Text = "messages"
    message_intents: Text = "message_intents"

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


SourceFormat = Literal["delta", "parquet", "csv", "json", "orc"]


class IngestConfig(Section):
    source: Literal["movielens", "synthetic", "table"] = "movielens"
    # movielens: a folder with RecBole's ml-100k.{inter,item} or GroupLens' u.data/u.item.
    path: Text = "${BEHAVIORLM_CACHE}/data/ml-100k"
    # table: where the raw behaviours and items are (path or catalog name) and their format.
    behaviors_source: Text = ""
    items_source: Text = ""
    source_format: SourceFormat = "delta"
    # The items source's format where it differs (a CSV catalogue beside Parquet events); none: `source_format`.
    items_format: SourceFormat | None = None
    # Spark reader options for a path source, e.g. {sep: ";"} for a semicolon CSV, {multiLine: "true"} for a JSON
    # array file, {encoding: "ISO-8859-1"}. A CSV's defaults (header, multiLine, escape): `delta.csv_options`.
    source_options: dict[str, str | bool | int | float] = Field(default_factory=dict)
    # The items source's reader options where they differ (a comma CSV catalogue beside semicolon events); null:
    # `source_options`.
    items_source_options: dict[str, str | bool | int | float] | None = None
    behavior_columns: BehaviorColumns = Field(default_factory=BehaviorColumns)
    item_columns: ItemColumns = Field(default_factory=ItemColumns)
    event_types: list[str] = Field(
        default_factory=lambda: ["rating", "view", "click", "purchase", "search", "review"], min_length=1
    )
    rating_min: float = 1.0
    rating_max: float = 5.0
    # Numeric `ts`: epoch time in this unit, or `auto`: milliseconds from 1e11, microseconds from 1e14, nanoseconds
    # from 1e17 (Parquet's nanosecond timestamps, e.g. from pandas, are read as such numbers).
    ts_unit: Literal["auto", "seconds", "milliseconds", "microseconds", "nanoseconds"] = "auto"
    # Text `ts` in this Spark datetime pattern (e.g. "dd.MM.yyyy HH:mm"); none: ISO-8601 and Spark's usual forms.
    ts_format: str | None = None
    # Behaviours dated before this are `early_ts`: a placeholder date (0001-01-01, epoch 0) or digits such as
    # 20240501 read as epoch seconds (August 1970) would each be a user's first behaviour and stretch every trend
    # back to it. null: no bound (a log whose ts counts seconds from its own start).
    earliest_ts: Annotated[date | None, Field(strict=False)] = date(1971, 1, 1)  # "1971-01-01" from --set
    # The event type of every behaviour when the source has no event-type column (a click log: `click`).
    default_event_type: str | None = None
    # Behaviours whose item is not in the catalogue: kept (and counted) or rejected as `unknown_item`.
    unknown_items: Literal["keep", "reject"] = "keep"
    # snapshot: the source holds the whole history and replaces every table. append: it holds a batch of new rows
    # (a daily DAG's day): behaviours already in the table are left as they are (re-running a day adds nothing),
    # items are updated on their id, and a behaviour's item may be in the batch or the catalogue already ingested.
    mode: Literal["snapshot", "append"] = "snapshot"
    # table: a Spark SQL condition on the behaviours source's own columns, e.g. "event_date = '{{ ds }}'" for one
    # day of a table partitioned by date; none: every row.
    behaviors_where: str | None = None
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @model_validator(mode="after")
    def _consistent(self) -> IngestConfig:
        if self.rating_min >= self.rating_max:
            raise ValueError(f"ingest.rating_min {self.rating_min} must be below ingest.rating_max {self.rating_max}")
        if self.source == "table" and not (self.behaviors_source and self.items_source):
            raise ValueError("ingest.source 'table' needs 'ingest.behaviors_source' and 'ingest.items_source'")
        if self.default_event_type is not None and self.default_event_type not in self.event_types:
            raise ValueError(
                f"ingest.default_event_type {self.default_event_type!r} is not one of ingest.event_types "
                f"{self.event_types}"
            )
        return self


class ModelConfig(Section):
    # transformers: the Hugging Face folder at `path`. use-multilingual: Google's universal-sentence-encoder-
    # multilingual v3 (16 languages incl. Chinese; the optional extra `behaviorlm[multilingual]`; `path`, `pooling`
    # and `max_length` do not apply). auto: `path`, unless it cannot read the item texts (unknown-token share over
    # `embed.max_unknown_token_share`), then use-multilingual.
    backend: Literal["auto", "transformers", "use-multilingual"] = "auto"
    path: Text = "${BEHAVIORLM_CACHE}/models/all-MiniLM-L6-v2"
    max_length: Annotated[int, Field(ge=8)] = 128
    batch_size: Positive = 64
    pooling: Literal["mean", "cls"] = "mean"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # The share of a query's or message's letters, digits and symbols that must fall in tokens the model knows for it
    # to be matched (search, intents); a text read less is answered "the model reads too little of this text".
    min_readable_share: Share = 0.5


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
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    intents: IntentsConfig = Field(default_factory=IntentsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @model_validator(mode="after")
    def _weighted_event_types(self) -> Config:
        # A type without a weight weighs 0 in user vectors, popularity and interests: a log of only that type was
        # ingested whole and then gave nobody a vector or a recommendation, silently. 0 set on purpose is allowed.
        unweighted = [t for t in self.ingest.event_types if t not in self.embed.event_weights]
        if unweighted:
            raise ValueError(
                f"ingest.event_types accepts {unweighted[0]!r} but embed.event_weights gives it no weight: add "
                f"embed.event_weights.{unweighted[0]} (0 to keep such behaviours out of every score)"
            )
        return self

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
