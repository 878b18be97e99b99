"""Item-to-item co-occurrence in Spark: per-user scores and the candidate score column.

The co-visitation source (:mod:`recsys_spark.retrieval.sources`) counts how often two
videos share a user's recent positives (the first ``candidates.co_visitation_history``
entries of ``history_video_idx``, which contains at most ``features.history_length``) and
keeps each video's most similar neighbours. This module carries its score to the ranker:

- :func:`co_visitation_scores` sums, per user and video, the similarities to the user's
  seeds: the score that orders the co-visitation list;
- :func:`add_co_visitation_score` adds that score to every candidate, whichever source
  found it, so that the ranker can weigh it against the two-tower score.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import (
    CO_VISITATION_SCORE,
    HISTORY_VIDEO_IDX,
    USER_ID,
    VIDEO_ID,
    VIDEO_IDX,
)
from recsys_spark.retrieval.sources import NEIGHBOR_VIDEO_IDX, SIMILARITY


def co_visitation_scores(users: DataFrame, table: DataFrame, history_length: int) -> DataFrame:
    """Sum each neighbour's similarities to the first ``history_length`` seeds of a user.

    Videos in those seeds are left out: they are the user's own positives.

    Args:
      users: ``user_id``, ``history_video_idx`` (most recent first).
      table: ``video_idx``, ``neighbor_video_idx``, ``similarity``
        (:func:`recsys_spark.retrieval.sources.co_visitation_table`).
      history_length: Seeds per user.

    Returns:
      ``user_id``, ``neighbor_video_idx`` (long), ``co_visitation_score`` (double, > 0).
    """
    seeds = users.select(
        USER_ID,
        F.col(HISTORY_VIDEO_IDX).alias("_history"),
        F.explode(F.array_distinct(F.slice(F.col(HISTORY_VIDEO_IDX), 1, history_length))).alias(
            VIDEO_IDX
        ),
    )
    return (
        seeds.join(table, VIDEO_IDX)
        .where(~F.array_contains("_history", F.col(NEIGHBOR_VIDEO_IDX)))
        .groupBy(USER_ID, NEIGHBOR_VIDEO_IDX)
        .agg(F.sum(SIMILARITY).alias(CO_VISITATION_SCORE))
    )


def add_co_visitation_score(
    candidates: DataFrame, scores: DataFrame, videos: DataFrame
) -> DataFrame:
    """Add ``co_visitation_score`` to every candidate: 0.0 when no seed of the user has it.

    Args:
      candidates: ``user_id``, ``video_id``, any other columns (kept).
      scores: :func:`co_visitation_scores` output.
      videos: ``video_id``, ``video_idx``.

    Returns:
      ``candidates`` plus ``co_visitation_score`` (double, never null).
    """
    by_video_id = scores.join(
        videos.select(F.col(VIDEO_IDX).alias(NEIGHBOR_VIDEO_IDX), VIDEO_ID), NEIGHBOR_VIDEO_IDX
    ).select(USER_ID, VIDEO_ID, CO_VISITATION_SCORE)
    return candidates.join(by_video_id, [USER_ID, VIDEO_ID], "left").withColumn(
        CO_VISITATION_SCORE, F.coalesce(F.col(CO_VISITATION_SCORE).cast("double"), F.lit(0.0))
    )
