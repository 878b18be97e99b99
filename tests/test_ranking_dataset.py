"""Ranking features, labels, the user split and the nDCG metric on hand-worked fixtures."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual
from ranking_fixtures import (
    CANDIDATES_SCHEMA,
    LABEL_EVENTS_SCHEMA,
    T1,
    USER_FEATURES_SCHEMA,
    VIDEO_FEATURES_SCHEMA,
    candidate,
    event,
    user_features,
    video_features,
)

from recsys_spark.ranking import metrics
from recsys_spark.ranking.dataset import (
    FEATURE_COLUMNS,
    RANKER_SPLIT,
    build_ranking_dataset,
    build_ranking_features,
    label_candidates,
    limit_negatives,
    split_users,
)

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def feature_tables(spark):
    users = spark.createDataFrame(
        [
            user_features(
                "u1",
                1,
                language="en",
                affinity={"music": 0.75, "news": 0.25},
                history=["v1", "v2", "v3", "v9"],
                events_all=9,
                days_since_last_activity=0.0,
            ),
            user_features("u2", 2, language="fr"),
        ],
        USER_FEATURES_SCHEMA,
    )
    videos = spark.createDataFrame(
        [
            video_features("v1", 1, category="music", language="en", creator_id="c1"),
            video_features("v2", 2, category="music", language="en", creator_id="c1"),
            video_features("v3", 3, category="news", language="fr", creator_id="c2"),
            video_features(
                "v4", 4, category="sports", language="en", creator_id="c1", duration_s=99.0
            ),
        ],
        VIDEO_FEATURES_SCHEMA,
    )
    return users, videos


def test_features_hand_worked(spark, feature_tables):
    users, videos = feature_tables
    candidates = spark.createDataFrame(
        [
            candidate("u1", "v4", 0.9, 1, sources=("two_tower", "fresh")),
            candidate("u1", "v3", 0.5, 2, sources=("co_visitation",)),
            candidate("u2", "v1", 0.1, 1, sources=("popular_region",)),
            # u3 has no user features and v5 no video features: zeros, rows kept.
            candidate("u3", "v1", 0.2, 3),
            candidate("u1", "v5", 0.3, 4),
        ],
        CANDIDATES_SCHEMA,
    )
    features = build_ranking_features(candidates, users, videos)

    columns = [
        "user_id",
        "video_id",
        "user_idx",
        "retrieval_log_rank",
        "retrieval_reciprocal_rank",
        "from_two_tower",
        "from_co_visitation",
        "from_popular_region",
        "from_fresh",
        "num_sources",
        "user_log_events_all",
        "user_history_length",
        "video_log_duration_s",
        "video_has_duration",
        "category_affinity",
        "creator_affinity",
        "language_match",
    ]
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("video_id", T.StringType()),
            T.StructField("user_idx", T.LongType()),
            *[T.StructField(name, T.DoubleType()) for name in columns[3:]],
        ]
    )
    log2, log9, log4, log100 = math.log(2), math.log1p(9), math.log(4), math.log1p(99)
    expected = spark.createDataFrame(
        [
            # u1's history v1, v2 (creator c1), v3 (c2), v9 (unknown): c1 2/4, c2 1/4.
            # sports is not in u1's affinity map: 0. Both languages en: match.
            ("u1", "v4", 1, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 2.0, log9, 4.0, log100, 1.0,
             0.0, 0.5, 1.0),
            # news affinity 0.25, creator c2 1/4, fr video for an en user.
            ("u1", "v3", 1, log2, 0.5, 0.0, 1.0, 0.0, 0.0, 1.0, log9, 4.0, 0.0, 0.0,
             0.25, 0.25, 0.0),
            # u2 has no affinity map and no history.
            ("u2", "v1", 2, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0,
             0.0, 0.0, 0.0),
            ("u3", "v1", None, math.log(3), 1 / 3, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0,
             0.0, 0.0, 0.0, 0.0),
            ("u1", "v5", 1, log4, 0.25, 1.0, 0.0, 0.0, 0.0, 1.0, log9, 4.0, 0.0, 0.0,
             0.0, 0.0, 0.0),
        ],
        schema,
    )  # fmt: skip
    assertDataFrameEqual(features.select(*columns), expected, rtol=1e-9)


def test_features_keep_candidate_columns(spark, feature_tables):
    users, videos = feature_tables
    candidates = spark.createDataFrame([candidate("u1", "v4", 0.9, 1)], CANDIDATES_SCHEMA)
    features = build_ranking_features(candidates, users, videos)
    assert features.columns[: len(CANDIDATES_SCHEMA)] == CANDIDATES_SCHEMA.fieldNames()
    assert set(FEATURE_COLUMNS) <= set(features.columns)
    for name in FEATURE_COLUMNS:
        assert features.schema[name].dataType == T.DoubleType(), name
    null_features = features.select(
        sum(F.col(name).isNull().cast("int") for name in FEATURE_COLUMNS).alias("nulls")
    )
    assert null_features.first()["nulls"] == 0


def test_features_reject_missing_column(spark, feature_tables):
    users, videos = feature_tables
    candidates = spark.createDataFrame([candidate("u1", "v4", 0.9, 1)], CANDIDATES_SCHEMA)
    with pytest.raises(ValueError, match="retrieval_rank"):
        build_ranking_features(candidates.drop("retrieval_rank"), users, videos)


def test_labels_hand_worked(spark):
    candidates = spark.createDataFrame(
        [
            candidate("u1", "v1", 0.9, 1),
            candidate("u1", "v2", 0.8, 2),
            candidate("u1", "v3", 0.7, 3),
            candidate("u2", "v1", 0.6, 1),
            candidate("u3", "v1", 0.5, 1),
        ],
        CANDIDATES_SCHEMA,
    )
    label_events = spark.createDataFrame(
        [
            # Two positives of one pair give one label.
            event("u1", "v1", T1 + HOUR, True),
            event("u1", "v1", T1 + 2 * HOUR, True, "like"),
            # A rating below the positive threshold: label 0, rating kept.
            event("u1", "v2", T1, False, "rating", 2.0),
            # The latest rating wins: 4.0.
            event("u1", "v3", T1 + 2 * HOUR, False, "rating", 3.0),
            event("u1", "v3", T1 + 3 * HOUR, True, "rating", 4.0),
            # u2 is active through an event on a video outside its candidates.
            event("u2", "v9", T1 + HOUR, False, "impression"),
            # u3 has no event in the period: not active, its candidates are dropped.
        ],
        LABEL_EVENTS_SCHEMA,
    )
    labelled = label_candidates(candidates, label_events)
    expected = spark.createDataFrame(
        [("u1", "v1", 1, None), ("u1", "v2", 0, 2.0), ("u1", "v3", 1, 4.0), ("u2", "v1", 0, None)],
        "user_id string, video_id string, label int, rating double",
    )
    assertDataFrameEqual(labelled.select("user_id", "video_id", "label", "rating"), expected)
    assert labelled.columns[: len(CANDIDATES_SCHEMA)] == CANDIDATES_SCHEMA.fieldNames()


def test_labels_reject_missing_flag(spark):
    candidates = spark.createDataFrame([candidate("u1", "v1", 0.9, 1)], CANDIDATES_SCHEMA)
    label_events = spark.createDataFrame([], LABEL_EVENTS_SCHEMA).drop("is_positive")
    with pytest.raises(ValueError, match="is_positive"):
        label_candidates(candidates, label_events)


def test_label_event_cannot_reach_features(spark, feature_tables):
    users, videos = feature_tables
    candidates = spark.createDataFrame(
        [
            candidate("u1", "v1", 0.9, 1),
            candidate("u1", "v3", 0.5, 2),
            candidate("u1", "v4", 0.4, 3),
        ],
        CANDIDATES_SCHEMA,
    )
    events = [event("u1", "v1", T1 + HOUR, True)]
    # Planted in the label period: positives on v3 (news, creator c2), which would raise
    # u1's news and c2 affinities and its activity counts if label events leaked into
    # the features.
    planted = [
        event("u1", "v3", T1 + 2 * HOUR, True, "rating", 5.0),
        event("u1", "v3", T1 + 3 * HOUR, True, "like"),
    ]

    def build(event_rows):
        return build_ranking_dataset(
            candidates,
            users,
            videos,
            spark.createDataFrame(event_rows, LABEL_EVENTS_SCHEMA),
            validation_fraction=0.5,
        )

    clean = {row["video_id"]: row.asDict() for row in build(events).collect()}
    with_planted = {row["video_id"]: row.asDict() for row in build(events + planted).collect()}

    feature_view = ["user_id", "user_idx", *FEATURE_COLUMNS, RANKER_SPLIT]
    assert set(with_planted) == set(clean) == {"v1", "v3", "v4"}
    for video_id in clean:
        for name in feature_view:
            assert with_planted[video_id][name] == clean[video_id][name], (video_id, name)
    planted_labels = {video: (row["label"], row["rating"]) for video, row in with_planted.items()}
    assert planted_labels == {"v1": (1, None), "v3": (1, 5.0), "v4": (0, None)}
    clean_labels = {video: (row["label"], row["rating"]) for video, row in clean.items()}
    assert clean_labels == {"v1": (1, None), "v3": (0, None), "v4": (0, None)}


def test_user_split_stable_and_whole(spark):
    rows = [(f"user-{index}", f"video-{index % 7}") for index in range(3000)]
    df = spark.createDataFrame(rows, "user_id string, video_id string")
    first = split_users(df, 0.2, seed=11)
    second = split_users(df.repartition(5), 0.2, seed=11)
    assertDataFrameEqual(first, second)

    splits_per_user = first.groupBy("user_id").agg(F.countDistinct(RANKER_SPLIT).alias("n"))
    assert splits_per_user.where("n > 1").isEmpty()
    validation_share = first.where(F.col(RANKER_SPLIT) == "validation").count() / 3000
    assert 0.15 < validation_share < 0.25
    other_seed = split_users(df, 0.2, seed=12)
    assert first.exceptAll(other_seed).count() > 0


def test_limit_negatives_keeps_positives(spark):
    rows = [("u1", f"v{index}", 1 if index < 2 else 0) for index in range(7)]
    rows += [("u2", "v0", 0)]
    df = spark.createDataFrame(rows, "user_id string, video_id string, label int")
    limited = limit_negatives(df, 2, seed=3)
    counts = {
        (row["user_id"], row["label"]): row["count"]
        for row in limited.groupBy("user_id", "label").count().collect()
    }
    assert counts == {("u1", 1): 2, ("u1", 0): 2, ("u2", 0): 1}
    assertDataFrameEqual(limit_negatives(df.repartition(3), 2, seed=3), limited)


def _reference_ndcg(rows, k):
    """Pure-Python nDCG@k per user: rows are (user, video, score, label)."""
    by_user = {}
    for user, video, score, label in rows:
        by_user.setdefault(user, []).append((-score, video, label))
    result = {}
    for user, items in by_user.items():
        labels = [label for _, _, label in sorted(items)]
        positives = sum(1 for label in labels if label > 0)
        if positives == 0:
            continue
        dcg = sum(1 / math.log2(i + 2) for i, label in enumerate(labels[:k]) if label > 0)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(positives, k)))
        result[user] = dcg / ideal
    return result


def test_ndcg_matches_reference(spark):
    rows = [
        # u1 in score order, ties by video id: v1 (0), v2 (1), v3 (0), v4 (1).
        # nDCG@3 = (1/log2 3) / (1 + 1/log2 3) = 0.386853.
        ("u1", "v1", 0.9, 0),
        ("u1", "v3", 0.5, 0),
        ("u1", "v2", 0.5, 1),
        ("u1", "v4", 0.1, 1),
        # u2: its only candidate is positive: 1.0.
        ("u2", "v1", 0.2, 1),
        # u3 has no positive and is left out.
        ("u3", "v1", 0.7, 0),
    ]
    scored = spark.createDataFrame(rows, "user_id string, video_id string, score double, label int")
    per_user = {row["user_id"]: row["ndcg"] for row in metrics.user_ndcg_at_k(scored, 3).collect()}
    assert per_user == pytest.approx({"u1": 0.386853, "u2": 1.0}, abs=1e-6)
    assert per_user == pytest.approx(_reference_ndcg(rows, 3))
    assert metrics.mean_ndcg_at_k(scored, 3) == pytest.approx((0.386853 + 1.0) / 2, abs=1e-6)
    # k beyond the list: u1 = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3) = 0.650921.
    assert metrics.mean_ndcg_at_k(scored, 10) == pytest.approx((0.650921 + 1.0) / 2, abs=1e-6)
    assert metrics.mean_ndcg_at_k(scored, 10) == pytest.approx(
        sum(_reference_ndcg(rows, 10).values()) / 2
    )


def test_auc_hand_worked(spark):
    # Positives score 0.9 and 0.4, negatives 0.5 and 0.1: 3 of 4 pairs ordered, AUC 0.75.
    scored = spark.createDataFrame(
        [("a", 0.9, 1), ("b", 0.5, 0), ("c", 0.4, 1), ("d", 0.1, 0)],
        "video_id string, score double, label int",
    )
    assert metrics.auc(scored) == pytest.approx(0.75)
    assert metrics.auc(scored.where("label = 1")) is None
