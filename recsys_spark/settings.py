"""The configuration schema: one frozen dataclass per section of the YAML files.

Defaults for every key live in ``conf/base.yaml`` so that a user reads one file to see
them; a field without a default here must be set there (or in an overlay). Each section
checks its own cross-field rules in ``__post_init__`` and raises ``ValueError``, which the
loader reports with the section's name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Optional

from recsys_spark.columns import DEFAULT_SEED, EVENT_TYPES, NEGATIVE_SOURCES

SIZE_TIERS = ("tiny", "s", "m", "l")


@dataclass(frozen=True)
class DataConfig:
    """Where the events come from."""

    source: Literal["synthetic", "movielens", "parquet"]
    # Folder of a MovieLens release or of canonical Parquet tables.
    path: Optional[str] = None
    # Synthetic size tier: tiny (tests), s (default), m, l (about 10^8 events, a cluster).
    size: Literal["tiny", "s", "m", "l"] = "s"

    def __post_init__(self):
        if self.source in ("movielens", "parquet") and not self.path:
            raise ValueError(
                f"data.path is required when data.source is {self.source!r}; "
                "set it with --set data.path=/path/to/folder."
            )


@dataclass(frozen=True)
class SyntheticConfig:
    """The synthetic generator; a null count keeps the size tier's value."""

    users: Optional[int] = None
    videos: Optional[int] = None
    events: Optional[int] = None
    # Number of topics (at most 64); null keeps the size tier's value.
    topics: Optional[int] = None
    # The simulated period ends here (UTC); the generator never emits later events.
    end_ts: str = "2026-06-30T00:00:00"
    days: int = 120
    # Spark partitions of the generation tasks, at most one per block; null sizes them from
    # the cores and the row counts. The tables do not depend on it.
    partitions: Optional[int] = None
    # Users (or videos) generated per block; every block draws from its own random stream,
    # so the tables depend on this value.
    block_size: int = 1000
    # Videos uploaded before the period are spread over this many days before its start.
    backlog_days: int = 365
    # Interest in a video halves every this many days after its upload, down to a floor.
    freshness_half_life_days: float = 7.0
    # Shares of videos: re-uploads of popular videos, flagged as misinformation,
    # not reviewed (misinformation null), blocked in one to three regions.
    duplicate_share: float = 0.03
    misinformation_share: float = 0.02
    unreviewed_share: float = 0.10
    blocked_share: float = 0.06

    def __post_init__(self):
        for name in ("users", "videos", "events", "topics", "partitions"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(
                    f"synthetic.{name} must be a positive integer or null, got {value}."
                )
        for name in ("days", "block_size"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"synthetic.{name} must be a positive integer, got {getattr(self, name)}."
                )
        if self.backlog_days < 0:
            raise ValueError(f"synthetic.backlog_days must be >= 0, got {self.backlog_days}.")
        if self.freshness_half_life_days <= 0:
            raise ValueError(
                "synthetic.freshness_half_life_days must be positive, "
                f"got {self.freshness_half_life_days}."
            )
        for name in (
            "duplicate_share",
            "misinformation_share",
            "unreviewed_share",
            "blocked_share",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"synthetic.{name} must be in [0, 1), got {value}.")
        if self.misinformation_share + self.unreviewed_share > 1.0:
            raise ValueError(
                "synthetic.misinformation_share + synthetic.unreviewed_share must be at most 1, "
                f"got {self.misinformation_share} + {self.unreviewed_share}."
            )


@dataclass(frozen=True)
class IngestConfig:
    """Validation bounds applied by the ingest job."""

    # Events before this instant are quarantined as out of range.
    min_event_ts: str = "1990-01-01T00:00:00"
    # Events later than the ingest time plus this many seconds are in the future.
    max_future_skew_s: int = 3600
    min_rating: float = 0.5
    max_rating: float = 5.0
    # Watch time may exceed the duration by this factor (seeking back, rewatching).
    max_watch_ratio: float = 10.0
    # MovieLens tags.dat/tags.csv: the most frequent user tags added to a movie's tags;
    # null adds all of them.
    max_user_tags: Optional[int] = 20

    def __post_init__(self):
        try:
            dt.datetime.fromisoformat(self.min_event_ts)
        except ValueError as error:
            raise ValueError(
                f"ingest.min_event_ts {self.min_event_ts!r} is not an ISO timestamp; use "
                "for example 1990-01-01T00:00:00 (UTC)."
            ) from error
        if self.max_future_skew_s < 0:
            raise ValueError(
                f"ingest.max_future_skew_s must be >= 0 seconds, got {self.max_future_skew_s}."
            )
        if not self.min_rating <= self.max_rating:
            raise ValueError(
                f"ingest.min_rating ({self.min_rating}) must not exceed ingest.max_rating "
                f"({self.max_rating})."
            )
        if not self.max_watch_ratio > 0:
            raise ValueError(
                f"ingest.max_watch_ratio must be positive, got {self.max_watch_ratio}."
            )
        if self.max_user_tags is not None and self.max_user_tags < 0:
            raise ValueError(
                f"ingest.max_user_tags must be >= 0 or null (all), got {self.max_user_tags}."
            )


@dataclass(frozen=True)
class LakeConfig:
    """Root of every table, model and run summary (local path, hdfs://, s3a://, dbfs:/)."""

    root: str


@dataclass(frozen=True)
class SparkConfig:
    """Spark session settings; ``conf`` passes any other Spark property through."""

    master: str = "local[*]"
    app_name: str = "recsys-spark"
    driver_memory: str = "4g"
    # Null sizes shuffle partitions from the core count and the data size tier.
    shuffle_partitions: Optional[int] = None
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecommendConfig:
    """The final recommendations job and the validate_output job."""

    k: int = 20
    # Candidates at lake/candidates/<snapshot> are scored, filtered and cut to k.
    snapshot: Literal["validation", "test"] = "test"
    # ranker: the selected ranker, failing when none is trained; retrieval: retrieval_score;
    # auto: the ranker when one is trained, otherwise retrieval_score (noted in the summary).
    scorer: Literal["auto", "ranker", "retrieval"] = "auto"
    # Model versions; null reads models/<kind>/LATEST.
    ranker_version: Optional[str] = None
    two_tower_version: Optional[str] = None
    # Best rule-eligible candidates per user passed to the list step (caps, shares, MMR).
    list_depth: int = 100
    # Most popular rule-eligible videos per region kept for backfill and fallback lists.
    backfill_pool: int = 1000
    # Regional popularity counts the events of this many days before the snapshot time.
    popularity_days: int = 30
    # Users without candidates get a fallback list if they had an event or signed up this
    # many days before the snapshot time; null: every user who signed up before it.
    active_days: Optional[int] = None
    # Offenders listed per failed check by validate_output.
    max_listed_offenders: int = 10

    def __post_init__(self):
        if self.k <= 0:
            raise ValueError(f"recommend.k must be a positive integer, got {self.k}.")
        if self.list_depth < self.k:
            raise ValueError(
                f"recommend.list_depth ({self.list_depth}) must be at least recommend.k "
                f"({self.k}); raise list_depth or lower k."
            )
        if self.backfill_pool < self.k:
            raise ValueError(
                f"recommend.backfill_pool ({self.backfill_pool}) must be at least recommend.k "
                f"({self.k}); raise backfill_pool or lower k."
            )
        for name in ("popularity_days", "max_listed_offenders"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"recommend.{name} must be a positive integer, got {getattr(self, name)}."
                )
        if self.active_days is not None and self.active_days <= 0:
            raise ValueError(
                f"recommend.active_days must be positive or null (every user who signed up "
                f"before the snapshot time), got {self.active_days}."
            )


@dataclass(frozen=True)
class RegionRuleConfig:
    """Drop videos blocked in the user's region; users without a region get only videos
    available everywhere."""

    enabled: bool = True


@dataclass(frozen=True)
class MisinformationRuleConfig:
    """Drop videos flagged as misinformation; unreviewed (null) videos follow a policy."""

    enabled: bool = True
    unreviewed: Literal["allow", "demote", "drop"] = "demote"
    # Subtracted from a demoted video's score; scores are min-max scaled to [0, 1] per user.
    demote_penalty: float = 0.5

    def __post_init__(self):
        if self.demote_penalty < 0:
            raise ValueError(
                f"rules.misinformation.demote_penalty must be >= 0, got {self.demote_penalty}."
            )


@dataclass(frozen=True)
class DuplicatesRuleConfig:
    """Near-duplicate clusters from title and tag shingles (MinHash) and embeddings."""

    enabled: bool = True
    # Two videos whose shingle sets have at least this Jaccard similarity are duplicates.
    min_jaccard: float = 0.7
    # MinHash LSH banding: bands * rows_per_band hash functions; a pair becomes a candidate
    # when all hashes of one band agree.
    bands: int = 8
    rows_per_band: int = 4
    # HashingTF size for the shingles.
    num_features: int = 262144
    # Two videos whose embeddings have at least this cosine similarity are duplicates;
    # null ignores embeddings. Null by default: two-tower embeddings place videos of one
    # topic close together, so they link distinct videos (see conf/base.yaml).
    min_cosine: Optional[float] = None
    # Random-hyperplane LSH for embeddings: tables of bits_per_table sign bits each.
    embedding_tables: int = 8
    bits_per_table: int = 16
    # LSH buckets with more videos than this are skipped (counted in the summary).
    max_bucket_size: int = 1000
    # Edge lists up to this size are resolved by union-find on the driver; longer ones by
    # label propagation in Spark, at most max_iterations rounds.
    max_driver_edges: int = 1_000_000
    max_iterations: int = 30

    def __post_init__(self):
        if not 0.0 < self.min_jaccard <= 1.0:
            raise ValueError(
                f"rules.duplicates.min_jaccard must be in (0, 1], got {self.min_jaccard}."
            )
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ValueError(
                f"rules.duplicates.min_cosine must be in [-1, 1] or null, got {self.min_cosine}."
            )
        if not 1 <= self.bits_per_table <= 62:
            raise ValueError(
                f"rules.duplicates.bits_per_table must be in [1, 62] (one long per table), "
                f"got {self.bits_per_table}."
            )
        for name in (
            "bands",
            "rows_per_band",
            "num_features",
            "embedding_tables",
            "max_bucket_size",
            "max_iterations",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"rules.duplicates.{name} must be a positive integer, got "
                    f"{getattr(self, name)}."
                )
        if self.max_driver_edges < 0:
            raise ValueError(
                "rules.duplicates.max_driver_edges must be >= 0 (0 always uses Spark label "
                f"propagation), got {self.max_driver_edges}."
            )


@dataclass(frozen=True)
class FreshnessRuleConfig:
    """Boost recent uploads, optionally guaranteeing a few fresh videos per list."""

    enabled: bool = True
    # Added to the score (min-max scaled to [0, 1] per user) of a video uploaded at the
    # snapshot time; the boost halves every half_life_days of age.
    boost: float = 0.1
    half_life_days: float = 7.0
    # Minimum videos per list uploaded at most fresh_days before the snapshot time, when the
    # user has that many eligible ones.
    min_fresh: int = 0
    fresh_days: float = 7.0

    def __post_init__(self):
        if self.half_life_days <= 0 or self.fresh_days <= 0:
            raise ValueError(
                "rules.freshness.half_life_days and fresh_days must be positive, got "
                f"{self.half_life_days} and {self.fresh_days}."
            )
        if self.boost < 0 or self.min_fresh < 0:
            raise ValueError(
                f"rules.freshness.boost and min_fresh must be >= 0, got {self.boost} and "
                f"{self.min_fresh}."
            )


@dataclass(frozen=True)
class FairnessRuleConfig:
    """Per-list caps per creator and category and a minimum long-tail share."""

    enabled: bool = True
    # Null: no cap.
    max_per_creator: Optional[int] = 2
    max_per_category: Optional[int] = 8
    # Minimum share of each list taken by long-tail videos or videos of new creators.
    min_long_tail_share: float = 0.2
    # The head is the most viewed videos that together take this share of all views.
    head_share: float = 0.8
    # A creator whose first upload is at most this many days before the snapshot is new.
    new_creator_days: float = 30.0

    def __post_init__(self):
        for name in ("max_per_creator", "max_per_category"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(
                    f"rules.fairness.{name} must be a positive integer or null, got {value}."
                )
        if not 0.0 <= self.min_long_tail_share <= 1.0:
            raise ValueError(
                "rules.fairness.min_long_tail_share must be in [0, 1], got "
                f"{self.min_long_tail_share}."
            )
        if not 0.0 < self.head_share <= 1.0:
            raise ValueError(f"rules.fairness.head_share must be in (0, 1], got {self.head_share}.")


@dataclass(frozen=True)
class DiversityRuleConfig:
    """Maximal marginal relevance (MMR) re-ranking of each list."""

    # mmr_embedding: cosine similarity of two-tower embeddings (category match for videos
    # without one); mmr_category: category match only; none: score order.
    method: Literal["mmr_embedding", "mmr_category", "none"] = "mmr_embedding"
    # MMR trade-off: lambda * score - (1 - lambda) * max similarity to the videos already
    # in the list; 1 keeps score order.
    mmr_lambda: float = 0.8

    def __post_init__(self):
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(
                f"rules.diversity.mmr_lambda must be in [0, 1], got {self.mmr_lambda}."
            )


@dataclass(frozen=True)
class RulesConfig:
    """Post-processing rules of the recommend job, applied in the order of the fields."""

    region: RegionRuleConfig = field(default_factory=RegionRuleConfig)
    misinformation: MisinformationRuleConfig = field(default_factory=MisinformationRuleConfig)
    # remove: drop videos the user already watched; allow: keep them.
    rewatch: Literal["remove", "allow"] = "remove"
    # Event types before the snapshot time that count as watched.
    watched_event_types: tuple[str, ...] = ("watch", "like", "dislike", "share", "rating")
    duplicates: DuplicatesRuleConfig = field(default_factory=DuplicatesRuleConfig)
    freshness: FreshnessRuleConfig = field(default_factory=FreshnessRuleConfig)
    fairness: FairnessRuleConfig = field(default_factory=FairnessRuleConfig)
    diversity: DiversityRuleConfig = field(default_factory=DiversityRuleConfig)

    def __post_init__(self):
        unknown = sorted(set(self.watched_event_types) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(
                f"rules.watched_event_types contains unknown event types {unknown}; "
                f"choose from {list(EVENT_TYPES)}."
            )


@dataclass(frozen=True)
class MlflowConfig:
    """Experiment tracking for the training jobs."""

    enabled: bool = False
    # Null: a file store under <lake.root>/mlruns (local lakes only).
    tracking_uri: Optional[str] = None
    experiment: str = "recsys-spark"


RankerName = Literal[
    "logistic_regression", "rating_regression", "xgboost_classifier", "xgboost_ranker", "ranknet"
]


@dataclass(frozen=True)
class LogisticRegressionConfig:
    """Spark MLlib logistic regression of the engagement probability."""

    reg_param: float = 0.001
    elastic_net_param: float = 0.0
    max_iter: int = 100


@dataclass(frozen=True)
class RatingRegressionConfig:
    """Spark MLlib regression of the explicit rating, trained only where ratings exist."""

    algorithm: Literal["linear", "gbt"] = "gbt"
    # Iterations of the linear regression, or trees of the GBT regressor.
    max_iter: int = 50
    # GBT only.
    max_depth: int = 5
    # Linear only.
    reg_param: float = 0.01


@dataclass(frozen=True)
class XGBoostClassifierConfig:
    """xgboost.spark.SparkXGBClassifier (binary:logistic) settings."""

    # Maximum boosting rounds.
    n_estimators: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    # Boosting stops when the held-out metric has not improved for this many rounds, and
    # predictions use the best round; null trains all n_estimators rounds.
    early_stopping_rounds: Optional[int] = 20
    # Share of the ranker-train users held out for early stopping (seeded).
    holdout_fraction: float = 0.1
    # Spark tasks that train together in barrier mode; each needs a free task slot.
    num_workers: int = 1

    def __post_init__(self):
        if self.early_stopping_rounds is not None and self.early_stopping_rounds <= 0:
            # The loader prefixes the section (ranker.xgboost_classifier or _ranker).
            raise ValueError(
                "early_stopping_rounds must be a positive integer or null (train all "
                f"n_estimators rounds), got {self.early_stopping_rounds}."
            )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(
                f"holdout_fraction must be strictly between 0 and 1, got {self.holdout_fraction}."
            )


@dataclass(frozen=True)
class XGBoostRankerConfig(XGBoostClassifierConfig):
    """xgboost.spark.SparkXGBRanker settings: one query group per user."""

    # rank:pairwise (pairwise logistic loss) or rank:ndcg (LambdaMART).
    objective: Literal["rank:pairwise", "rank:ndcg"] = "rank:pairwise"


@dataclass(frozen=True)
class RankNetConfig:
    """The TensorFlow pairwise ranker: an MLP trained on the driver with the RankNet loss."""

    hidden_units: tuple[int, ...] = (64, 32)
    learning_rate: float = 0.001
    # Maximum epochs; training stops earlier when the held-out loss stops improving.
    epochs: int = 20
    early_stopping_patience: int = 2
    # Share of the sampled users held out for early stopping (seeded).
    holdout_fraction: float = 0.1
    batch_size: int = 512
    # Negatives per user collected to the driver (seeded), beside all of the user's positives.
    negatives_per_user: int = 100
    # Rows collected to the driver for training; whole users are sampled until this many.
    max_train_rows: int = 200_000
    # (positive, negative) pairs drawn per user and epoch; a user's pairs beyond it are sampled.
    max_pairs_per_user: int = 200

    def __post_init__(self):
        if not self.hidden_units or any(units <= 0 for units in self.hidden_units):
            raise ValueError(
                f"ranker.ranknet.hidden_units must be a non-empty list of positive layer "
                f"sizes, got {list(self.hidden_units)}."
            )
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(
                f"ranker.ranknet.holdout_fraction must be in [0, 1), got {self.holdout_fraction}."
            )
        for name in (
            "epochs",
            "early_stopping_patience",
            "batch_size",
            "negatives_per_user",
            "max_train_rows",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"ranker.ranknet.{name} must be a positive integer, got {getattr(self, name)}."
                )
        if self.max_pairs_per_user <= 0:
            raise ValueError(
                "ranker.ranknet.max_pairs_per_user must be a positive integer, got "
                f"{self.max_pairs_per_user}."
            )


@dataclass(frozen=True)
class RankerConfig:
    """The train_ranker job: which rankers compete and how the winner is chosen."""

    models: tuple[RankerName, ...] = (
        "logistic_regression",
        "rating_regression",
        "xgboost_classifier",
        "xgboost_ranker",
        "ranknet",
    )
    # Selection metric: nDCG at this cut-off on the ranker-validation users (AUC breaks ties).
    k: int = 10
    # Share of the users active in the validation period held out for selection, chosen
    # by a seeded hash of user_id.
    validation_fraction: float = 0.2
    # Negatives kept per ranker-train user (seeded); null keeps all of them.
    max_negatives_per_user: Optional[int] = None
    logistic_regression: LogisticRegressionConfig = field(default_factory=LogisticRegressionConfig)
    rating_regression: RatingRegressionConfig = field(default_factory=RatingRegressionConfig)
    xgboost_classifier: XGBoostClassifierConfig = field(default_factory=XGBoostClassifierConfig)
    xgboost_ranker: XGBoostRankerConfig = field(default_factory=XGBoostRankerConfig)
    ranknet: RankNetConfig = field(default_factory=RankNetConfig)

    def __post_init__(self):
        if not self.models:
            raise ValueError("ranker.models must name at least one ranker.")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"ranker.models lists a ranker twice: {list(self.models)}.")
        if self.k <= 0:
            raise ValueError(f"ranker.k must be a positive integer, got {self.k}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                "ranker.validation_fraction must be strictly between 0 and 1, got "
                f"{self.validation_fraction}."
            )
        if self.max_negatives_per_user is not None and self.max_negatives_per_user <= 0:
            raise ValueError(
                "ranker.max_negatives_per_user must be positive or null (keep all), got "
                f"{self.max_negatives_per_user}."
            )


@dataclass(frozen=True)
class FeaturesConfig:
    """Point-in-time user and video features and the vocabularies (build_features)."""

    # Positives kept in the history features, most recent first.
    history_length: int = 20
    # Values that occur in fewer catalog rows than this are left out of the vocabularies.
    vocabulary_min_count: int = 1
    # Drop English stop words (the list of Spark ML's StopWordsRemover) from title tokens.
    remove_stop_words: bool = False
    # Upper edges of duration_bucket in seconds; a last bucket is open-ended.
    duration_bucket_edges_s: tuple[float, ...] = (60.0, 300.0, 1200.0, 3600.0)
    # Weight of the global rate in the smoothed watch-through and like rates, in views.
    rate_prior_views: float = 20.0
    # Maximum rows per Parquet file of the feature snapshots.
    rows_per_file: int = 500_000

    def __post_init__(self):
        if self.history_length <= 0:
            raise ValueError(
                f"features.history_length must be a positive integer, got {self.history_length}."
            )
        if self.vocabulary_min_count <= 0:
            raise ValueError(
                "features.vocabulary_min_count must be a positive integer, got "
                f"{self.vocabulary_min_count}."
            )
        edges = list(self.duration_bucket_edges_s)
        if not edges or edges != sorted(set(edges)) or edges[0] <= 0:
            raise ValueError(
                "features.duration_bucket_edges_s must be a non-empty, strictly increasing "
                f"list of positive seconds, got {edges}."
            )
        if self.rate_prior_views <= 0:
            raise ValueError(
                "features.rate_prior_views must be positive (it also keeps the rates defined "
                f"for videos without views), got {self.rate_prior_views}."
            )
        if self.rows_per_file <= 0:
            raise ValueError(
                f"features.rows_per_file must be a positive integer, got {self.rows_per_file}."
            )


@dataclass(frozen=True)
class PositivesConfig:
    """Rules for positive events. Every other event is context for features only."""

    # A watch is positive when watch_s / duration_s reaches this fraction.
    min_watch_fraction: float = 0.5
    # A watch of a video with unknown duration is positive when watch_s reaches this many
    # seconds; null: such watches are never positive.
    min_watch_s_unknown_duration: Optional[float] = None
    like: bool = True
    share: bool = True
    # A rating event is positive when its rating is at least this.
    min_rating: float = 4.0

    def __post_init__(self):
        if not 0.0 < self.min_watch_fraction <= 1.0:
            raise ValueError(
                "training.positives.min_watch_fraction must be in (0, 1], got "
                f"{self.min_watch_fraction}."
            )
        if self.min_watch_s_unknown_duration is not None and self.min_watch_s_unknown_duration <= 0:
            raise ValueError(
                "training.positives.min_watch_s_unknown_duration must be positive or null, got "
                f"{self.min_watch_s_unknown_duration}."
            )


@dataclass(frozen=True)
class NegativesConfig:
    """Negatives drawn per training positive, by source."""

    # Uniform over the video corpus.
    random: int = 2
    # Weighted by (training positives per video) ** popularity_exponent.
    popular: int = 2
    # Videos shown to the user (impression events) without a positive from that user.
    impression: int = 2
    # From <lake.root>/training/mined_negatives (written by mine_hard_negatives).
    mined: int = 0
    popularity_exponent: float = 0.75
    # Candidates drawn per requested negative, before the user's positives and duplicates
    # are removed; a row whose candidates run out gets fewer negatives.
    oversampling: float = 2.0

    def __post_init__(self):
        for name in ("random", "popular", "impression", "mined"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"training.negatives.{name} must be zero or more, got {getattr(self, name)}."
                )
        if self.popularity_exponent < 0:
            raise ValueError(
                "training.negatives.popularity_exponent must be zero or more, got "
                f"{self.popularity_exponent}."
            )
        if self.oversampling < 1.0:
            raise ValueError(
                f"training.negatives.oversampling must be at least 1, got {self.oversampling}."
            )


@dataclass(frozen=True)
class TrainingConfig:
    """Splits, positives and negatives of the training set (build_training_set)."""

    # time: global cut-offs; leave_last_n: each user's last positives; random: seeded
    # hash of (user_id, video_id).
    split: Literal["time", "leave_last_n", "random"] = "time"
    # Shares of the time range (time) or of (user, video) pairs (random).
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # ISO UTC timestamps that replace the fraction-based cut-offs of the time split.
    validation_start: Optional[str] = None
    test_start: Optional[str] = None
    # leave_last_n: positive videos per user held out for test, and as many for validation.
    leave_last_n: int = 1
    # Keep validation and test positives on videos the user already had a positive on
    # in an earlier split; false keeps only first-time positives.
    repeat_positives: bool = False
    # Maximum rows per Parquet file of training/{train,validation,test}.
    rows_per_file: int = 200_000
    positives: PositivesConfig = field(default_factory=PositivesConfig)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"training.{name} must be in [0, 1), got {value}.")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                "training.validation_fraction + training.test_fraction must be below 1 so "
                f"that training data remains, got {self.validation_fraction} + "
                f"{self.test_fraction}."
            )
        if self.leave_last_n <= 0:
            raise ValueError(
                f"training.leave_last_n must be a positive integer, got {self.leave_last_n}."
            )
        if self.rows_per_file <= 0:
            raise ValueError(
                f"training.rows_per_file must be a positive integer, got {self.rows_per_file}."
            )


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate job: cut-offs, the held-out split and the beyond-accuracy settings."""

    # Cut-offs K for every ranking metric.
    ks: tuple[int, ...] = (10, 50, 100)
    # Held-out positives that the recommendations are scored against (lake/training/<split>).
    split: Literal["validation", "test"] = "test"
    # Videos at or above this popularity percentile are the head; the rest are the long tail.
    long_tail_percentile: float = 0.8
    # Popularity-percentile bins in the long-tail plot.
    popularity_bins: int = 10
    # Re-score the test candidates with the selected ranker to measure the ranker's gain.
    score_ranker: bool = True
    # Recompute precision, recall, nDCG and MAP with pyspark.ml's RankingEvaluator and
    # record the largest difference (one extra Spark job per metric and cut-off).
    cross_check: bool = True
    report: bool = True

    def __post_init__(self):
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(
                f"evaluate.ks must be a non-empty list of positive cut-offs, got {list(self.ks)}."
            )
        if not 0.0 < self.long_tail_percentile < 1.0:
            raise ValueError(
                "evaluate.long_tail_percentile must be strictly between 0 and 1, got "
                f"{self.long_tail_percentile}."
            )
        if self.popularity_bins < 2:
            raise ValueError(
                f"evaluate.popularity_bins must be at least 2, got {self.popularity_bins}."
            )


@dataclass(frozen=True)
class AlsPeerConfig:
    """Spark MLlib ALS settings of one benchmark peer, named as in pyspark.ml.recommendation.ALS."""

    rank: int = 10
    max_iter: int = 15
    reg_param: float = 0.05
    # Confidence scale of implicit feedback; ignored when implicit_prefs is false.
    alpha: float = 1.0
    implicit_prefs: bool = False


@dataclass(frozen=True)
class EasePeerConfig:
    """cornac EASE settings."""

    lamb: float = 500.0
    # Keep only non-negative item-item weights (cornac's posB).
    positive_weights: bool = True
    # Train on 0/1 interactions instead of the rating values.
    binary: bool = True


@dataclass(frozen=True)
class BprPeerConfig:
    """cornac BPR settings."""

    k: int = 200
    max_iter: int = 100
    learning_rate: float = 0.01
    lambda_reg: float = 0.001


BenchmarkPeer = Literal["popularity", "als_explicit", "als_implicit", "ease", "bpr"]


@dataclass(frozen=True)
class BenchmarkConfig:
    """The benchmark job: the public MovieLens protocol, the peers and where results go."""

    # Recommendation list length; every metric is at this cut-off.
    k: int = 10
    # Share of each group's interactions that goes to training.
    ratio: float = 0.75
    # Group that the random split stratifies: item (the published MovieLens benchmark) or user.
    stratify_by: Literal["user", "item"] = "item"
    # Groups with fewer interactions than this are dropped before splitting.
    min_interactions: int = 1
    # Also run the temporal protocol: one global time cut-off at the ratio quantile.
    temporal: bool = True
    # Interaction types that count as a user-video interaction for the protocol.
    event_types: tuple[str, ...] = ("rating", "watch", "like", "share")
    peers: tuple[BenchmarkPeer, ...] = ("popularity", "als_explicit", "als_implicit", "ease", "bpr")
    als_explicit: AlsPeerConfig = field(default_factory=AlsPeerConfig)
    als_implicit: AlsPeerConfig = field(
        default_factory=lambda: AlsPeerConfig(
            rank=64, max_iter=15, reg_param=0.1, alpha=10.0, implicit_prefs=True
        )
    )
    ease: EasePeerConfig = field(default_factory=EasePeerConfig)
    bpr: BprPeerConfig = field(default_factory=BprPeerConfig)
    # Run our pipeline (two-tower, ranker, rules) on each protocol's training interactions.
    include_ours: bool = True
    # Extra dotted.key=value overrides for our pipeline's runs inside the benchmark. The
    # default makes every rated video a positive: in the protocol every test interaction
    # is relevant.
    pipeline_overrides: tuple[str, ...] = ("training.positives.min_rating=0.5",)
    # Markdown file whose "## MovieLens 100K vs peers" section is replaced; null skips it.
    markdown_path: Optional[str] = "BENCHMARKS.md"
    # Machine description written beside the tables; null describes this machine.
    machine: Optional[str] = None

    def __post_init__(self):
        if self.k <= 0:
            raise ValueError(f"benchmark.k must be a positive integer, got {self.k}.")
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"benchmark.ratio must be strictly between 0 and 1, got {self.ratio}.")
        if self.min_interactions < 1:
            raise ValueError(
                f"benchmark.min_interactions must be at least 1, got {self.min_interactions}."
            )
        if not self.event_types:
            raise ValueError("benchmark.event_types must name at least one event type.")


@dataclass(frozen=True)
class TwoTowerConfig:
    """The TFRS two-tower retrieval model (train_two_tower)."""

    # features: ids plus user, context and video features; id_only: collaborative
    # filtering with a user-id tower and a video-id tower.
    mode: Literal["features", "id_only"] = "features"
    # Size of the L2-normalised query and candidate embeddings.
    embedding_dim: int = 64
    # Size of the user-id and video-id embeddings (features mode; id_only uses embedding_dim).
    id_embedding_dim: int = 32
    # Size of each categorical feature embedding (demographics, category, tags, ...).
    feature_embedding_dim: int = 16
    # Hidden layers of each tower's MLP, before the output projection.
    hidden_units: tuple[int, ...] = (128,)
    # Watch-history width H; null uses the features manifest's history_length (the
    # features.history_length that build_features used).
    history_length: Optional[int] = None
    # Tags and title tokens kept per video, ""-padded.
    tags_length: int = 8
    title_length: int = 12
    # Softmax temperature applied to the cosine scores.
    temperature: float = 0.05
    # Subtract log(sampling probability) from each candidate's logit.
    logq_correction: bool = True
    # A duplicate of a row's positive elsewhere in the batch is not a negative for it.
    remove_accidental_hits: bool = True
    # Uniform random corpus videos added to each batch as negatives for every query.
    random_negatives: int = 0
    # Negatives from the training rows' negative_video_idx appended per query; 0 disables.
    row_negatives: int = 0
    # negative_types that row_negatives takes, in row order.
    row_negative_types: tuple[str, ...] = ("impression", "mined", "popular", "random")
    optimizer: Literal["adam", "adagrad"] = "adam"
    learning_rate: float = 0.005
    batch_size: int = 512
    epochs: int = 8
    # Training stops after this many epochs in a row without a better validation recall
    # (0 stops at the first); the best epoch is restored either way.
    early_stopping_patience: int = 2
    # Steps per epoch, at most one pass over training/train; null makes it one pass.
    steps_per_epoch: Optional[int] = None
    # Training steps run per call of the compiled train function. More steps save Python
    # overhead per step but trace a larger function.
    steps_per_execution: int = 1
    # Rows in the seeded shuffle buffer while streaming training/train.
    shuffle_buffer: int = 50_000
    # Rows per record batch read from Parquet.
    read_batch_rows: int = 8192
    # Cut-off K of the validation recall (exact top-K over the whole corpus).
    recall_k: int = 100
    # Validation rows scored per epoch (the first rows in file order); null scores all.
    validation_max_rows: Optional[int] = 20_000
    # Video feature snapshot (features/videos/<snapshot>) of the training corpus and of
    # the exported embeddings.
    snapshot: Literal["validation", "test"] = "test"
    # Videos returned by the retrieval SavedModel.
    retrieval_k: int = 100
    # ScaNN partitioning of the retrieval SavedModel; null sizes it from the corpus:
    # about sqrt(n) leaves, searching a tenth of them or enough to cover 20 x retrieval_k
    # videos, and 4 x retrieval_k candidates rescored exactly.
    scann_num_leaves: Optional[int] = None
    scann_leaves_to_search: Optional[int] = None
    scann_reorder_candidates: Optional[int] = None
    # Local folder for checkpoints and exports before upload; null uses a temporary folder.
    work_dir: Optional[str] = None

    def __post_init__(self):
        positive = (
            "embedding_dim",
            "id_embedding_dim",
            "feature_embedding_dim",
            "tags_length",
            "title_length",
            "batch_size",
            "epochs",
            "steps_per_execution",
            "shuffle_buffer",
            "read_batch_rows",
            "recall_k",
            "retrieval_k",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"two_tower.{name} must be a positive integer, got {getattr(self, name)}."
                )
        optional_positive = (
            "history_length",
            "steps_per_epoch",
            "validation_max_rows",
            "scann_num_leaves",
            "scann_leaves_to_search",
            "scann_reorder_candidates",
        )
        for name in optional_positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(
                    f"two_tower.{name} must be a positive integer or null, got {value}."
                )
        for name in ("random_negatives", "row_negatives", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"two_tower.{name} must be zero or positive, got {getattr(self, name)}."
                )
        if any(units <= 0 for units in self.hidden_units):
            raise ValueError(
                "two_tower.hidden_units must list positive layer sizes (or be empty), got "
                f"{list(self.hidden_units)}."
            )
        if self.temperature <= 0:
            raise ValueError(f"two_tower.temperature must be positive, got {self.temperature}.")
        if self.learning_rate <= 0:
            raise ValueError(f"two_tower.learning_rate must be positive, got {self.learning_rate}.")
        unknown = sorted(set(self.row_negative_types) - set(NEGATIVE_SOURCES))
        if unknown:
            raise ValueError(
                f"two_tower.row_negative_types contains unknown types {unknown}; choose from "
                f"{list(NEGATIVE_SOURCES)}."
            )


@dataclass(frozen=True)
class IndexConfig:
    """The build_index job: a ScaNN searcher over the two-tower video embeddings."""

    # Two-tower model version to index; null reads models/two_tower/LATEST.
    model_version: Optional[str] = None
    # Corpora with fewer videos are searched exactly (ScaNN brute force in float32).
    brute_force_threshold: int = 20_000
    # k-means leaves; null uses round(sqrt(number of videos)).
    num_leaves: Optional[int] = None
    # Share of the leaves searched per query (rounded up, at least one).
    leaves_to_search_fraction: float = 0.05
    # Videos sampled to train the k-means tree and the hashing codebooks.
    training_sample_size: int = 250_000
    # Asymmetric hashing: dimensions per 4-bit code block.
    dims_per_block: int = 2
    # Anisotropic quantization weight for dot-product search; ScaNN suggests 0.2.
    anisotropic_quantization_threshold: float = 0.2
    # A top-k search rescores k * reorder_multiplier hashed-score neighbours exactly.
    reorder_multiplier: int = 4
    # ScaNN training threads; 0 uses every core.
    training_threads: int = 0
    # Repeated video_id in the embeddings: dedupe (keep the smallest video_idx) or fail.
    on_duplicate: Literal["dedupe", "fail"] = "dedupe"
    # Recall@recall_k against exact search, measured at build time on a seeded sample.
    recall_k: int = 100
    recall_queries: int = 1000
    # User features snapshot whose users are the recall queries; without that table the
    # queries are sampled video embeddings.
    recall_snapshot: Literal["validation", "test"] = "validation"
    # The build fails when the measured recall is below this.
    min_recall: float = 0.9
    # Widen the search of a tree index (more leaves, then more re-ordering) until the
    # recall reaches min_recall.
    tune_search: bool = True

    def __post_init__(self):
        for name in (
            "brute_force_threshold",
            "training_sample_size",
            "dims_per_block",
            "reorder_multiplier",
            "recall_k",
            "recall_queries",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"index.{name} must be a positive integer, got {getattr(self, name)}."
                )
        if self.num_leaves is not None and self.num_leaves <= 0:
            raise ValueError(f"index.num_leaves must be positive or null, got {self.num_leaves}.")
        if not 0.0 < self.leaves_to_search_fraction <= 1.0:
            raise ValueError(
                "index.leaves_to_search_fraction must be in (0, 1], got "
                f"{self.leaves_to_search_fraction}."
            )
        if self.training_threads < 0:
            raise ValueError(
                f"index.training_threads must be 0 (every core) or more, got "
                f"{self.training_threads}."
            )
        if not 0.0 <= self.min_recall <= 1.0:
            raise ValueError(f"index.min_recall must be in [0, 1], got {self.min_recall}.")


@dataclass(frozen=True)
class CandidatesConfig:
    """The generate_candidates job: two-tower retrieval plus the extra candidate sources."""

    # Index version to search; null reads models/index/LATEST.
    index_version: Optional[str] = None
    # Feature snapshots to generate candidates for.
    snapshots: tuple[Literal["validation", "test"], ...] = ("validation", "test")
    # Two-tower neighbours per user after already-watched videos are removed.
    num_candidates: int = 200
    # Extra neighbours fetched in the first search so that removing watched videos
    # rarely needs a second one.
    overfetch: int = 50
    # Events that mark a video as already watched and exclude it from the user's candidates.
    exclude_event_types: tuple[str, ...] = ("watch", "like", "dislike", "share", "rating")
    # Co-visitation: videos co-watched with the user's recent positives.
    co_visitation: int = 50
    # Most recent positives per user used to count co-watched pairs and to seed the source.
    co_visitation_history: int = 20
    # Most similar videos kept per video in the co-visitation table.
    co_visitation_neighbors: int = 50
    # Most watched videos in the user's region over the window before the snapshot.
    popular_region: int = 50
    popular_window_days: float = 30.0
    # Events that count a user as a viewer of a video for the popular source.
    popular_event_types: tuple[str, ...] = ("watch", "like", "share", "rating")
    # Newest uploads at most fresh_max_age_days old at the snapshot.
    fresh: int = 20
    fresh_max_age_days: float = 7.0
    # Users per query-model call and ScaNN search on an executor.
    batch_size: int = 1024
    # Partitions of the user table that the executors search; null: 2 per default core.
    partitions: Optional[int] = None
    # TensorFlow intra-op and inter-op threads per Python worker; Spark already runs one
    # task per core.
    tf_threads: int = 1

    def __post_init__(self):
        if not self.snapshots:
            raise ValueError("candidates.snapshots must name at least one snapshot.")
        if len(set(self.snapshots)) != len(self.snapshots):
            raise ValueError(
                f"candidates.snapshots lists a snapshot twice: {list(self.snapshots)}."
            )
        for name in ("num_candidates", "batch_size", "tf_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"candidates.{name} must be a positive integer, got {getattr(self, name)}."
                )
        for name in (
            "overfetch",
            "co_visitation",
            "co_visitation_history",
            "co_visitation_neighbors",
            "popular_region",
            "fresh",
        ):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"candidates.{name} must be zero or more, got {getattr(self, name)}."
                )
        for name in ("popular_window_days", "fresh_max_age_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"candidates.{name} must be positive, got {getattr(self, name)}.")
        if self.partitions is not None and self.partitions <= 0:
            raise ValueError(
                f"candidates.partitions must be positive or null, got {self.partitions}."
            )


@dataclass(frozen=True)
class MiningConfig:
    """The mine_hard_negatives job: top-ranked non-positives for a second training round."""

    # Negatives kept per user.
    num_negatives: int = 20
    # Non-positive neighbours skipped at the top of each user's list, because the closest
    # ones are often unlabelled positives rather than negatives.
    skip_top: int = 10
    # User features snapshot whose users are mined (validation: as of the training cut-off).
    snapshot: Literal["validation", "test"] = "validation"

    def __post_init__(self):
        if self.num_negatives <= 0:
            raise ValueError(
                f"mining.num_negatives must be a positive integer, got {self.num_negatives}."
            )
        if self.skip_top < 0:
            raise ValueError(f"mining.skip_top must be zero or more, got {self.skip_top}.")


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    data: DataConfig
    lake: LakeConfig
    seed: int = DEFAULT_SEED
    # Date of this run's output partition (YYYY-MM-DD); null uses today's UTC date.
    run_date: Optional[str] = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    candidates: CandidatesConfig = field(default_factory=CandidatesConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    # The files and overrides this config was loaded from, in order.
    sources: tuple[str, ...] = ()
