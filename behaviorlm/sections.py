"""The config's building blocks and the analysis stages' sections (neighbours, recommend, evaluate, complete,
segments, predict, report); `behaviorlm.config` assembles them with the data-side sections into `Config`.

Every section is strict (no "5" for 5), rejects unknown keys, is frozen and expands `${VAR}` in its strings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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
# EASE's item x item matrix: MLlib collects its packed Gram (n(n+1)/2 doubles) past the 1 GB default
# spark.driver.maxResultSize from about 16,400 items, and the inverse needs about 5 n² x 8 B of driver memory (4 GB at
# 10,000 items); the pruned co-occurrence model serves larger catalogues with nothing catalogue² anywhere.
EaseItems = Annotated[int, Field(ge=1, le=10_000)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class Section(BaseModel):
    """Every config section: strict types (no "5" for 5), unknown keys rejected, frozen, defaults expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class NeighborsConfig(Section):
    k: Positive = 50  # neighbour CF in `recommend` wants tens of neighbours; 10 is too few to vote
    mode: Literal["approx", "exact"] = "approx"
    cells: Annotated[int, Field(ge=0)] = 0  # k-means cells; 0 = about 2 sqrt(number of users)
    nprobe: Positive = 8  # cells each user searches: the recall/speed knob
    max_cell_size: Positive = 4000  # candidates per task; bigger cells are split into chunks
    train_sample: Positive = 100000  # vectors sampled (to the driver) to train the centroids
    kmeans_iters: Positive = 10
    recall_sample: Positive = 200  # users whose neighbours are checked against exact search every run
    # At most this many users are searched exactly even in approx mode: below it, training and probing the cells
    # costs more than the exact search (bench-ann: 23 s exact vs 28 s approximate at 20k users on 2 cores).
    exact_below: Annotated[int, Field(ge=0)] = 20000


Part = Literal["neighbors", "content", "popularity", "items", "onboarding"]


class ItemModelConfig(Section):
    """recommend's `items` part: EASE on the interaction matrix (behaviorlm/item_model.py)."""

    reg: NonNegative = 500.0  # L2 penalty of the item-on-items ridge regression
    max_items: EaseItems = 5000  # its catalogue² matrix is inverted on the driver; above: the pruned co-occurrence
    candidates: Positive = 100  # items it proposes per user
    neighbors: Positive = 100  # the pruned model's most similar items kept per item


class OnboardingConfig(Section):
    """recommend's `onboarding` part for thin histories: a ridge map from the text of a user's first behaviours to
    what users went on to choose (behaviorlm/onboarding.py); computed when `thin.weights` gives it a weight."""

    reg: NonNegative = 30.0  # L2 penalty (bench-coldstart validation: 10, 30, 100 -> 30; 3 slices: 10 and 30 tie)
    candidates: Positive = 100  # items it proposes per thin user
    # What a start is made of: the text of its items, their ids (for a catalogue whose item text says little: on
    # ML-100K both tie, bench-coldstart's user_ndcg_id_map; ids beyond the `max_ids` most frequent share one), or
    # auto: the one that ranks the later choices of a `holdout` share of the warm users better (text on a tie).
    features: Literal["text", "ids", "auto"] = "auto"
    max_ids: Positive = 2000
    holdout: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    # Users with a longer history the map needs to learn from; fewer: the thin users get the thin blend without it.
    min_users: Positive = 20


class ThinConfig(Section):
    """recommend's blend for users with a thin history; `max_history: 0` turns it off (one blend for everyone)."""

    max_history: Annotated[int, Field(ge=0)] = 3  # users with at most this many items seen use `weights` below
    # Defaults: the blend `make bench-coldstart` tuned on its validation users (3 slices) cut to their first 3 items.
    weights: dict[Part, NonNegative] = Field(
        default_factory=lambda: {"neighbors": 0.0, "content": 0.5, "popularity": 2.0, "items": 0.0, "onboarding": 2.0}
    )


class RecommendConfig(Section):
    k: Positive = 10
    # Blend of the per-user normalised parts: neighbour CF, content (user x item cosine), popularity, item-item
    # model. Defaults: the blend `make bench-recs` tuned on its validation split.
    weights: dict[Part, NonNegative] = Field(
        default_factory=lambda: {"neighbors": 1.0, "content": 0.2, "popularity": 0.2, "items": 2.0}
    )
    item_model: ItemModelConfig = Field(default_factory=ItemModelConfig)
    thin: ThinConfig = Field(default_factory=ThinConfig)
    onboarding: OnboardingConfig = Field(default_factory=OnboardingConfig)
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
    # Weights relative to the neighbour part's 1.0; a part left out of the grid gets weight 0.
    grid: dict[
        Literal["similarity_power", "content", "popularity", "items"], Annotated[list[float], Field(min_length=1)]
    ] = Field(
        default_factory=lambda: {
            "similarity_power": [2.0, 4.0],
            "content": [0.0, 0.1, 0.2],
            "popularity": [0.1, 0.2],
            "items": [1.0, 2.0, 4.0],
        }
    )  # fmt: skip
    baselines: list[Literal["popularity", "als"]] = Field(default_factory=lambda: ["popularity", "als"])
    als: AlsConfig = Field(default_factory=AlsConfig)
    # Folder under tables.root for the backtest's own tables, one subfolder per run id (train split, its user
    # vectors and neighbours): never the real tables, never another run's.
    workdir: Text = "_evaluate"


class AlsRatingsConfig(Section):
    """complete's latent-factor part: MLlib ALS (explicit) blended in (behaviorlm/factors.py)."""

    rank: int = Field(50, ge=0)  # 0 turns the part off
    reg: NonNegative = 0.1
    iterations: Positive = 15
    fit_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1  # observed ratings held out to fit the blend weight


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
    als: AlsRatingsConfig = Field(default_factory=AlsRatingsConfig)
    # Item attributes to fill when missing (columns of `items`; an array column is multi-label).
    attributes: list[str] = Field(default_factory=lambda: ["genres"])
    attribute_neighbors: Positive = 50
    attribute_similarity_power: float = 4.0  # a neighbour's vote: max(cosine, 0) ** power
    # Multi-label: keep values with at least this share of the neighbours' vote; auto: the share with the best
    # micro-F1 on a validation slice of the items that have the attribute (behaviorlm/attributes.py).
    label_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | Literal["auto"] = "auto"
    # Share of observed ratings and attribute values hidden (seeded) and filled too, to measure the fills.
    holdout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class ReportConfig(Section):
    enabled: bool = True  # `behaviorlm run` ends with the report (the `report` job writes it whatever this says)
    dir: Text = "reports"  # where run-<run_id>.html goes: a local folder or a file system URI
    sample_users: Positive = 2000  # user vectors projected to 2-D for the report (the only per-user rows collected)
    example_users: int = Field(3, ge=0)  # users shown with their history, recommendations, next behaviours


class MlflowConfig(Section):
    enabled: bool = True  # every `behaviorlm run` is an MLflow run (never fails the run; see jobs/tracking.py)
    tracking_uri: str = ""  # "" = MLFLOW_TRACKING_URI, else a local mlruns/ folder beside tables.root
    experiment: Text = "behaviorlm"  # on Databricks a workspace path, e.g. /Users/<you>/behaviorlm


class SegmentsConfig(Section):
    # Number of interest segments; 0 = the value of `k_grid` with the best cosine silhouette on a sample.
    k: Annotated[int, Field(ge=0)] = 0
    k_grid: Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=1)] = Field(
        default_factory=lambda: [20, 24, 28, 32]
    )
    silhouette_sample: Positive = 5000  # item vectors the silhouette is measured on (seeded sample)
    # k from the grid is at most items // min_segment_size (at least 2); a grid past that also tries smaller k, so
    # 60 items make 2 to 15 segments, not 20 to 32. A smaller cluster joins the segment whose centroid is closest.
    min_segment_size: Positive = 4
    algorithm: Literal["kmeans", "bisecting"] = "kmeans"  # MLlib KMeans / BisectingKMeans, cosine distance
    max_iter: Positive = 30
    per_user: Positive = 3  # interests kept per user (weights sum to 1)
    # A behaviour's weight in a user's interests halves every `half_life_days` back from the user's latest event;
    # 0 turns recency off.
    half_life_days: NonNegative = 7.0
    recent_days: Positive = 30  # "recent": within this many days of the user's latest event (recent_share)
    label_terms: Positive = 3  # distinctive terms (class-based TF-IDF) in a label
    label_items: Positive = 3  # most central items (medoids) in a label
    # Categorical item attribute (a column of `items`, string or array) whose dominant value leads the label;
    # "" or a missing column: none.
    attribute: str = "genres"
    period: Literal["day", "week", "month"] = "week"  # trend granularity
    trend_window: Annotated[int, Field(ge=2)] = 4  # trailing periods a period's share is compared against
    alert_z: NonNegative = 3.0  # |z| of the change above this raises `alert`


Source = Literal["transitions", "recent", "segments", "popularity", "together", "items"]


class PredictConfig(Section):
    k: Positive = 10
    # Consecutive behaviours further apart than this start a new session (no transition across); 0 = no gap rule.
    session_gap_hours: NonNegative = 0.0
    window: Positive = 5  # a behaviour counts as followed by each of the next `window` ones (decayed by distance)
    history: Positive = 10  # the user's latest behaviours that vote for the next one
    decay: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8  # vote of the j-th latest time (ties alike): decay ** (j - 1)
    recent_items: Positive = 10  # latest behaviours pooled (recency-weighted) into the recent-interest vector
    candidates: Positive = 200  # items per user from each source before blending
    # `together`: behaviours at most this far apart are one sitting (choices whose order the log does not know), and
    # pairs of a sitting at most `together_window` positions apart vote for each other.
    together_gap_seconds: NonNegative = 120.0
    together_window: Positive = 20
    item_reg: NonNegative = 500.0  # `items` source: EASE's L2 penalty (as recommend.item_model.reg)
    item_max_items: EaseItems = 5000  # `items`: EASE up to this many items, the pruned co-occurrence model above
    # Blend of the per-user normalised sources; tuned on the validation target when `tune` is on.
    weights: dict[Source, NonNegative] = Field(
        default_factory=lambda: {
            "transitions": 1.0,
            "recent": 0.3,
            "segments": 0.1,
            "popularity": 0.05,
            "together": 1.0,
            "items": 0.2,
        }
    )
    tune: bool = True
    grid: dict[Source, Annotated[list[float], Field(min_length=1)]] = Field(
        default_factory=lambda: {
            "recent": [0.0, 0.1, 0.3, 1.0],
            "segments": [0.0, 0.1, 0.3],
            "popularity": [0.0, 0.05, 0.2],
            "together": [0.0, 0.2, 0.5, 1.0],
            "items": [0.0, 0.2, 0.5],
        }  # fmt: skip
    )


class SearchConfig(Section):
    k: Positive = 10  # items per query
    audience_k: Positive = 50  # users per query in `query_audience`
    # A query with a user_id: score = (1 - w) x cosine(query, item) + w x cosine(user, item); the user's items removed.
    personal_weight: Share = 0.3


class IntentsConfig(Section):
    # logistic: MLlib multinomial LogisticRegression on the frozen embeddings; centroid: cosine to each intent's
    # mean example vector.
    method: Literal["logistic", "centroid"] = "logistic"
    reg: NonNegative = 0.001  # logistic: L2 regularisation (0 makes it overconfident: a poor out-of-scope threshold)
    max_iter: Positive = 200
    # Below this confidence a message is out of scope (intent null, fallback true); null = chosen on validation.
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    # Share of each intent's examples held out (seeded) to choose the threshold when it is not set.
    validation_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    oos_label: str = "oos"  # examples with this intent are out-of-scope examples, never an answerable intent
    # Match on the model's vectors concatenated with the multilingual encoder's (when installed and not the model
    # already): on CLINC150 the pair beats either alone (bench-intents).
    multilingual_features: bool = True
    model_dir: Text = "_models"  # the fitted classifier, under tables.root, one folder per run id
