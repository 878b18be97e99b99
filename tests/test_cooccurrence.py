"""Co-visitation scores, their ranker features, and the events a random-split snapshot keeps."""

from __future__ import annotations

import math

import pytest
from pyspark.testing import assertDataFrameEqual
from ranking_fixtures import (
    CANDIDATES_SCHEMA,
    USER_FEATURES_SCHEMA,
    VIDEO_FEATURES_SCHEMA,
    candidate,
    user_features,
    video_features,
)

from recsys_spark.ranking.dataset import build_ranking_features
from recsys_spark.retrieval import cooccurrence, sources


@pytest.fixture()
def tables(spark):
    # Most recent first. u5 has no history.
    users = spark.createDataFrame(
        [("u1", [3, 2, 1]), ("u2", [2, 1]), ("u3", [3, 2]), ("u4", [3, 1]), ("u5", None)],
        "user_id string, history_video_idx array<long>",
    )
    videos = spark.createDataFrame(
        [(f"v{i}", i) for i in range(1, 6)], "video_id string, video_idx long"
    )
    table = sources.co_visitation_table(users, history_length=2, max_neighbors=10)
    return users, videos, table


def test_scores_sum_similarities(spark, tables):
    users, _, table = tables
    scores = cooccurrence.co_visitation_scores(users, table, history_length=2)
    # Seeds (2 per user): u1 {3, 2}, u2 {2, 1}, u3 {3, 2}, u4 {3, 1}. Watchers: v1
    # {u2, u4}, v2 {u1, u2, u3}, v3 {u1, u3, u4}. sim(2, 3) = 2 / sqrt(3 * 3) = 2/3 and
    # sim(1, 2) = sim(1, 3) = 1 / sqrt(2 * 3). No video of a user's whole history is
    # scored for that user, so u1 (history 3, 2, 1) gets nothing. u2 gets v3 from v2
    # (2/3) and from v1 (1 / sqrt(6)); u3 gets v1 from both seeds.
    low, high = 1 / math.sqrt(6), 2 / 3
    expected = spark.createDataFrame(
        [("u2", 3, high + low), ("u3", 1, 2 * low), ("u4", 2, high + low)],
        "user_id string, neighbor_video_idx long, co_visitation_score double",
    )
    assertDataFrameEqual(scores, expected, rtol=1e-9)


def test_scores_skip_whole_history(spark, tables):
    users, _, table = tables
    scores = cooccurrence.co_visitation_scores(users, table, history_length=1)
    # One seed each: u1 3, u2 2, u3 3, u4 3. Both neighbours of v3 (v1, v2) are in u1's
    # history, so u1 gets nothing; u3 and u4 each keep the neighbour not in theirs.
    low, high = 1 / math.sqrt(6), 2 / 3
    expected = spark.createDataFrame(
        [("u2", 3, high), ("u3", 1, low), ("u4", 2, high)],
        "user_id string, neighbor_video_idx long, co_visitation_score double",
    )
    assertDataFrameEqual(scores, expected, rtol=1e-9)


def test_candidate_score_zero_without_seed(spark, tables):
    users, videos, table = tables
    scores = cooccurrence.co_visitation_scores(users, table, history_length=2)
    candidates = spark.createDataFrame(
        [("u2", "v3", 0.9), ("u2", "v5", 0.8), ("u5", "v1", 0.1)],
        "user_id string, video_id string, retrieval_score double",
    )
    scored = cooccurrence.add_co_visitation_score(candidates, scores, videos)
    # v5 co-occurs with nothing and u5 has no history: both 0.0, rows kept.
    expected = spark.createDataFrame(
        [
            ("u2", "v3", 0.9, 2 / 3 + 1 / math.sqrt(6)),
            ("u2", "v5", 0.8, 0.0),
            ("u5", "v1", 0.1, 0.0),
        ],
        "user_id string, video_id string, retrieval_score double, co_visitation_score double",
    )
    assertDataFrameEqual(scored, expected, rtol=1e-9)


def test_ranker_features_per_user_scale(spark):
    users = spark.createDataFrame(
        [user_features("u1", 1), user_features("u2", 2)], USER_FEATURES_SCHEMA
    )
    videos = spark.createDataFrame(
        [video_features(f"v{i}", i) for i in (1, 2, 3)], VIDEO_FEATURES_SCHEMA
    )
    candidates = spark.createDataFrame(
        [
            candidate("u1", "v1", 0.9, 1, co_visitation_score=2.0),
            candidate("u1", "v2", 0.5, 2, co_visitation_score=0.5),
            candidate("u1", "v3", 0.2, 3),
            # u2 has no co-visitation score at all: 0 / 0 gives a relative score of 0.
            candidate("u2", "v1", 0.4, 1),
        ],
        CANDIDATES_SCHEMA,
    )
    features = build_ranking_features(candidates, users, videos)
    columns = [
        "user_id",
        "video_id",
        "co_visitation_score",
        "co_visitation_relative",
        "retrieval_score_gap",
    ]
    # Relative: score / user's best (2.0). Gap: retrieval_score - user's best (0.9, 0.4).
    expected = spark.createDataFrame(
        [
            ("u1", "v1", 2.0, 1.0, 0.0),
            ("u1", "v2", 0.5, 0.25, -0.4),
            ("u1", "v3", 0.0, 0.0, -0.7),
            ("u2", "v1", 0.0, 0.0, 0.0),
        ],
        "user_id string, video_id string, co_visitation_score double, "
        "co_visitation_relative double, retrieval_score_gap double",
    )
    assertDataFrameEqual(features.select(*columns), expected, rtol=1e-9)


def test_random_split_hides_validation_pairs(spark):
    from jobs.generate_candidates import visible_interactions
    from recsys_spark.settings import TrainingConfig
    from recsys_spark.splits import assign_random_split

    events = spark.createDataFrame(
        [(f"u{u}", f"v{v}") for u in range(20) for v in range(10)],
        "user_id string, video_id string",
    )
    training = TrainingConfig(split="random", validation_fraction=0.3, test_fraction=0.0)
    labelled = assign_random_split(events, 0.3, 0.0, seed=7)
    validation_pairs = labelled.where("split = 'validation'").drop("split")
    assert validation_pairs.count() > 0

    for_validation = visible_interactions(events, training, 7, "validation")
    # The validation snapshot keeps every pair except the validation ones. Test keeps all.
    assertDataFrameEqual(for_validation, events.subtract(validation_pairs))
    assertDataFrameEqual(visible_interactions(events, training, 7, "test"), events)
    time_split = TrainingConfig(split="time")
    assertDataFrameEqual(visible_interactions(events, time_split, 7, "validation"), events)
