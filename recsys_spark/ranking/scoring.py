"""Scoring of candidate lists with the selected ranker, on Spark.

The recommend job calls :func:`score_candidates`; everything runs on the executors (the
Spark ML pipelines natively, RankNet through ``mapInPandas``), so it scales with the
cluster.
"""

from __future__ import annotations

import logging
import posixpath

from pyspark.sql import DataFrame, SparkSession

from recsys_spark import io
from recsys_spark.columns import SCORE
from recsys_spark.ranking.artifacts import load_ranker
from recsys_spark.ranking.dataset import build_ranking_features

logger = logging.getLogger(__name__)


def score_candidates(
    spark: SparkSession, lake: io.Lake, snapshot: str, version: str | None = None
) -> DataFrame:
    """Score every candidate of ``candidates/<snapshot>`` with a saved ranker.

    Features come from ``features/users/<snapshot>`` and ``features/videos/<snapshot>``
    through :func:`~recsys_spark.ranking.dataset.build_ranking_features`, the transform
    the ranker was trained on.

    Args:
      spark: The session.
      lake: The lake holding the candidates, features and ``models/ranker``.
      snapshot: ``validation`` or ``test`` (see docs/lake.md).
      version: A ranker version under ``models/ranker``; None uses ``LATEST``.

    Returns:
      Every column of ``candidates/<snapshot>`` (``user_id``, ``video_id``, ``source``,
      ``sources``, ``retrieval_score``, ``retrieval_rank``, ``model_version``,
      ``run_id``) plus ``score`` (double, higher is better). When the saved ranker is
      the retrieval-order baseline, ``score`` equals ``retrieval_score``. The ranker's
      version and name are in :func:`recsys_spark.ranking.artifacts.load_metadata`.

    Raises:
      FileNotFoundError: No trained ranker (no LATEST), or a missing input table.
      ValueError: An input lacks a required column, or the ranker was trained on other
        features.
    """
    ranker, metadata = load_ranker(spark, lake, version)
    candidates = io.read_table(
        spark, posixpath.join(lake.candidates(), snapshot), f"candidates/{snapshot}"
    )
    user_features = io.read_table(
        spark, lake.features("users", snapshot), f"features/users/{snapshot}"
    )
    video_features = io.read_table(
        spark, lake.features("videos", snapshot), f"features/videos/{snapshot}"
    )
    logger.info(
        "Scoring candidates/%s with ranker %s (version %s)",
        snapshot,
        metadata["model"],
        metadata["version"],
    )
    features = build_ranking_features(candidates, user_features, video_features)
    return ranker.score(features).select(*candidates.columns, SCORE)
