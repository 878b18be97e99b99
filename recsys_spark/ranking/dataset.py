"""Ranking features for candidates, and the labelled ranking dataset built from them.

:func:`build_ranking_features` is the one transform that turns candidate rows into the
ranker's feature vector. Training (:func:`build_ranking_dataset`) and scoring
(:mod:`recsys_spark.ranking.scoring`) both call it, so the two cannot disagree.

Every feature comes from the candidates and the feature snapshots, which describe the
state before the snapshot time. Labels come from the events of the period after it (the
``validation`` split of the interactions: [t1, t2) for the time split), so a label event
cannot reach a feature.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import (
    AGE_DAYS,
    AVG_WATCH_FRACTION,
    CANDIDATE_SOURCES,
    CATEGORY,
    CATEGORY_AFFINITY,
    CO_VISITATION_SCORE,
    CREATOR_ID,
    DAYS_SINCE_LAST_ACTIVITY,
    DEFAULT_SEED,
    DURATION_S,
    EVENT_TS,
    EVENTS_ALL,
    HISTORY_VIDEO_IDS,
    LABEL,
    LANGUAGE,
    LIKE_RATE,
    LOG_EVENTS_7D,
    LOG_EVENTS_30D,
    LOG_VIEWS_7D,
    LOG_VIEWS_30D,
    LOG_VIEWS_ALL,
    RATING,
    RETRIEVAL_RANK,
    RETRIEVAL_SCORE,
    SOURCE,
    SOURCES,
    TRAIN,
    USER_ID,
    USER_IDX,
    VALIDATION,
    VIDEO_ID,
    WATCH_THROUGH_RATE,
)
from recsys_spark.positives import IS_POSITIVE

CANDIDATE_COLUMNS = (
    USER_ID,
    VIDEO_ID,
    SOURCE,
    SOURCES,
    RETRIEVAL_SCORE,
    RETRIEVAL_RANK,
    CO_VISITATION_SCORE,
)
USER_FEATURE_COLUMNS = (
    USER_ID,
    USER_IDX,
    LANGUAGE,
    EVENTS_ALL,
    LOG_EVENTS_7D,
    LOG_EVENTS_30D,
    AVG_WATCH_FRACTION,
    CATEGORY_AFFINITY,
    HISTORY_VIDEO_IDS,
    DAYS_SINCE_LAST_ACTIVITY,
)
VIDEO_FEATURE_COLUMNS = (
    VIDEO_ID,
    CATEGORY,
    CREATOR_ID,
    LANGUAGE,
    DURATION_S,
    AGE_DAYS,
    LOG_VIEWS_7D,
    LOG_VIEWS_30D,
    LOG_VIEWS_ALL,
    WATCH_THROUGH_RATE,
    LIKE_RATE,
)

# The ranker's feature vector, in order. Every column is a non-null double.
FEATURE_COLUMNS = (
    # retrieval
    "retrieval_score",
    # retrieval_score minus the user's best, which puts every user on one scale
    "retrieval_score_gap",
    "retrieval_log_rank",
    "retrieval_reciprocal_rank",
    *(f"from_{source}" for source in CANDIDATE_SOURCES),
    "num_sources",
    # item-to-item co-visitation: the summed similarity, and its share of the user's best
    "co_visitation_score",
    "co_visitation_relative",
    # user activity as of the snapshot
    "user_log_events_7d",
    "user_log_events_30d",
    "user_log_events_all",
    "user_avg_watch_fraction",
    "user_log_days_since_active",
    "user_history_length",
    # video popularity, quality and freshness as of the snapshot
    "video_log_views_7d",
    "video_log_views_30d",
    "video_log_views_all",
    "video_watch_through_rate",
    "video_like_rate",
    "video_log_age_days",
    "video_log_duration_s",
    "video_has_duration",
    # user x video
    "category_affinity",
    "creator_affinity",
    "language_match",
)

# Column with each user's ranker split: ``train`` fits the rankers, ``validation`` picks one.
RANKER_SPLIT = "ranker_split"


def require_columns(df: DataFrame, columns: Sequence[str], table: str) -> None:
    """Raise ValueError naming the columns of ``columns`` that ``df`` lacks.

    ``table`` names the input in the message, for example ``"candidates"``.
    """
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(
            f"{table} is missing the columns {missing} (it has {sorted(df.columns)}). "
            "Check that it was written by the job docs/lake.md names for it."
        )


def _double(column: Column) -> Column:
    return F.coalesce(column.cast("double"), F.lit(0.0))


def _log1p(column: Column) -> Column:
    return F.log1p(F.greatest(_double(column), F.lit(0.0)))


def _user_side(user_features: DataFrame) -> DataFrame:
    return user_features.select(
        USER_ID,
        USER_IDX,
        F.col(LANGUAGE).alias("_user_language"),
        F.col(CATEGORY_AFFINITY).alias("_category_affinity"),
        _double(F.col(LOG_EVENTS_7D)).alias("user_log_events_7d"),
        _double(F.col(LOG_EVENTS_30D)).alias("user_log_events_30d"),
        _log1p(F.col(EVENTS_ALL)).alias("user_log_events_all"),
        _double(F.col(AVG_WATCH_FRACTION)).alias("user_avg_watch_fraction"),
        _log1p(F.col(DAYS_SINCE_LAST_ACTIVITY)).alias("user_log_days_since_active"),
        _double(F.size(F.coalesce(HISTORY_VIDEO_IDS, F.array()))).alias("user_history_length"),
    )


def _video_side(video_features: DataFrame) -> DataFrame:
    return video_features.select(
        VIDEO_ID,
        F.col(CATEGORY).alias("_video_category"),
        F.col(CREATOR_ID).alias("_creator_id"),
        F.col(LANGUAGE).alias("_video_language"),
        _double(F.col(LOG_VIEWS_7D)).alias("video_log_views_7d"),
        _double(F.col(LOG_VIEWS_30D)).alias("video_log_views_30d"),
        _double(F.col(LOG_VIEWS_ALL)).alias("video_log_views_all"),
        _double(F.col(WATCH_THROUGH_RATE)).alias("video_watch_through_rate"),
        _double(F.col(LIKE_RATE)).alias("video_like_rate"),
        _log1p(F.col(AGE_DAYS)).alias("video_log_age_days"),
        _log1p(F.col(DURATION_S)).alias("video_log_duration_s"),
        F.col(DURATION_S).isNotNull().cast("double").alias("video_has_duration"),
    )


def _creator_affinity(user_features: DataFrame, video_features: DataFrame) -> DataFrame:
    """Return the share of each user's history by each creator.

    Output columns: ``user_id``, ``_creator_id``, ``creator_affinity``. The history is
    ``history_video_ids`` of the snapshot (the last positives before the snapshot time),
    so the affinity is as of the snapshot too.
    """
    history = user_features.select(
        USER_ID,
        F.explode(HISTORY_VIDEO_IDS).alias(VIDEO_ID),
        F.size(HISTORY_VIDEO_IDS).alias("_history_length"),
    )
    creators = video_features.select(VIDEO_ID, F.col(CREATOR_ID).alias("_creator_id"))
    return (
        history.join(creators, VIDEO_ID)
        .where(F.col("_creator_id").isNotNull())
        .groupBy(USER_ID, "_creator_id")
        .agg((F.count(F.lit(1)) / F.max("_history_length")).alias("creator_affinity"))
    )


def build_ranking_features(
    candidates: DataFrame, user_features: DataFrame, video_features: DataFrame
) -> DataFrame:
    """Join candidates with user and video features into the ranker's feature columns.

    Used by training and by scoring, so both see the same features for a candidate.
    Users and videos missing from the feature tables get zeros rather than losing their
    candidates.

    Args:
      candidates: One row per (user, candidate video): ``user_id``, ``video_id``,
        ``source``, ``sources`` (array<string>), ``retrieval_score``, ``retrieval_rank``,
        ``co_visitation_score``, plus any other columns, which pass through.
      user_features: ``features/users/<snapshot>``; reads ``user_id``, ``user_idx``,
        ``language``, ``events_all``, ``log_events_7d``, ``log_events_30d``,
        ``avg_watch_fraction``, ``category_affinity``, ``history_video_ids``,
        ``days_since_last_activity``.
      video_features: ``features/videos/<snapshot>``; reads ``video_id``, ``category``,
        ``creator_id``, ``language``, ``duration_s``, ``age_days``, ``log_views_7d``,
        ``log_views_30d``, ``log_views_all``, ``watch_through_rate``, ``like_rate``.

    Returns:
      The candidate columns, ``user_idx`` (long, null for users without features) and
      every column of :data:`FEATURE_COLUMNS` as a non-null double. ``retrieval_score``
      and ``co_visitation_score`` are candidate columns and features, so each appears
      once, with null replaced by 0.

    Raises:
      ValueError: An input lacks a column listed above.
    """
    require_columns(candidates, CANDIDATE_COLUMNS, "candidates")
    require_columns(user_features, USER_FEATURE_COLUMNS, "user features")
    require_columns(video_features, VIDEO_FEATURE_COLUMNS, "video features")
    if USER_IDX in candidates.columns:
        candidates = candidates.drop(USER_IDX)

    sources = F.coalesce(F.col(SOURCES), F.array(F.col(SOURCE)))
    rank = F.greatest(_double(F.col(RETRIEVAL_RANK)), F.lit(1.0))
    rows = (
        candidates.join(_user_side(user_features), USER_ID, "left")
        .join(_video_side(video_features), VIDEO_ID, "left")
        .join(_creator_affinity(user_features, video_features), [USER_ID, "_creator_id"], "left")
    )
    # A category missing from the user's map (never watched) gives null, then 0.
    category_affinity = F.try_element_at(F.col("_category_affinity"), F.col("_video_category"))
    language_match = F.col("_user_language") == F.col("_video_language")
    co_visitation = _double(F.col(CO_VISITATION_SCORE))
    per_user = Window.partitionBy(USER_ID)
    best_co_visitation = F.max(co_visitation).over(per_user)
    retrieval_score = _double(F.col(RETRIEVAL_SCORE))
    rows = rows.withColumns(
        {
            "retrieval_score": retrieval_score,
            "retrieval_score_gap": retrieval_score - F.max(retrieval_score).over(per_user),
            "retrieval_log_rank": F.log(rank),
            "retrieval_reciprocal_rank": F.lit(1.0) / rank,
            **{
                f"from_{source}": F.array_contains(sources, source).cast("double")
                for source in CANDIDATE_SOURCES
            },
            "num_sources": _double(F.size(sources)),
            "co_visitation_score": co_visitation,
            "co_visitation_relative": F.coalesce(
                F.try_divide(co_visitation, best_co_visitation), F.lit(0.0)
            ),
            "category_affinity": _double(category_affinity),
            "creator_affinity": _double(F.col("creator_affinity")),
            "language_match": _double(language_match),
        }
    )
    # Users and videos without features come out of the left joins as nulls, which
    # become zeros. retrieval_score and co_visitation_score are both candidate columns
    # and features, so each is selected once.
    extra = [
        _double(F.col(name)).alias(name)
        for name in FEATURE_COLUMNS
        if name not in candidates.columns
    ]
    return rows.select(*candidates.columns, USER_IDX, *extra)


def label_candidates(candidates: DataFrame, label_events: DataFrame) -> DataFrame:
    """Keep the candidates of users active in the label period and add their labels.

    Args:
      candidates: Candidate rows with ``user_id`` and ``video_id``; other columns pass
        through.
      label_events: The interactions of the label period (the ``validation`` split of
        :func:`recsys_spark.training_set.label_and_split`): ``user_id``, ``video_id``,
        ``event_ts``, ``rating`` and ``is_positive`` (the configured positive
        definition). A user with any of these events is active.

    Returns:
      The candidate rows of active users plus ``label`` (int: 1 when the user had a
      positive with the video in the period, else 0) and ``rating`` (double, the user's
      latest rating of the video in the period, null without one).
    """
    require_columns(candidates, (USER_ID, VIDEO_ID), "candidates")
    require_columns(
        label_events, (USER_ID, VIDEO_ID, EVENT_TS, RATING, IS_POSITIVE), "label events"
    )
    active_users = label_events.select(USER_ID).distinct()
    labels = (
        label_events.where(F.col(IS_POSITIVE))
        .select(USER_ID, VIDEO_ID)
        .distinct()
        .withColumn(LABEL, F.lit(1))
    )
    # The latest rating wins; equal timestamps fall back to the higher rating.
    ratings = (
        label_events.where(F.col(RATING).isNotNull())
        .groupBy(USER_ID, VIDEO_ID)
        .agg(F.max(F.struct(EVENT_TS, RATING)).getField(RATING).alias(RATING))
    )
    for name in (LABEL, RATING):
        if name in candidates.columns:
            candidates = candidates.drop(name)
    return (
        candidates.join(active_users, USER_ID, "left_semi")
        .join(labels, [USER_ID, VIDEO_ID], "left")
        .join(ratings, [USER_ID, VIDEO_ID], "left")
        .withColumn(LABEL, F.coalesce(F.col(LABEL), F.lit(0)))
    )


def split_users(df: DataFrame, validation_fraction: float, seed: int = DEFAULT_SEED) -> DataFrame:
    """Add ``ranker_split``: ``validation`` for a seeded hash share of users, else ``train``.

    The split depends only on ``user_id`` and ``seed``, never on row order or
    partitioning, and keeps each user's rows together.
    """
    require_columns(df, (USER_ID,), "ranking rows")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be strictly between 0 and 1, got {validation_fraction}."
        )
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col(USER_ID)), F.lit(10_000))
    threshold = round(validation_fraction * 10_000)
    return df.withColumn(
        RANKER_SPLIT,
        F.when(bucket < F.lit(threshold), F.lit(VALIDATION)).otherwise(F.lit(TRAIN)),
    )


def build_ranking_dataset(
    candidates: DataFrame,
    user_features: DataFrame,
    video_features: DataFrame,
    label_events: DataFrame,
    validation_fraction: float,
    seed: int = DEFAULT_SEED,
) -> DataFrame:
    """Build the labelled ranking rows: features from the snapshot, labels from after it.

    ``candidates`` and the feature tables are the ``validation`` snapshot (the state
    before the validation period) and ``label_events`` are the validation period's
    interactions. See :func:`build_ranking_features` and :func:`label_candidates` for
    the input columns.

    Returns:
      The output of :func:`build_ranking_features` for active users, plus ``label``,
      ``rating`` and ``ranker_split`` (``train`` or ``validation``, by user).
    """
    labelled = label_candidates(candidates, label_events)
    features = build_ranking_features(labelled, user_features, video_features)
    return split_users(features, validation_fraction, seed)


def limit_negatives(df: DataFrame, max_per_user: int, seed: int = DEFAULT_SEED) -> DataFrame:
    """Keep every positive and at most ``max_per_user`` seeded-random negatives per user.

    Required columns: ``user_id``, ``video_id``, ``label``. The choice hashes
    (seed, user_id, video_id), so it does not depend on partitioning.
    """
    require_columns(df, (USER_ID, VIDEO_ID, LABEL), "ranking rows")
    if max_per_user <= 0:
        raise ValueError(f"max_per_user must be positive, got {max_per_user}.")
    order = Window.partitionBy(USER_ID, LABEL).orderBy(
        F.xxhash64(F.lit(seed), F.col(USER_ID), F.col(VIDEO_ID)), F.col(VIDEO_ID)
    )
    return (
        df.withColumn("_negative_number", F.row_number().over(order))
        .where((F.col(LABEL) > 0) | (F.col("_negative_number") <= max_per_user))
        .drop("_negative_number")
    )
