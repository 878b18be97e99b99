"""The resolved size and settings of one synthetic dataset, and its random streams."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from recsys_spark.settings import Config
from recsys_spark.synthetic.vocabulary import MAX_TOPICS

DAY_S = 86_400

# users, videos, events, topics of each size tier.
SIZE_TIERS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (200, 150, 5_000, 12),
    "s": (10_000, 5_000, 500_000, 32),
    "m": (100_000, 50_000, 10_000_000, 64),
    "l": (1_000_000, 500_000, 100_000_000, 64),
}

# Salts that give every kind of random draw its own stream: a block's stream is seeded
# with (seed, salt, block index) and never depends on which task computes it.
SALT_WORLD = 1
SALT_CATALOG = 2
SALT_USERS = 3
SALT_VIDEO_TEXT = 4
SALT_EVENTS = 5


def random_stream(seed: int, salt: int, index: int = 0) -> np.random.Generator:
    """Return the random generator of one (seed, salt, index) stream."""
    return np.random.default_rng([seed, salt, index])


def parse_utc(text: str, key: str) -> dt.datetime:
    """Parse an ISO 8601 time, reading a time without an offset as UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(
            f"{key} {text!r} is not an ISO 8601 time; use for example 2026-06-30T00:00:00."
        ) from error
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the generated tables; equal specs give equal tables.

    Times are whole seconds since the Unix epoch (UTC). Events fall in
    ``[start_s, end_s)``; uploads and signups may be earlier.
    """

    seed: int
    size: str
    users: int
    videos: int
    events: int
    topics: int
    start_s: int
    end_s: int
    block_size: int
    backlog_days: int
    freshness_half_life_days: float
    duplicate_share: float
    misinformation_share: float
    unreviewed_share: float
    blocked_share: float
    # Spark partitions of the generation tasks; None sizes them from cores and rows.
    partitions: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> SyntheticSpec:
        """Resolve ``config.data.size`` and the ``synthetic`` overrides into a spec."""
        synthetic = config.synthetic
        size = config.data.size
        if size not in SIZE_TIERS:
            raise ValueError(
                f"data.size {size!r} is not a size tier; use one of {list(SIZE_TIERS)}."
            )
        if config.seed < 0:
            raise ValueError(
                f"seed must be a non-negative integer for the generator, got {config.seed}."
            )
        users, videos, events, topics = SIZE_TIERS[size]
        topics = synthetic.topics or topics
        if topics > MAX_TOPICS:
            raise ValueError(
                f"synthetic.topics is {topics}, but the vocabulary has {MAX_TOPICS} topics; "
                f"set it to at most {MAX_TOPICS}."
            )
        end = parse_utc(synthetic.end_ts, "synthetic.end_ts")
        end_s = math.floor(end.timestamp())
        return cls(
            seed=config.seed,
            size=size,
            users=synthetic.users or users,
            videos=synthetic.videos or videos,
            events=synthetic.events or events,
            topics=topics,
            start_s=end_s - synthetic.days * DAY_S,
            end_s=end_s,
            block_size=synthetic.block_size,
            backlog_days=synthetic.backlog_days,
            freshness_half_life_days=synthetic.freshness_half_life_days,
            duplicate_share=synthetic.duplicate_share,
            misinformation_share=synthetic.misinformation_share,
            unreviewed_share=synthetic.unreviewed_share,
            blocked_share=synthetic.blocked_share,
            partitions=synthetic.partitions,
        )

    @property
    def user_blocks(self) -> int:
        return -(-self.users // self.block_size)

    @property
    def video_blocks(self) -> int:
        return -(-self.videos // self.block_size)

    def block_range(self, block: int, total: int) -> tuple[int, int]:
        """Return the [first, end) indices of ``block`` among ``total`` rows."""
        first = block * self.block_size
        return first, min(first + self.block_size, total)

    def folder_name(self) -> str:
        """Return the lake folder name of this dataset, such as ``s-seed42``."""
        return f"{self.size}-seed{self.seed}"
