"""Splits, cut-offs and positive examples: build_features and build_training_set share them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from recsys_spark import columns as C
from recsys_spark.positives import (
    IS_POSITIVE,
    WATCH_FRACTION,
    clean_interactions,
    first_positives,
    label_events,
    select_examples,
)
from recsys_spark.settings import PositivesConfig, TrainingConfig
from recsys_spark.splits import (
    Cutoffs,
    assign_splits,
    leave_last_n_cutoffs,
    profile_interactions,
    resolve_cutoffs,
    snapshot_time,
    user_snapshot_times,
    visible_splits,
)
from recsys_spark.training_set import split_histories

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)


def at(days: float = 0.0, hours: float = 0.0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, hours=hours)


def interactions(spark, rows):
    """rows: (user_id, video_id, event_ts, event_type, watch_s, rating)."""
    return spark.createDataFrame(rows, C.INTERACTIONS_SCHEMA)


def videos(spark, durations: dict[str, float | None]):
    schema = T.StructType(
        [
            T.StructField(C.VIDEO_ID, T.StringType(), False),
            T.StructField(C.DURATION_S, T.DoubleType(), True),
        ]
    )
    return spark.createDataFrame(sorted(durations.items()), schema)


def labeled(spark, rows, durations=None, positives=None):
    return label_events(
        interactions(spark, rows), videos(spark, durations or {}), positives or PositivesConfig()
    )


# --- cut-offs -------------------------------------------------------------------------


def test_cutoffs_at_time_fractions():
    # t0 = Jan 1, t_end = Jan 11: 10 days. 70% train -> t1 = Jan 8; 80% -> t2 = Jan 9.
    training = TrainingConfig(validation_fraction=0.1, test_fraction=0.2)
    cutoffs = resolve_cutoffs(training, T0, at(10))
    assert cutoffs.t1 == at(7)
    assert cutoffs.t2 == at(8)
    assert cutoffs.to_json()["t1"] == "2026-01-08T00:00:00+00:00"


def test_cutoffs_from_explicit_timestamps():
    training = TrainingConfig(
        validation_start="2026-01-05T12:00:00", test_start="2026-01-06T00:00:00+02:00"
    )
    cutoffs = resolve_cutoffs(training, T0, at(10))
    assert cutoffs.t1 == at(4, 12)
    # 00:00 at UTC+2 is 22:00 UTC the day before.
    assert cutoffs.t2 == at(4, 22)


def test_cutoffs_json_round_trip():
    cutoffs = resolve_cutoffs(TrainingConfig(), T0, at(10))
    assert Cutoffs.from_json(cutoffs.to_json()) == cutoffs


def test_cutoffs_zero_test_fraction_ends_at_data():
    cutoffs = resolve_cutoffs(TrainingConfig(test_fraction=0.0), T0, at(10))
    assert cutoffs.t2 == at(10)


def test_cutoffs_reject_empty_training():
    training = TrainingConfig(validation_start="2025-12-31T00:00:00")
    with pytest.raises(ValueError, match="training split would be empty"):
        resolve_cutoffs(training, T0, at(10))


def test_cutoffs_reject_reversed_order():
    training = TrainingConfig(
        validation_start="2026-01-06T00:00:00", test_start="2026-01-05T00:00:00"
    )
    with pytest.raises(ValueError, match="before the validation start"):
        resolve_cutoffs(training, T0, at(10))


def test_cutoffs_reject_bad_timestamp():
    with pytest.raises(ValueError, match="training.test_start 'next week'"):
        resolve_cutoffs(TrainingConfig(test_start="next week"), T0, at(10))


def test_non_time_splits_have_no_global_cutoffs():
    cutoffs = resolve_cutoffs(TrainingConfig(split="random"), T0, at(10))
    assert (cutoffs.t1, cutoffs.t2) == (None, None)
    assert snapshot_time(cutoffs, C.VALIDATION) == at(10)
    assert snapshot_time(cutoffs, C.TEST) == at(10)


def test_profile_measures_range_and_non_finite(spark):
    rows = [
        ("u1", "v1", at(1), "watch", float("nan"), None),
        ("u1", "v2", at(3), "rating", None, float("inf")),
        ("u2", "v1", at(2), "rating", None, 4.0),
    ]
    profile = profile_interactions(interactions(spark, rows))
    assert profile.rows == 3
    assert profile.t0 == at(1)
    # t_end is one microsecond after the last event, so every event is before it.
    assert profile.t_end == at(3) + dt.timedelta(microseconds=1)
    assert profile.non_finite == {C.WATCH_S: 1, C.RATING: 1}


def test_profile_rejects_empty_interactions(spark):
    with pytest.raises(ValueError, match="interactions table is empty"):
        profile_interactions(interactions(spark, []))


# --- time split -----------------------------------------------------------------------


def test_time_split_respects_global_cutoffs(spark):
    cutoffs = Cutoffs(method="time", t0=T0, t_end=at(10), t1=at(7), t2=at(8))
    rows = [
        ("u1", "v1", at(6, 23), "watch", 10.0, None),
        ("u1", "v2", at(7), "watch", 10.0, None),  # exactly t1: validation
        ("u2", "v1", at(7, 23), "like", None, None),
        ("u2", "v3", at(8), "rating", None, 5.0),  # exactly t2: test
        ("u3", "v3", at(9), "impression", None, None),
    ]
    split = assign_splits(labeled(spark, rows), TrainingConfig(), cutoffs, seed=1)
    by_time = {row[C.EVENT_TS]: row[C.SPLIT] for row in split.collect()}
    assert [by_time[key] for key in sorted(by_time)] == [
        C.TRAIN,
        C.VALIDATION,
        C.VALIDATION,
        C.TEST,
        C.TEST,
    ]
    bounds = {
        row[C.SPLIT]: (row["first"], row["last"])
        for row in split.groupBy(C.SPLIT)
        .agg(F.min(C.EVENT_TS).alias("first"), F.max(C.EVENT_TS).alias("last"))
        .collect()
    }
    assert bounds[C.TRAIN][1] < bounds[C.VALIDATION][0]
    assert bounds[C.VALIDATION][1] < bounds[C.TEST][0]


# --- random split ---------------------------------------------------------------------


def synthetic_events(spark, users=40, videos_per_user=30):
    """Two events (watch, like) for every (user, video): 2,400 rows, 1,200 pairs."""
    return (
        spark.range(users * videos_per_user)
        .select(
            F.concat(F.lit("u"), (F.col("id") % users).cast("string")).alias(C.USER_ID),
            F.concat(F.lit("v"), (F.col("id") * 7 % 97).cast("string")).alias(C.VIDEO_ID),
            F.timestamp_seconds(F.lit(1_767_225_600) + F.col("id") * 60).alias(C.EVENT_TS),
        )
        .dropDuplicates([C.USER_ID, C.VIDEO_ID])
        .withColumn(C.EVENT_TYPE, F.explode(F.array(F.lit("watch"), F.lit("like"))))
    )


def test_random_split_is_disjoint_complete_and_stable(spark):
    training = TrainingConfig(split="random", validation_fraction=0.1, test_fraction=0.2)
    cutoffs = Cutoffs(method="random", t0=T0, t_end=at(10))
    events = synthetic_events(spark)
    split = assign_splits(events, training, cutoffs, seed=7).cache()

    assert split.count() == events.count()
    assert split.filter(F.col(C.SPLIT).isNull()).count() == 0
    # All events of one (user, video) pair share a split.
    per_pair = split.groupBy(C.USER_ID, C.VIDEO_ID).agg(F.countDistinct(C.SPLIT).alias("n"))
    assert per_pair.filter(F.col("n") > 1).count() == 0

    reshuffled = assign_splits(
        events.repartition(5, C.VIDEO_ID).orderBy(F.rand(3)), training, cutoffs, seed=7
    )
    assertDataFrameEqual(reshuffled, split)

    shares = {
        row[C.SPLIT]: row["count"] / per_pair.count()
        for row in split.select(C.USER_ID, C.VIDEO_ID, C.SPLIT)
        .distinct()
        .groupBy(C.SPLIT)
        .count()
        .collect()
    }
    # 1,200 pairs: a binomial share's standard deviation is below 0.012.
    assert shares[C.TEST] == pytest.approx(0.2, abs=0.05)
    assert shares[C.VALIDATION] == pytest.approx(0.1, abs=0.04)

    other_seed = assign_splits(events, training, cutoffs, seed=8)
    changed = other_seed.join(split, [C.USER_ID, C.VIDEO_ID, C.EVENT_TYPE]).filter(
        other_seed[C.SPLIT] != split[C.SPLIT]
    )
    assert changed.count() > 0
    split.unpersist()


# --- leave-last-n split ---------------------------------------------------------------


def test_leave_last_n_holds_out_last_videos(spark, caplog):
    rows = [
        # u1 has four positive videos: v1 at day 1, v2 day 2, v3 day 3, v4 day 4.
        ("u1", "v1", at(1), "like", None, None),
        ("u1", "v2", at(2), "like", None, None),
        ("u1", "v3", at(3), "like", None, None),
        ("u1", "v3", at(3, 1), "impression", None, None),
        ("u1", "v4", at(4), "like", None, None),
        ("u1", "v1", at(5), "like", None, None),  # repeat of v1, after the test start
        # u2 has two positive videos (< 2n + 1 = 3): everything stays in train.
        ("u2", "v1", at(1), "like", None, None),
        ("u2", "v2", at(9), "like", None, None),
    ]
    events = labeled(spark, rows)
    user_cutoffs = leave_last_n_cutoffs(events, n=1)
    # u1: test starts at v4's first positive (day 4), validation at v3's (day 3).
    expected = spark.createDataFrame(
        [("u1", at(3), at(4))],
        "user_id string, validation_start timestamp, test_start timestamp",
    )
    assertDataFrameEqual(user_cutoffs, expected)

    cutoffs = Cutoffs(method="leave_last_n", t0=T0, t_end=at(10))
    with caplog.at_level(logging.WARNING, logger="recsys_spark.splits"):
        split = assign_splits(
            events, TrainingConfig(split="leave_last_n"), cutoffs, 1, user_cutoffs
        )
    assert "leaks" in caplog.text or "held-out interactions of other users" in caplog.text
    got = sorted(
        (row[C.USER_ID], row[C.VIDEO_ID], row[C.EVENT_TYPE], row[C.SPLIT])
        for row in split.collect()
    )
    assert got == [
        ("u1", "v1", "like", C.TEST),
        ("u1", "v1", "like", C.TRAIN),
        ("u1", "v2", "like", C.TRAIN),
        ("u1", "v3", "impression", C.VALIDATION),
        ("u1", "v3", "like", C.VALIDATION),
        ("u1", "v4", "like", C.TEST),
        ("u2", "v1", "like", C.TRAIN),
        ("u2", "v2", "like", C.TRAIN),
    ]

    times = user_snapshot_times(user_cutoffs, C.VALIDATION).collect()
    assert [(row[C.USER_ID], row[C.AS_OF]) for row in times] == [("u1", at(3).replace(tzinfo=None))]


def test_leave_last_n_requires_user_cutoffs(spark):
    cutoffs = Cutoffs(method="leave_last_n", t0=T0, t_end=at(10))
    with pytest.raises(ValueError, match="leave_last_n_cutoffs"):
        assign_splits(
            labeled(spark, [("u1", "v1", at(1), "like", None, None)]),
            TrainingConfig(split="leave_last_n"),
            cutoffs,
            1,
        )


def test_snapshots_see_only_earlier_splits():
    assert visible_splits(C.VALIDATION) == (C.TRAIN,)
    assert visible_splits(C.TEST) == (C.TRAIN, C.VALIDATION)
    with pytest.raises(ValueError, match="Unknown snapshot 'train'"):
        visible_splits(C.TRAIN)


# --- positives ------------------------------------------------------------------------


def test_positive_rules_by_event_type(spark):
    durations = {"short": 100.0, "unknown": None, "zero": 0.0}
    rows = [
        ("u1", "short", at(1), "watch", 60.0, None),  # 0.6 >= 0.5
        ("u2", "short", at(1), "watch", 40.0, None),  # 0.4
        ("u3", "short", at(1), "watch", 500.0, None),  # capped at 1.0
        ("u4", "unknown", at(1), "watch", 45.0, None),  # no duration
        ("u5", "zero", at(1), "watch", 45.0, None),  # zero duration counts as unknown
        ("u6", "short", at(1), "like", None, None),
        ("u7", "short", at(1), "share", None, None),
        ("u8", "short", at(1), "rating", None, 4.0),
        ("u9", "short", at(1), "rating", None, 3.5),
        ("u10", "short", at(1), "rating", None, None),
        ("u11", "short", at(1), "impression", None, None),
        ("u12", "short", at(1), "dislike", None, None),
    ]
    positives = {
        row[C.USER_ID]: (row[IS_POSITIVE], row[WATCH_FRACTION])
        for row in labeled(spark, rows, durations).collect()
    }
    assert positives == {
        "u1": (True, 0.6),
        "u2": (False, 0.4),
        "u3": (True, 1.0),
        "u4": (False, None),
        "u5": (False, None),
        "u6": (True, None),
        "u7": (True, None),
        "u8": (True, None),
        "u9": (False, None),
        "u10": (False, None),
        "u11": (False, None),
        "u12": (False, None),
    }


def test_positive_rules_follow_config(spark):
    config = dataclasses.replace(
        PositivesConfig(), like=False, min_rating=3.0, min_watch_s_unknown_duration=30.0
    )
    rows = [
        ("u1", "unknown", at(1), "watch", 45.0, None),
        ("u2", "unknown", at(1), "watch", 20.0, None),
        ("u3", "short", at(1), "like", None, None),
        ("u4", "short", at(1), "rating", None, 3.0),
    ]
    events = labeled(spark, rows, {"short": 100.0, "unknown": None}, config)
    positives = {row[C.USER_ID]: row[IS_POSITIVE] for row in events.collect()}
    assert positives == {"u1": True, "u2": False, "u3": False, "u4": True}


def test_nan_rating_is_not_positive(spark):
    # Spark orders NaN above every number, so an uncleaned NaN rating passes rating >= 4.
    rows = [("u1", "v1", at(1), "rating", None, float("nan"))]
    raw = label_events(interactions(spark, rows), videos(spark, {}), PositivesConfig())
    assert raw.first()[IS_POSITIVE] is True
    cleaned = label_events(
        clean_interactions(interactions(spark, rows)), videos(spark, {}), PositivesConfig()
    )
    assert cleaned.first()[IS_POSITIVE] is False


def split_events(spark, rows):
    cutoffs = Cutoffs(method="time", t0=T0, t_end=at(10), t1=at(7), t2=at(8))
    return assign_splits(labeled(spark, rows, {"v1": 100.0}), TrainingConfig(), cutoffs, 1)


DEDUP_ROWS = [
    ("u1", "v1", at(1), "watch", 80.0, None),  # first positive, train
    ("u1", "v1", at(1, 1), "like", None, None),  # same pair, same split
    ("u1", "v1", at(7, 2), "watch", 90.0, None),  # rewatch in validation
    ("u1", "v1", at(8, 1), "like", None, None),  # and a like in test
    ("u1", "v2", at(8, 3), "watch", 10.0, None),  # not a positive (unknown duration)
    ("u1", "v2", at(9), "like", None, None),  # first positive of v2, in test
]


def test_examples_keep_first_positive_per_pair(spark):
    examples = select_examples(split_events(spark, DEDUP_ROWS))
    got = sorted(tuple(row) for row in examples.collect())
    assert got == [
        ("u1", "v1", at(1).replace(tzinfo=None), C.TRAIN),
        ("u1", "v2", at(9).replace(tzinfo=None), C.TEST),
    ]
    firsts = first_positives(split_events(spark, DEDUP_ROWS))
    assertDataFrameEqual(firsts, examples)


def test_examples_with_repeat_positives(spark):
    examples = select_examples(split_events(spark, DEDUP_ROWS), repeat_positives=True)
    got = sorted(tuple(row) for row in examples.collect())
    # One example per pair and split, at the pair's earliest positive in that split.
    assert got == [
        ("u1", "v1", at(1).replace(tzinfo=None), C.TRAIN),
        ("u1", "v1", at(7, 2).replace(tzinfo=None), C.VALIDATION),
        ("u1", "v1", at(8, 1).replace(tzinfo=None), C.TEST),
        ("u1", "v2", at(9).replace(tzinfo=None), C.TEST),
    ]


def test_random_split_histories_see_earlier_splits(spark):
    firsts = spark.createDataFrame(
        [
            ("u1", "v1", 1, at(1), C.TEST),
            ("u1", "v2", 2, at(2), C.TRAIN),
            ("u1", "v3", 3, at(3), C.VALIDATION),
            ("u1", "v4", 4, at(4), C.TRAIN),
            ("u1", "v5", 5, at(5), C.TEST),
        ],
        "user_id string, video_id string, video_idx long, event_ts timestamp, split string",
    )
    examples = firsts.select(C.USER_ID, C.VIDEO_ID, C.EVENT_TS, C.SPLIT)
    got = split_histories(examples, firsts, "random", length=5)
    histories = {row[C.VIDEO_ID]: row[C.HISTORY_VIDEO_IDX] for row in got.collect()}
    # The random split ignores time: train examples never see the earlier test video v1
    # or validation video v3, and validation examples never see test videos.
    assert histories == {"v1": [], "v2": [], "v3": [2], "v4": [2], "v5": [4, 3, 2, 1]}
    # The time split reads every earlier positive in one pass.
    by_time = split_histories(examples, firsts, "time", length=5)
    assert {row[C.VIDEO_ID]: row[C.HISTORY_VIDEO_IDX] for row in by_time.collect()}["v4"] == [
        3,
        2,
        1,
    ]
