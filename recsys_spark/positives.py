"""Positive labels on interaction events and the positive examples of each split.

An event is a positive by its type:

* ``watch``: ``watch_s / duration_s`` reaches ``training.positives.min_watch_fraction``.
  When the duration is unknown (null, zero or non-finite), the watch counts only if
  ``min_watch_s_unknown_duration`` is set and ``watch_s`` reaches it.
* ``like`` and ``share``: positive when ``training.positives.like`` / ``share`` is true.
* ``rating``: ``rating`` at least ``training.positives.min_rating``.
* ``impression`` and ``dislike``: never.

Deduplication: one (user, video) pair gives at most one example per split, at the time of
its earliest positive in that split. A user often watches, then likes, then rewatches a
video, and those events express one interest: the user wanted this video at that moment. With
``training.repeat_positives: false`` (the default) a pair gives one example overall, in
the split of its first positive, so validation and test targets are videos new to the
user.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.cleaning import replace_non_finite
from recsys_spark.columns import (
    DURATION_S,
    EVENT_TS,
    EVENT_TYPE,
    RATING,
    SPLIT,
    USER_ID,
    VIDEO_ID,
    WATCH_S,
)
from recsys_spark.settings import PositivesConfig

IS_POSITIVE = "is_positive"
# watch_s / duration_s capped at 1, for watch events of videos with a known duration.
WATCH_FRACTION = "watch_fraction"


def clean_interactions(interactions: DataFrame) -> DataFrame:
    """Replace NaN and infinite ``watch_s`` and ``rating`` values with null."""
    return replace_non_finite(interactions, [WATCH_S, RATING])


def clean_videos(videos: DataFrame) -> DataFrame:
    """Replace NaN and infinite ``duration_s`` values with null."""
    return replace_non_finite(videos, [DURATION_S])


def label_events(
    interactions: DataFrame, videos: DataFrame, positives: PositivesConfig
) -> DataFrame:
    """Add ``watch_fraction`` and ``is_positive`` to every interaction.

    Args:
      interactions: The canonical interactions (cleaned with :func:`clean_interactions`).
      videos: ``video_id``, ``duration_s`` (cleaned with :func:`clean_videos`).
      positives: The ``training.positives`` config section.

    Returns:
      ``interactions`` with ``watch_fraction`` (double, null unless a watch of a video
      with a known duration) and ``is_positive`` (boolean, never null).
    """
    durations = videos.groupBy(VIDEO_ID).agg(F.max(DURATION_S).alias("_duration"))
    duration = F.col("_duration")
    watch_s = F.col(WATCH_S)
    event_type = F.col(EVENT_TYPE)
    known_duration = F.coalesce(duration > 0, F.lit(False))

    is_watch = event_type == "watch"
    fraction = F.when(
        is_watch & known_duration & watch_s.isNotNull(),
        F.least(F.try_divide(F.greatest(watch_s, F.lit(0.0)), duration), F.lit(1.0)),
    )
    watch_positive = F.col(WATCH_FRACTION) >= positives.min_watch_fraction
    if positives.min_watch_s_unknown_duration is not None:
        watch_positive = watch_positive | (
            ~known_duration & (watch_s >= positives.min_watch_s_unknown_duration)
        )
    positive = (
        F.when(is_watch, watch_positive)
        .when(event_type == "like", F.lit(positives.like))
        .when(event_type == "share", F.lit(positives.share))
        .when(event_type == "rating", F.col(RATING) >= positives.min_rating)
        .otherwise(F.lit(False))
    )
    return (
        interactions.join(durations, on=VIDEO_ID, how="left")
        .withColumn(WATCH_FRACTION, fraction)
        .withColumn(IS_POSITIVE, F.coalesce(positive, F.lit(False)))
        .drop("_duration")
    )


def first_positives(events: DataFrame) -> DataFrame:
    """Return each (user, video) pair's first positive and the split it fell in.

    Args:
      events: ``user_id``, ``video_id``, ``event_ts``, ``is_positive``, ``split``.

    Returns:
      ``user_id``, ``video_id``, ``event_ts`` (time of the first positive), ``split``.
    """
    # Events of one pair at one timestamp always share a split, so the minimum over
    # (event_ts, split) picks the first positive's split deterministically.
    first = F.min(F.struct(F.col(EVENT_TS).alias("ts"), F.col(SPLIT).alias("split")))
    return (
        events.filter(F.col(IS_POSITIVE))
        .groupBy(USER_ID, VIDEO_ID)
        .agg(first.alias("_first"))
        .select(
            USER_ID,
            VIDEO_ID,
            F.col("_first.ts").alias(EVENT_TS),
            F.col("_first.split").alias(SPLIT),
        )
    )


def select_examples(events: DataFrame, repeat_positives: bool = False) -> DataFrame:
    """Return one positive example per (user, video) and split, at its earliest positive.

    Args:
      events: ``user_id``, ``video_id``, ``event_ts``, ``is_positive``, ``split``.
      repeat_positives: Keep a pair's examples in later splits too. False keeps only the
        split of the pair's first positive.

    Returns:
      ``user_id``, ``video_id``, ``event_ts``, ``split``.
    """
    per_split = (
        events.filter(F.col(IS_POSITIVE))
        .groupBy(USER_ID, VIDEO_ID, SPLIT)
        .agg(F.min(EVENT_TS).alias(EVENT_TS))
    )
    if repeat_positives:
        return per_split.select(USER_ID, VIDEO_ID, EVENT_TS, SPLIT)
    pair = Window.partitionBy(USER_ID, VIDEO_ID)
    return (
        per_split.withColumn("_first_ts", F.min(EVENT_TS).over(pair))
        .filter(F.col(EVENT_TS) == F.col("_first_ts"))
        .select(USER_ID, VIDEO_ID, EVENT_TS, SPLIT)
    )
