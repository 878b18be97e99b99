"""Spark transforms that prepare candidate generation: watched sets and the extra sources.

The transforms that read events use only events strictly before the user's snapshot time
(the ``as_of`` column of ``features/users/<snapshot>``), and the video transforms use
``age_days`` at the snapshot, so validation candidates never see the validation window.
The transforms return video lists as ``array<long>`` of ``video_idx``, best first. The
executors then map them to corpus positions, drop already-watched videos and cut each
list to its configured length (see :mod:`recsys_spark.retrieval.candidates`).
"""

from __future__ import annotations

from typing import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import (
    AGE_DAYS,
    AS_OF,
    EVENT_TS,
    EVENT_TYPE,
    HISTORY_VIDEO_IDX,
    REGION,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
    VIDEO_IDX,
)

# Columns returned by these transforms and read by the executors.
EXCLUDE_VIDEO_IDX = "exclude_video_idx"
NEIGHBOR_VIDEO_IDX = "neighbor_video_idx"
SIMILARITY = "similarity"
CO_VISITATION_VIDEO_IDX = "co_visitation_video_idx"
POPULAR_VIDEO_IDX = "popular_video_idx"
FRESH_VIDEO_IDX = "fresh_video_idx"

_MICROS_PER_DAY = 86_400 * 1_000_000


def _sorted_values(order: Column, value: Column) -> Column:
    """Aggregate ``value`` into an array ordered by ``order`` ascending."""
    pairs = F.array_sort(F.collect_list(F.struct(order.alias("order"), value.alias("value"))))
    return F.transform(pairs, lambda pair: pair["value"])


def watched_videos(
    interactions: DataFrame, users: DataFrame, videos: DataFrame, event_types: Sequence[str]
) -> DataFrame:
    """Collect each user's videos with an event of ``event_types`` before the snapshot.

    Args:
      interactions: ``user_id``, ``video_id``, ``event_ts``, ``event_type`` (raw).
      users: ``user_id``, ``as_of`` (a ``features/users/<snapshot>`` table).
      videos: ``video_id``, ``video_idx``.
      event_types: Event types that mark a video as watched; empty excludes nothing.

    Returns:
      ``user_id``, ``exclude_video_idx`` (array<long>, ascending), for users with at least
      one such event.
    """
    events = interactions.where(F.col(EVENT_TYPE).isin(list(event_types)))
    return (
        events.select(USER_ID, VIDEO_ID, EVENT_TS)
        .join(users.select(USER_ID, AS_OF), USER_ID)
        .where(F.col(EVENT_TS) < F.col(AS_OF))
        .join(videos.select(VIDEO_ID, VIDEO_IDX), VIDEO_ID)
        .groupBy(USER_ID)
        .agg(F.array_sort(F.collect_set(VIDEO_IDX)).alias(EXCLUDE_VIDEO_IDX))
    )


def co_visitation_table(users: DataFrame, history_length: int, max_neighbors: int) -> DataFrame:
    """Count how often two videos share a user's recent positives, as a cosine similarity.

    ``similarity(a, b) = users(a and b) / sqrt(users(a) * users(b))`` over the first
    ``history_length`` entries of each user's ``history_video_idx``. The normalisation
    keeps the most popular videos from being every video's nearest neighbour.

    Args:
      users: ``user_id``, ``history_video_idx`` (most recent first).
      history_length: Recent positives per user that form pairs; a user contributes at
        most ``history_length * (history_length - 1)`` ordered pairs.
      max_neighbors: Neighbours kept per video, by similarity, then co-watch count, then
        ``neighbor_video_idx``.

    Returns:
      ``video_idx``, ``neighbor_video_idx`` (long), ``similarity`` (double).
    """
    recent = users.select(
        USER_ID,
        F.array_distinct(F.slice(F.col(HISTORY_VIDEO_IDX), 1, history_length)).alias("_recent"),
    ).where(F.size("_recent") > 0)
    watched = recent.select(F.explode("_recent").alias(VIDEO_IDX), "_recent")
    watchers = watched.groupBy(VIDEO_IDX).agg(F.count(F.lit(1)).alias("_watchers"))
    pairs = (
        watched.select(VIDEO_IDX, F.explode("_recent").alias(NEIGHBOR_VIDEO_IDX))
        .where(F.col(VIDEO_IDX) != F.col(NEIGHBOR_VIDEO_IDX))
        .groupBy(VIDEO_IDX, NEIGHBOR_VIDEO_IDX)
        .agg(F.count(F.lit(1)).alias("_co_watchers"))
    )
    neighbor_watchers = watchers.select(
        F.col(VIDEO_IDX).alias(NEIGHBOR_VIDEO_IDX), F.col("_watchers").alias("_neighbor_watchers")
    )
    scored = (
        pairs.join(watchers, VIDEO_IDX)
        .join(neighbor_watchers, NEIGHBOR_VIDEO_IDX)
        .withColumn(
            SIMILARITY,
            F.col("_co_watchers") / F.sqrt(F.col("_watchers") * F.col("_neighbor_watchers")),
        )
    )
    order = Window.partitionBy(VIDEO_IDX).orderBy(
        F.desc(SIMILARITY), F.desc("_co_watchers"), F.asc(NEIGHBOR_VIDEO_IDX)
    )
    return (
        scored.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= max_neighbors)
        .select(VIDEO_IDX, NEIGHBOR_VIDEO_IDX, SIMILARITY)
    )


def co_visitation_candidates(
    users: DataFrame, table: DataFrame, history_length: int, count: int
) -> DataFrame:
    """Score videos co-watched with each user's recent positives.

    A video's score is the sum of its similarities to the first ``history_length`` entries
    of the user's ``history_video_idx``. Videos already in that history are left out.

    Args:
      users: ``user_id``, ``history_video_idx``.
      table: ``video_idx``, ``neighbor_video_idx``, ``similarity``
        (from :func:`co_visitation_table`).
      history_length: Recent positives per user used as seeds.
      count: Videos kept per user, by score, then ``video_idx``.

    Returns:
      ``user_id``, ``co_visitation_video_idx`` (array<long>, best first), for users with
      at least one co-watched video.
    """
    seeds = users.select(
        USER_ID,
        F.col(HISTORY_VIDEO_IDX).alias("_history"),
        F.explode(F.array_distinct(F.slice(F.col(HISTORY_VIDEO_IDX), 1, history_length))).alias(
            VIDEO_IDX
        ),
    )
    scored = (
        seeds.join(table, VIDEO_IDX)
        .where(~F.array_contains("_history", F.col(NEIGHBOR_VIDEO_IDX)))
        .groupBy(USER_ID, NEIGHBOR_VIDEO_IDX)
        .agg(F.sum(SIMILARITY).alias("_score"))
    )
    order = Window.partitionBy(USER_ID).orderBy(F.desc("_score"), F.asc(NEIGHBOR_VIDEO_IDX))
    return (
        scored.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= count)
        .groupBy(USER_ID)
        .agg(
            _sorted_values(F.col("_rank"), F.col(NEIGHBOR_VIDEO_IDX)).alias(CO_VISITATION_VIDEO_IDX)
        )
    )


def _recent_watchers(
    interactions: DataFrame,
    users: DataFrame,
    videos: DataFrame,
    window_days: float,
    event_types: Sequence[str],
) -> DataFrame:
    """Return distinct (user, region, video_idx) with an event in the window before as_of."""
    window_micros = round(window_days * _MICROS_PER_DAY)
    window_start = F.timestamp_micros(F.unix_micros(F.col(AS_OF)) - F.lit(window_micros))
    return (
        interactions.where(F.col(EVENT_TYPE).isin(list(event_types)))
        .select(USER_ID, VIDEO_ID, EVENT_TS)
        .join(users.select(USER_ID, REGION, AS_OF), USER_ID)
        .where((F.col(EVENT_TS) >= window_start) & (F.col(EVENT_TS) < F.col(AS_OF)))
        .join(videos.select(VIDEO_ID, VIDEO_IDX), VIDEO_ID)
        .select(USER_ID, REGION, VIDEO_IDX)
        .distinct()
    )


def popular_by_region(
    interactions: DataFrame,
    users: DataFrame,
    videos: DataFrame,
    window_days: float,
    count: int,
    event_types: Sequence[str],
) -> DataFrame:
    """Rank videos by distinct users of each region in the window before the snapshot.

    Args:
      interactions: ``user_id``, ``video_id``, ``event_ts``, ``event_type`` (raw).
      users: ``user_id``, ``region``, ``as_of``; a user's region is the snapshot's.
      videos: ``video_id``, ``video_idx``.
      window_days: Length of the window that ends at ``as_of`` (exclusive).
      count: Videos kept per region, by distinct users, then ``video_idx``.
      event_types: Event types that count as watching.

    Returns:
      ``region`` (never null), ``popular_video_idx`` (array<long>, most watched first).
    """
    watchers = (
        _recent_watchers(interactions, users, videos, window_days, event_types)
        .where(F.col(REGION).isNotNull())
        .groupBy(REGION, VIDEO_IDX)
        .agg(F.count(F.lit(1)).alias("_watchers"))
    )
    order = Window.partitionBy(REGION).orderBy(F.desc("_watchers"), F.asc(VIDEO_IDX))
    return (
        watchers.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= count)
        .groupBy(REGION)
        .agg(_sorted_values(F.col("_rank"), F.col(VIDEO_IDX)).alias(POPULAR_VIDEO_IDX))
    )


def popular_overall(
    interactions: DataFrame,
    users: DataFrame,
    videos: DataFrame,
    window_days: float,
    count: int,
    event_types: Sequence[str],
) -> DataFrame:
    """Rank videos by distinct users across all regions, for users without a regional list.

    Takes the arguments of :func:`popular_by_region`.

    Returns:
      One row: ``popular_video_idx`` (array<long>, most watched first; empty when the
      window has no events).
    """
    watchers = (
        _recent_watchers(interactions, users, videos, window_days, event_types)
        .groupBy(VIDEO_IDX)
        .agg(F.count(F.lit(1)).alias("_watchers"))
        .orderBy(F.desc("_watchers"), F.asc(VIDEO_IDX))
        .limit(count)
    )
    return watchers.agg(
        _sorted_values(F.struct(-F.col("_watchers"), F.col(VIDEO_IDX)), F.col(VIDEO_IDX)).alias(
            POPULAR_VIDEO_IDX
        )
    )


def fresh_videos(videos: DataFrame, max_age_days: float, count: int) -> DataFrame:
    """List the newest uploads that are at most ``max_age_days`` old at the snapshot.

    Args:
      videos: ``video_idx``, ``age_days``, ``upload_ts``, ``as_of`` (a
        ``features/videos/<snapshot>`` table, whose ``age_days`` is the time from upload
        to the snapshot, and 0 for videos uploaded after it).
      max_age_days: Oldest upload age that counts as fresh.
      count: Videos kept, newest first, then by ``video_idx``.

    Returns:
      One row: ``fresh_video_idx`` (array<long>; empty when nothing is fresh).
    """
    fresh = (
        videos.where(_released() & F.col(AGE_DAYS).between(0.0, max_age_days))
        .orderBy(F.asc(AGE_DAYS), F.asc(VIDEO_IDX))
        .limit(count)
    )
    return fresh.agg(
        _sorted_values(F.struct(F.col(AGE_DAYS), F.col(VIDEO_IDX)), F.col(VIDEO_IDX)).alias(
            FRESH_VIDEO_IDX
        )
    )


def unreleased_videos(videos: DataFrame) -> DataFrame:
    """Return the ``video_idx`` of videos uploaded after the snapshot (``upload_ts > as_of``).

    The index covers the corpus of the model's own snapshot, so the earlier snapshot's
    candidates must leave out the videos that did not exist yet. Their ``age_days`` is
    clipped to 0, so only ``upload_ts`` distinguishes them.
    """
    return videos.where(~_released()).select(VIDEO_IDX)


def _released() -> Column:
    """True for a video uploaded at or before its snapshot's ``as_of``, or of unknown age."""
    return F.col(UPLOAD_TS).isNull() | (F.col(UPLOAD_TS) <= F.col(AS_OF))
