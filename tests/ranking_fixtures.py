"""Tiny inline tables in the lake schemas the rankers read, for the ranking tests.

The schemas follow docs/lake.md: candidates/<snapshot> (``columns.CANDIDATES_SCHEMA``),
features/users/<snapshot>, features/videos/<snapshot>, and the interactions with the
``is_positive`` flag that ``recsys_spark.positives.label_events`` adds.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from recsys_spark.columns import CANDIDATES_SCHEMA

UTC = dt.UTC
# Start of the label period; the feature snapshots describe the state before it.
T1 = dt.datetime(2026, 3, 1, tzinfo=UTC)

USER_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("user_idx", T.LongType(), False),
        T.StructField("age_bucket", T.StringType(), True),
        T.StructField("gender", T.StringType(), True),
        T.StructField("region", T.StringType(), True),
        T.StructField("language", T.StringType(), True),
        T.StructField("events_1d", T.LongType(), False),
        T.StructField("events_7d", T.LongType(), False),
        T.StructField("events_30d", T.LongType(), False),
        T.StructField("events_all", T.LongType(), False),
        T.StructField("log_events_7d", T.DoubleType(), False),
        T.StructField("log_events_30d", T.DoubleType(), False),
        T.StructField("avg_watch_fraction", T.DoubleType(), True),
        T.StructField("category_affinity", T.MapType(T.StringType(), T.DoubleType()), True),
        T.StructField("history_video_ids", T.ArrayType(T.StringType(), False), True),
        T.StructField("history_video_idx", T.ArrayType(T.LongType(), False), True),
        T.StructField("days_since_last_activity", T.DoubleType(), True),
        T.StructField("as_of", T.TimestampType(), False),
    ]
)

VIDEO_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("video_id", T.StringType(), False),
        T.StructField("video_idx", T.LongType(), False),
        T.StructField("title", T.StringType(), True),
        T.StructField("category", T.StringType(), True),
        T.StructField("tags", T.ArrayType(T.StringType(), False), True),
        T.StructField("title_tokens", T.ArrayType(T.StringType(), False), True),
        T.StructField("language", T.StringType(), True),
        T.StructField("duration_s", T.DoubleType(), True),
        T.StructField("duration_bucket", T.StringType(), True),
        T.StructField("upload_ts", T.TimestampType(), True),
        T.StructField("age_days", T.DoubleType(), True),
        T.StructField("creator_id", T.StringType(), True),
        T.StructField("views_1d", T.LongType(), False),
        T.StructField("views_7d", T.LongType(), False),
        T.StructField("views_30d", T.LongType(), False),
        T.StructField("views_all", T.LongType(), False),
        T.StructField("log_views_7d", T.DoubleType(), False),
        T.StructField("log_views_30d", T.DoubleType(), False),
        T.StructField("log_views_all", T.DoubleType(), False),
        T.StructField("watch_through_rate", T.DoubleType(), True),
        T.StructField("like_rate", T.DoubleType(), True),
        T.StructField("blocked_regions", T.ArrayType(T.StringType(), False), True),
        T.StructField("misinformation", T.BooleanType(), True),
        T.StructField("as_of", T.TimestampType(), False),
    ]
)

# The label period's interactions, as label_and_split marks them.
LABEL_EVENTS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("video_id", T.StringType(), False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("watch_s", T.DoubleType(), True),
        T.StructField("rating", T.DoubleType(), True),
        T.StructField("is_positive", T.BooleanType(), False),
    ]
)


def candidate(user_id, video_id, score, rank, sources=("two_tower",), co_visitation_score=0.0):
    return (
        user_id,
        video_id,
        sources[0],
        list(sources),
        float(score),
        rank,
        float(co_visitation_score),
        "tt-1",
        "run-1",
    )


def user_features(
    user_id,
    user_idx,
    language="en",
    affinity=None,
    history=(),
    events_all=0,
    log_events_7d=0.0,
    days_since_last_activity=None,
):
    return (
        user_id,
        user_idx,
        "25-34",
        None,
        "US",
        language,
        0,
        0,
        0,
        events_all,
        log_events_7d,
        0.0,
        0.5,
        affinity,
        list(history),
        [],
        days_since_last_activity,
        T1,
    )


def video_features(
    video_id,
    video_idx,
    category="music",
    language="en",
    creator_id="c1",
    age_days=10.0,
    duration_s=None,
    log_views_all=0.0,
):
    return (
        video_id,
        video_idx,
        f"title {video_id}",
        category,
        [],
        [],
        language,
        duration_s,
        None,
        T1 - dt.timedelta(days=age_days),
        age_days,
        creator_id,
        0,
        0,
        0,
        0,
        0.0,
        0.0,
        log_views_all,
        0.5,
        0.1,
        [],
        None,
        T1,
    )


def event(user_id, video_id, ts, positive, event_type="watch", rating=None):
    return (user_id, video_id, ts, event_type, None, rating, positive)


def frame(spark: SparkSession, rows, schema: T.StructType) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def synthetic_ranking_inputs(
    spark: SparkSession, users: int = 80, videos: int = 60, per_user: int = 30, seed: int = 7
) -> dict[str, DataFrame]:
    """Inputs where the label follows category affinity and language, not retrieval.

    Each user has a favourite category (affinity 0.8) and a language. A candidate is
    positive with probability 0.9 when its video is in the favourite category and in
    the user's language, else 0.03. The retrieval score is noise, so the retrieval order
    ranks positives no better than chance. Positives carry a rating of 5; a tenth of the
    negatives carry a rating of 1 or 2, so the rating model has explicit ratings too.
    """
    rng = np.random.default_rng(seed)
    categories = ["music", "sports", "news", "gaming"]
    languages = ["en", "es"]
    video_rows = []
    video_info = {}
    for index in range(videos):
        video_id = f"v{index:03d}"
        category = categories[index % len(categories)]
        language = languages[(index // len(categories)) % len(languages)]
        video_info[video_id] = (category, language)
        video_rows.append(
            video_features(
                video_id,
                index + 1,
                category=category,
                language=language,
                creator_id=f"c{index % 7}",
                age_days=float(rng.integers(1, 300)),
                duration_s=float(rng.integers(60, 900)),
                log_views_all=float(rng.normal(5.0, 1.0)),
            )
        )

    user_rows, candidate_rows, event_rows = [], [], []
    for index in range(users):
        user_id = f"u{index:03d}"
        favourite = categories[index % len(categories)]
        language = languages[index % len(languages)]
        affinity = {category: 0.8 if category == favourite else 0.2 / 3 for category in categories}
        user_rows.append(
            user_features(
                user_id,
                index + 1,
                language=language,
                affinity=affinity,
                events_all=int(rng.integers(1, 50)),
                log_events_7d=float(rng.random()),
                days_since_last_activity=float(rng.integers(0, 20)),
            )
        )
        chosen = rng.choice(videos, size=per_user, replace=False)
        scores = rng.normal(size=per_user)
        order = np.argsort(-scores)
        for rank, position in enumerate(order, start=1):
            video_id = f"v{chosen[position]:03d}"
            candidate_rows.append(candidate(user_id, video_id, scores[position], rank))
            category, video_language = video_info[video_id]
            matches = category == favourite and video_language == language
            when = T1 + dt.timedelta(hours=int(rng.integers(1, 24 * 7 - 1)))
            if rng.random() < (0.9 if matches else 0.03):
                event_rows.append(event(user_id, video_id, when, True, "rating", 5.0))
            elif rng.random() < 0.1:
                rating = float(rng.integers(1, 3))
                event_rows.append(event(user_id, video_id, when, False, "rating", rating))
        # Every user is active in the label period, with or without a positive.
        event_rows.append(event(user_id, "v000", T1 + dt.timedelta(hours=1), False, "impression"))

    return {
        "candidates": frame(spark, candidate_rows, CANDIDATES_SCHEMA),
        "user_features": frame(spark, user_rows, USER_FEATURES_SCHEMA),
        "video_features": frame(spark, video_rows, VIDEO_FEATURES_SCHEMA),
        "label_events": frame(spark, event_rows, LABEL_EVENTS_SCHEMA),
    }
