"""The configuration schema: one frozen dataclass per section of the YAML files.

Defaults for every key live in ``conf/base.yaml`` so that a user reads one file to see
them; a field without a default here must be set there (or in an overlay). Each section
checks its own cross-field rules in ``__post_init__`` and raises ``ValueError``, which the
loader reports with the section's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from recsys_spark.columns import DEFAULT_SEED

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
    """Overrides for the synthetic generator; null keeps the size tier's value."""

    users: Optional[int] = None
    videos: Optional[int] = None
    events: Optional[int] = None
    # The simulated period ends here (UTC); the generator never emits later events.
    end_ts: str = "2026-06-30T00:00:00"
    days: int = 120
    partitions: Optional[int] = None


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
    """The final recommendations job."""

    k: int = 20

    def __post_init__(self):
        if self.k <= 0:
            raise ValueError(f"recommend.k must be a positive integer, got {self.k}.")


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
    # The files and overrides this config was loaded from, in order.
    sources: tuple[str, ...] = ()
