"""The event simulation: sessions of impressions, watches and reactions, per user block.

For each user the number of impressions follows the user's activity level and signup
date. Impressions come in sessions of ``SLATE_SIZE`` at times that follow a daily rhythm in
the user's region. Each impression picks a topic, from the user's taste or from what is
trending overall. It then picks a video of that topic, mostly in the user's language, in
proportion to its popularity times a freshness decay. A video blocked in the user's region
is never shown. Whether the user watches, for how long, and whether they like, dislike or
share it depends on how well the topic matches their taste, the language and the video's
quality. Every draw costs O(log videos), never O(videos).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_spark import columns as C
from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.catalog import MISINFORMATION_TRUE, Catalog
from recsys_spark.synthetic.spec import DAY_S, SALT_EVENTS, SyntheticSpec, random_stream
from recsys_spark.synthetic.users import UserBlock, format_ids, simulate_users
from recsys_spark.synthetic.world import World

# Event type codes: positions in columns.EVENT_TYPES.
IMPRESSION, WATCH, LIKE, DISLIKE, SHARE = (
    C.EVENT_TYPES.index(name) for name in ("impression", "watch", "like", "dislike", "share")
)

# Rows of all event types per impression, measured on the s tier with seed 42: per
# impression, 0.58 watches, 0.16 likes, 0.04 shares and a few dislikes. It converts the
# event budget into impressions, so other settings give about, not exactly, that budget.
ROWS_PER_IMPRESSION = 1.78
SLATE_SIZE = 6
# Seconds between consecutive impressions of a session: a fixed step plus a random part
# smaller than it, so impressions of a session stay in order.
IMPRESSION_STEP_S = 45
# Share of impressions whose topic comes from the user's taste; the rest follow overall
# topic popularity (a trending feed).
TASTE_SLOT_SHARE = 0.7
# Share of impressions restricted to the user's own language.
OWN_LANGUAGE_SHARE = 0.85
# Interest in a video decays with its age to this floor: floor + (1 - floor) * 2^(-age / half-life).
FRESHNESS_FLOOR = 0.15
# Proposals per sampling level before falling back to the next, broader level.
MAX_DRAWS_PER_LEVEL = 50
# Logistic models of the reactions: each logit is its BIAS plus the weighted terms below.
# Affinity is log(taste share * num_topics), clipped to [-3, 3], so it is 0 for a topic
# the user likes as much as the average topic. The watched share is watch_s / duration_s.
WATCH_BIAS = -1.4
WATCH_AFFINITY = 0.8
WATCH_OWN_LANGUAGE = 0.7
WATCH_QUALITY = 0.4
WATCH_MISINFORMATION = 0.4
REWATCH_PROBABILITY = 0.04

LIKE_BIAS = -4.0
LIKE_AFFINITY = 0.7
LIKE_WATCHED_SHARE = 2.5
LIKE_QUALITY = 0.3

DISLIKE_BIAS = -4.5
DISLIKE_AFFINITY = -0.4
DISLIKE_WATCHED_SHARE = -1.5
DISLIKE_MISINFORMATION = 2.0

SHARE_BIAS = -6.0
SHARE_AFFINITY = 0.6
SHARE_WATCHED_SHARE = 2.0
SHARE_MISINFORMATION = 0.5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _impression_counts(spec: SyntheticSpec, users: UserBlock, rng: np.random.Generator):
    """Return the first allowed event time and the number of impressions of each user.

    A user's expected rows are proportional to their activity times the share of the
    period after their signup, scaled so that each block expects its share of the event
    budget. Scaling per block keeps the total close to the budget even when a few heavy
    users dominate a small block.
    """
    lower_s = np.maximum(spec.start_s, users.signup_s + 1)
    active_share = (spec.end_s - lower_s) / (spec.end_s - spec.start_s)
    weight = users.activity * active_share
    if len(weight) == 0:
        return lower_s, np.zeros(0, dtype=np.int64)
    expected_rows = spec.events / spec.users * weight / weight.mean()
    return lower_s, rng.poisson(expected_rows / ROWS_PER_IMPRESSION)


def _session_times(
    rng: np.random.Generator,
    world: World,
    users: UserBlock,
    session_user: np.ndarray,
    lower_s: np.ndarray,
    end_s: int,
) -> np.ndarray:
    """Draw session start times in [lower_s, end_s) with an evening peak in local time.

    A uniform time in the user's window is moved to a local hour drawn from
    ``LOCAL_HOUR_WEIGHTS`` on the same local day. When the moved time falls outside the
    window, the uniform time is kept.
    """
    low = lower_s[session_user]
    uniform = low + np.floor(rng.random(len(session_user)) * (end_s - low)).astype(np.int64)
    hour_weights = np.asarray(vocab.LOCAL_HOUR_WEIGHTS, dtype=float)
    hour = rng.choice(24, len(session_user), p=hour_weights / hour_weights.sum())
    second_of_day = hour * 3600 + rng.integers(0, 3600, len(session_user))
    offset = world.region_utc_offset_s[users.region[session_user]].astype(np.int64)
    local = uniform + offset
    moved = uniform - np.mod(local, DAY_S) + second_of_day
    return np.where((moved >= low) & (moved < end_s), moved, uniform)


def _impression_topics(
    rng: np.random.Generator, world: World, users: UserBlock, row: np.ndarray
) -> np.ndarray:
    """Draw the topic of each impression: from the user's taste or from overall shares."""
    count = len(row)
    weights = users.favorite_weights[row]
    favorite_slot = (rng.random(count)[:, None] > np.cumsum(weights, axis=1)).sum(axis=1)
    favorite_slot = np.minimum(favorite_slot, weights.shape[1] - 1)
    favorite = users.favorite_topics[row, favorite_slot]
    # Rounding can leave the draw past the last used slot (-1); use the first favorite.
    favorite = np.where(favorite < 0, users.favorite_topics[row, 0], favorite)
    uniform_topic = rng.integers(0, world.num_topics, count)
    taste_topic = np.where(rng.random(count) < users.explore[row], uniform_topic, favorite)
    trending_topic = rng.choice(world.num_topics, count, p=world.topic_share)
    return np.where(rng.random(count) < TASTE_SLOT_SHARE, taste_topic, trending_topic)


def draw_videos(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    catalog: Catalog,
    topic: np.ndarray,
    language: np.ndarray,
    own_language: np.ndarray,
    time_s: np.ndarray,
    region: np.ndarray,
) -> np.ndarray:
    """Draw one video per impression, or -1 where none could be drawn.

    Proposals come by popularity among the videos uploaded strictly before the impression,
    first of the topic in the user's language (where ``own_language``), then of the topic,
    then of the whole catalog. A proposal is accepted with probability equal to its
    freshness decay and never when it is blocked in the user's region (rejection sampling,
    so accepted videos follow popularity times decay exactly within a level). After
    ``MAX_DRAWS_PER_LEVEL`` rejections a request moves to the next level.
    """
    num_languages = len(vocab.LANGUAGES)
    region_bit = np.left_shift(1, region.astype(np.int64))
    half_life_s = spec.freshness_half_life_days * DAY_S
    video = np.full(len(topic), -1, dtype=np.int64)
    levels = (
        (catalog.by_topic_language, topic * num_languages + language, own_language),
        (catalog.by_topic, topic, np.ones(len(topic), dtype=bool)),
        (catalog.overall, np.zeros_like(topic), np.ones(len(topic), dtype=bool)),
    )
    for sampler, group, applies in levels:
        pending = np.flatnonzero((video < 0) & applies)
        for _ in range(MAX_DRAWS_PER_LEVEL):
            if len(pending) == 0:
                break
            proposal = sampler.draw(group[pending], time_s[pending], rng.random(len(pending)))
            has_video = proposal >= 0
            pending, proposal = pending[has_video], proposal[has_video]
            age_s = time_s[pending] - catalog.upload_s[proposal]
            decay = FRESHNESS_FLOOR + (1.0 - FRESHNESS_FLOOR) * np.exp2(-age_s / half_life_s)
            allowed = (catalog.blocked_mask[proposal] & region_bit[pending]) == 0
            accepted = allowed & (rng.random(len(pending)) < decay)
            video[pending[accepted]] = proposal[accepted]
            pending = pending[~accepted]
    return video


def simulate_events(
    spec: SyntheticSpec, world: World, catalog: Catalog, block: int
) -> pd.DataFrame:
    """Simulate every event of the users of ``block``, in ``columns.INTERACTIONS_SCHEMA``."""
    users = simulate_users(spec, world, block)
    rng = random_stream(spec.seed, SALT_EVENTS, block)
    lower_s, impressions = _impression_counts(spec, users, rng)

    # One entry per impression: its user's block row and its position among their impressions.
    row = np.repeat(np.arange(len(users)), impressions)
    position = np.arange(len(row)) - np.repeat(np.cumsum(impressions) - impressions, impressions)
    sessions = -(-impressions // SLATE_SIZE)
    session_start = _session_times(
        rng,
        world,
        users,
        np.repeat(np.arange(len(users)), sessions),
        lower_s,
        spec.end_s,
    )
    first_session = np.repeat(np.cumsum(sessions) - sessions, impressions)
    slot = position % SLATE_SIZE
    time_s = (
        session_start[first_session + position // SLATE_SIZE]
        + slot * IMPRESSION_STEP_S
        + rng.integers(0, IMPRESSION_STEP_S // 2, len(row))
    )
    time_s = np.minimum(time_s, spec.end_s - 1)

    topic = _impression_topics(rng, world, users, row)
    own_language = rng.random(len(row)) < OWN_LANGUAGE_SHARE
    video = draw_videos(
        rng,
        spec,
        catalog,
        topic,
        users.language[row],
        own_language,
        time_s,
        users.region[row],
    )
    drawn = video >= 0
    row, time_s, video = row[drawn], time_s[drawn], video[drawn]
    return _reactions_frame(rng, spec, world, catalog, users, row, time_s, video)


def _reactions_frame(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    world: World,
    catalog: Catalog,
    users: UserBlock,
    row: np.ndarray,
    time_s: np.ndarray,
    video: np.ndarray,
) -> pd.DataFrame:
    """Decide watches and reactions for shown videos and return every event row."""
    count = len(row)
    taste = users.taste(row, catalog.topic[video], world.num_topics)
    affinity = np.clip(np.log(taste * world.num_topics), -3.0, 3.0)
    same_language = catalog.language[video] == users.language[row]
    quality = catalog.quality_z[video]
    misinformation = catalog.misinformation[video] == MISINFORMATION_TRUE

    watch_logit = (
        WATCH_BIAS
        + WATCH_AFFINITY * affinity
        + WATCH_OWN_LANGUAGE * same_language
        + WATCH_QUALITY * quality
        + WATCH_MISINFORMATION * misinformation
    )
    watched = rng.random(count) < _sigmoid(watch_logit)

    # The watched share of the duration is Beta-distributed, with a mean near 0.4 for a
    # poor match and 0.8 for a strong one. A few users watch more than once.
    engagement = _sigmoid(0.8 * affinity + 0.3 * quality)
    watched_share = rng.beta(0.8 + 3.5 * engagement, 2.2 - 1.2 * engagement)
    rewatch = rng.random(count) < REWATCH_PROBABILITY
    watched_share = np.where(rewatch, watched_share + rng.uniform(1.0, 2.0, count), watched_share)
    watch_s = np.maximum(1.0, np.round(watched_share * catalog.duration_s[video], 1))

    like_probability = _sigmoid(
        LIKE_BIAS
        + LIKE_AFFINITY * affinity
        + LIKE_WATCHED_SHARE * (watched_share - 0.5)
        + LIKE_QUALITY * quality
    )
    dislike_probability = _sigmoid(
        DISLIKE_BIAS
        + DISLIKE_AFFINITY * affinity
        + DISLIKE_WATCHED_SHARE * (watched_share - 0.5)
        + DISLIKE_MISINFORMATION * misinformation
    )
    share_probability = _sigmoid(
        SHARE_BIAS
        + SHARE_AFFINITY * affinity
        + SHARE_WATCHED_SHARE * watched_share
        + SHARE_MISINFORMATION * misinformation
    )
    reaction = rng.random(count)
    liked = watched & (reaction < like_probability)
    disliked = watched & ~liked & (reaction < like_probability + dislike_probability)
    shared = watched & (rng.random(count) < share_probability)

    watch_time_s = np.minimum(time_s + rng.integers(1, 8, count), spec.end_s - 1)
    reaction_time_s = np.minimum(
        watch_time_s + 1 + np.floor(rng.random(count) * watch_s).astype(np.int64),
        spec.end_s - 1,
    )
    parts = [
        (np.ones(count, dtype=bool), time_s, IMPRESSION),
        (watched, watch_time_s, WATCH),
        (liked, reaction_time_s, LIKE),
        (disliked, reaction_time_s, DISLIKE),
        (shared, reaction_time_s, SHARE),
    ]
    event_row = np.concatenate([row[mask] for mask, _, _ in parts])
    event_video = np.concatenate([video[mask] for mask, _, _ in parts])
    event_time = np.concatenate([times[mask] for mask, times, _ in parts])
    event_type = np.concatenate(
        [np.full(mask.sum(), code, dtype=np.int8) for mask, _, code in parts]
    )
    no_watch_s = np.full(count, np.nan)
    event_watch_s = np.concatenate(
        [(watch_s if code == WATCH else no_watch_s)[mask] for mask, _, code in parts]
    )
    order = np.lexsort((event_type, event_time, event_row))
    return _events_frame(
        spec,
        users,
        event_row[order],
        event_video[order],
        event_time[order],
        event_type[order],
        event_watch_s[order],
    )


def _events_frame(
    spec: SyntheticSpec,
    users: UserBlock,
    row: np.ndarray,
    video: np.ndarray,
    time_s: np.ndarray,
    event_type: np.ndarray,
    watch_s: np.ndarray,
) -> pd.DataFrame:
    """Return the event rows as a pandas frame in ``columns.INTERACTIONS_SCHEMA``."""
    user_ids = format_ids("u", users.index, spec.users)
    unique_videos, video_position = np.unique(video, return_inverse=True)
    video_ids = format_ids("v", unique_videos, spec.videos)
    return pd.DataFrame(
        {
            C.USER_ID: user_ids[row],
            C.VIDEO_ID: video_ids[video_position],
            C.EVENT_TS: pd.to_datetime(time_s, unit="s", utc=True),
            C.EVENT_TYPE: np.array(C.EVENT_TYPES, dtype=object)[event_type],
            C.WATCH_S: watch_s,
            C.RATING: np.full(len(row), np.nan),
        }
    )
