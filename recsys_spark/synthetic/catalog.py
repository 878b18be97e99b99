"""The video catalog as numeric arrays, and the sampler that draws videos for impressions.

The catalog is built on the driver from one random stream and broadcast to the tasks that
write the videos table and simulate events. Pickled, it takes 113 bytes per video, so
about 56 MB for the 500k videos of the l tier. Text (titles, tags) is not stored here,
because each video's text is a pure function of the seed and the video index, made where
the videos table is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.spec import (
    DAY_S,
    SALT_CATALOG,
    SyntheticSpec,
    random_stream,
)
from recsys_spark.synthetic.world import World

# One creator per this many videos. Creators' shares of the uploads follow a Zipf law with
# this exponent over a random order of creators. Most creators upload one or two videos,
# and the largest uploads about 22% of 150 videos, 7% of 5,000 or 2.4% of 500,000.
VIDEOS_PER_CREATOR = 8
CREATOR_ZIPF_EXPONENT = 0.8
# Log-normal sigmas of a creator's and of a single video's popularity factor.
CREATOR_POPULARITY_SIGMA = 1.0
VIDEO_POPULARITY_SIGMA = 1.2
# Probability that a video is about its creator's main topic rather than a random one.
CREATOR_TOPIC_LOYALTY = 0.8
# Share of videos uploaded before the period (the backlog); the rest are uploaded at a
# steady rate during it.
BACKLOG_SHARE = 0.35
# Share of short videos (15 to 60 seconds); other durations are log-normal around the
# category median.
SHORTS_SHARE = 0.15
DURATION_SIGMA = 0.6
MAX_DURATION_S = 4 * 3600.0
# Re-uploads copy one of the most popular videos (this top share of originals), after a
# delay of one hour plus an exponential with this mean.
DUPLICATE_SOURCE_TOP_SHARE = 0.10
DUPLICATE_DELAY_MEAN_DAYS = 10.0
# A re-upload is unreviewed with this probability (else it keeps the original's flag) and
# keeps the original's regional blocks with this probability (else it is unblocked).
DUPLICATE_UNREVIEWED_PROBABILITY = 0.6
DUPLICATE_KEEPS_BLOCKS_PROBABILITY = 0.5

# Codes of the misinformation array.
MISINFORMATION_FALSE = 0
MISINFORMATION_TRUE = 1
MISINFORMATION_UNREVIEWED = -1

# Upload times and event times are packed with the group index into one int64 search
# key; 2**34 seconds is about 544 years, far more than any period.
_GROUP_SHIFT = 34


@dataclass(frozen=True)
class GroupedSampler:
    """Draws, per request, a video of a group uploaded before a time, by popularity.

    Videos are sorted by (group, upload time), so the videos of group ``g`` uploaded
    before ``t`` are one contiguous run, which one binary search finds. A second binary
    search over the cumulative popularity draws within the run. Both cost O(log videos).
    """

    order: np.ndarray
    keys: np.ndarray
    cumulative: np.ndarray
    group_start: np.ndarray
    origin_s: int

    @classmethod
    def build(
        cls,
        group: np.ndarray,
        num_groups: int,
        upload_s: np.ndarray,
        weight: np.ndarray,
        origin_s: int,
    ) -> GroupedSampler:
        """Index videos by ``group`` (values in [0, num_groups)) and upload time."""
        keys = (group.astype(np.int64) << _GROUP_SHIFT) + (upload_s - origin_s)
        order = np.argsort(keys, kind="stable")
        return cls(
            order=order.astype(np.int32),
            keys=keys[order],
            cumulative=np.concatenate([[0.0], np.cumsum(weight[order])]),
            group_start=np.searchsorted(group[order], np.arange(num_groups)),
            origin_s=origin_s,
        )

    def draw(self, group: np.ndarray, time_s: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Return one video index per request, or -1 where the group has no video yet.

        Args:
          group: Group of each request, in [0, num_groups).
          time_s: Request times; only videos uploaded strictly before them are drawn.
          uniform: One uniform [0, 1) number per request.
        """
        key = (group.astype(np.int64) << _GROUP_SHIFT) + (time_s - self.origin_s)
        low = self.group_start[group]
        high = np.searchsorted(self.keys, key)
        empty = high <= low
        # Empty requests get the dummy run [0, 1); their draw is discarded below.
        low = np.where(empty, 0, low)
        high = np.where(empty, 1, high)
        target = self.cumulative[low] + uniform * (self.cumulative[high] - self.cumulative[low])
        position = np.searchsorted(self.cumulative, target, side="right") - 1
        position = np.clip(position, low, high - 1)
        return np.where(empty, -1, self.order[position])


@dataclass(frozen=True)
class Catalog:
    """Every video and creator of a dataset, as index-aligned numeric arrays.

    Attributes:
      topic: Topic index of each video (into ``World.topic_names``).
      language: Language index (into ``vocabulary.LANGUAGES``).
      creator: Creator index; ``num_creators`` creators in all.
      upload_s: Upload time, whole seconds since the epoch.
      duration_s: Duration in seconds.
      popularity: Relative chance of being shown, before freshness (heavy-tailed, > 0).
      quality_z: Standardized log popularity, which also raises the chance of a watch.
      blocked_mask: Bit ``r`` set when the video is blocked in region ``r`` of
        ``vocabulary.REGIONS``.
      misinformation: ``MISINFORMATION_TRUE``, ``_FALSE`` or ``_UNREVIEWED``.
      original: For a re-upload, the index of the video it copies; -1 otherwise.
      samplers: Draw a video by (topic, language), by topic, and over all videos.
    """

    topic: np.ndarray
    language: np.ndarray
    creator: np.ndarray
    num_creators: int
    upload_s: np.ndarray
    duration_s: np.ndarray
    popularity: np.ndarray
    quality_z: np.ndarray
    blocked_mask: np.ndarray
    misinformation: np.ndarray
    original: np.ndarray
    by_topic_language: GroupedSampler
    by_topic: GroupedSampler
    overall: GroupedSampler

    @property
    def num_videos(self) -> int:
        return len(self.topic)


def _shares_scaled(base_share: float, rates: np.ndarray) -> np.ndarray:
    """Scale per-video relative rates to probabilities with mean ``base_share``, capped at 0.9."""
    return np.clip(base_share * rates / rates.mean(), 0.0, 0.9)


def _assign_by_mass(rng: np.random.Generator, mass: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Assign a class to each item so that each class gets about its share of the mass.

    Systematic sampling: the items, in random order, tile [0, 1) by their mass, and each
    item takes the class of its tile's midpoint (shifted by one random offset) under the
    classes' cumulative shares. Every class's mass is within one item's mass of its
    share, which independent draws cannot promise when a few items carry most of the mass.
    """
    order = rng.permutation(len(mass))
    tiles = np.cumsum(mass[order]) / mass.sum()
    midpoints = np.mod(tiles - mass[order] / mass.sum() / 2.0 + rng.random(), 1.0)
    classes = np.empty(len(mass), dtype=np.int64)
    classes[order] = np.searchsorted(np.cumsum(shares) / np.sum(shares), midpoints, side="right")
    return np.minimum(classes, len(shares) - 1)


def _blocked_masks(rng: np.random.Generator, blocked: np.ndarray) -> np.ndarray:
    """Return a region bit mask per video: one to three random regions where ``blocked``."""
    num_regions = len(vocab.REGIONS)
    count = 1 + rng.binomial(2, 0.3, len(blocked))
    region_order = np.argsort(rng.random((len(blocked), num_regions)), axis=1)
    bits = np.left_shift(1, region_order).astype(np.int64)
    chosen = np.arange(num_regions)[None, :] < count[:, None]
    return np.where(blocked, (bits * chosen).sum(axis=1), 0).astype(np.int64)


def build_catalog(spec: SyntheticSpec, world: World) -> Catalog:
    """Draw every creator and video of ``spec``, then mark the re-uploads."""
    rng = random_stream(spec.seed, SALT_CATALOG)
    num_videos = spec.videos
    num_creators = max(1, num_videos // VIDEOS_PER_CREATOR)
    categories = vocab.CATEGORIES

    # Creators: a language, a main topic, a Zipf share of uploads and a popularity.
    productivity = 1.0 / (1.0 + rng.permutation(num_creators)) ** CREATOR_ZIPF_EXPONENT
    creator_language = _assign_by_mass(rng, productivity, world.language_share)
    creator_topic = _assign_by_mass(rng, productivity, world.topic_share)
    creator_popularity = rng.lognormal(0.0, CREATOR_POPULARITY_SIGMA, num_creators)

    creator = rng.choice(num_creators, num_videos, p=productivity / productivity.sum())
    loyal = rng.random(num_videos) < CREATOR_TOPIC_LOYALTY
    topic = np.where(
        loyal,
        creator_topic[creator],
        rng.choice(world.num_topics, num_videos, p=world.topic_share),
    )
    language = creator_language[creator]
    popularity = creator_popularity[creator] * rng.lognormal(
        0.0, VIDEO_POPULARITY_SIGMA, num_videos
    )

    backlog_start = spec.start_s - spec.backlog_days * DAY_S
    in_backlog = (rng.random(num_videos) < BACKLOG_SHARE) & (spec.backlog_days > 0)
    upload_s = np.where(
        in_backlog,
        rng.integers(backlog_start, spec.start_s, num_videos)
        if spec.backlog_days
        else spec.start_s,
        rng.integers(spec.start_s, spec.end_s, num_videos),
    ).astype(np.int64)

    category = world.topic_category[topic]
    median = np.array([vocab.CATEGORY_MEDIAN_DURATION_S[name] for name in categories])[category]
    regular = np.clip(rng.lognormal(np.log(median), DURATION_SIGMA), 30.0, MAX_DURATION_S)
    short = rng.uniform(15.0, 60.0, num_videos)
    duration_s = np.round(np.where(rng.random(num_videos) < SHORTS_SHARE, short, regular))

    misinformation_rate = np.array(
        [vocab.CATEGORY_MISINFORMATION_RATE.get(name, 0.5) for name in categories]
    )[category]
    flag_probability = _shares_scaled(spec.misinformation_share, misinformation_rate)
    draw = rng.random(num_videos)
    misinformation = np.where(
        draw < flag_probability,
        MISINFORMATION_TRUE,
        np.where(
            draw < flag_probability + spec.unreviewed_share,
            MISINFORMATION_UNREVIEWED,
            MISINFORMATION_FALSE,
        ),
    ).astype(np.int8)

    blocking_rate = np.array([vocab.CATEGORY_BLOCKING_RATE.get(name, 1.0) for name in categories])[
        category
    ]
    blocked = rng.random(num_videos) < _shares_scaled(spec.blocked_share, blocking_rate)
    blocked_mask = _blocked_masks(rng, blocked)

    original = _mark_reuploads(
        rng,
        spec,
        topic,
        language,
        creator,
        num_creators,
        upload_s,
        duration_s,
        popularity,
        misinformation,
        blocked_mask,
    )

    log_popularity = np.log(popularity)
    quality_z = (log_popularity - log_popularity.mean()) / max(log_popularity.std(), 1e-9)
    origin_s = int(upload_s.min()) if num_videos else spec.start_s
    num_languages = len(vocab.LANGUAGES)
    return Catalog(
        topic=topic.astype(np.int16),
        language=language.astype(np.int8),
        creator=creator.astype(np.int32),
        num_creators=num_creators,
        upload_s=upload_s,
        duration_s=duration_s,
        popularity=popularity,
        quality_z=quality_z,
        blocked_mask=blocked_mask.astype(np.int32),
        misinformation=misinformation,
        original=original,
        by_topic_language=GroupedSampler.build(
            topic * num_languages + language,
            world.num_topics * num_languages,
            upload_s,
            popularity,
            origin_s,
        ),
        by_topic=GroupedSampler.build(topic, world.num_topics, upload_s, popularity, origin_s),
        overall=GroupedSampler.build(np.zeros_like(topic), 1, upload_s, popularity, origin_s),
    )


def _mark_reuploads(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    topic: np.ndarray,
    language: np.ndarray,
    creator: np.ndarray,
    num_creators: int,
    upload_s: np.ndarray,
    duration_s: np.ndarray,
    popularity: np.ndarray,
    misinformation: np.ndarray,
    blocked_mask: np.ndarray,
) -> np.ndarray:
    """Turn a share of videos into re-uploads of popular ones; return the ``original`` array.

    A re-upload copies its original's topic, language and (nearly) its duration, is
    uploaded later by another creator and draws a fraction of its popularity. The arrays
    are changed in place.
    """
    num_videos = len(topic)
    original = np.full(num_videos, -1, dtype=np.int64)
    num_duplicates = round(num_videos * spec.duplicate_share)
    if num_duplicates == 0 or num_creators < 2:
        return original

    # Sources: the most popular videos with at least an hour left in the period.
    eligible = np.flatnonzero(upload_s < spec.end_s - 3600)
    num_sources = max(1, int(len(eligible) * DUPLICATE_SOURCE_TOP_SHARE))
    if len(eligible) == 0 or num_sources + num_duplicates > num_videos:
        return original
    sources = eligible[np.argsort(-popularity[eligible], kind="stable")[:num_sources]]
    others = np.setdiff1d(np.arange(num_videos), sources)
    duplicates = rng.choice(others, num_duplicates, replace=False)
    source = rng.choice(sources, num_duplicates, p=popularity[sources] / popularity[sources].sum())

    original[duplicates] = source
    topic[duplicates] = topic[source]
    language[duplicates] = language[source]
    duration_s[duplicates] = np.maximum(
        1.0, np.round(duration_s[source] * rng.uniform(0.97, 1.0, num_duplicates))
    )
    other_creator = rng.integers(0, num_creators - 1, num_duplicates)
    creator[duplicates] = other_creator + (other_creator >= creator[source])

    delay = 3600.0 + rng.exponential(DUPLICATE_DELAY_MEAN_DAYS * DAY_S, num_duplicates)
    room = 0.9 * (spec.end_s - upload_s[source])
    upload_s[duplicates] = upload_s[source] + np.maximum(1, np.minimum(delay, room)).astype(
        np.int64
    )

    popularity[duplicates] = popularity[source] * rng.uniform(0.05, 0.4, num_duplicates)
    unreviewed = rng.random(num_duplicates) < DUPLICATE_UNREVIEWED_PROBABILITY
    misinformation[duplicates] = np.where(
        unreviewed, MISINFORMATION_UNREVIEWED, misinformation[source]
    )
    keeps_blocks = rng.random(num_duplicates) < DUPLICATE_KEEPS_BLOCKS_PROBABILITY
    blocked_mask[duplicates] = np.where(keeps_blocks, blocked_mask[source], 0)
    return original
