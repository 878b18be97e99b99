"""A tiny lake in the contract of docs/lake.md with a signal a two-tower model can learn.

48 videos fall into 4 categories (video_idx 1..48, category c{(idx - 1) % 4}). Each of 64
users prefers one category, (user_idx - 1) % 4, and their region names it (r0..r3).
Each user has 20 training positives (days 0-19) and 4 validation positives (days 20-23).
90% of them come from the preferred category, drawn with a Zipf skew inside it. They are
drawn with replacement, so users repeat videos as with ``training.repeat_positives:
true``, and the validation ranking must keep the watch history. With 12 videos per
category, a model that learns the preference reaches a recall@5 far above the 5/48 of a
random ranking.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark import io

NUM_VIDEOS = 48
NUM_USERS = 64
CATEGORIES = 4
TRAIN_EVENTS = 20
VALIDATION_EVENTS = 4
HISTORY_LENGTH = 5
START = dt.datetime(2026, 1, 4, 8, 0, tzinfo=dt.timezone.utc)  # a Sunday
T1 = START + dt.timedelta(days=TRAIN_EVENTS)
T2 = T1 + dt.timedelta(days=VALIDATION_EVENTS)
DURATION_BUCKETS = ["short", "medium", "long"]

TRAINING_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField(C.USER_IDX, T.LongType(), False),
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.VIDEO_IDX, T.LongType(), False),
        T.StructField(C.EVENT_TS, T.TimestampType(), False),
        T.StructField(C.HOUR_OF_DAY, T.IntegerType(), False),
        T.StructField(C.DAY_OF_WEEK, T.IntegerType(), False),
        T.StructField(C.AGE_BUCKET, T.StringType(), True),
        T.StructField(C.GENDER, T.StringType(), True),
        T.StructField(C.REGION, T.StringType(), True),
        T.StructField(C.LANGUAGE, T.StringType(), True),
        T.StructField(C.HISTORY_VIDEO_IDX, T.ArrayType(T.LongType(), False), False),
        T.StructField(C.SAMPLING_PROBABILITY, T.DoubleType(), True),
        T.StructField(C.NEGATIVE_VIDEO_IDX, T.ArrayType(T.LongType(), False), False),
        T.StructField(C.NEGATIVE_TYPES, T.ArrayType(T.StringType(), False), False),
    ]
)

VIDEO_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.VIDEO_IDX, T.LongType(), False),
        T.StructField(C.TITLE, T.StringType(), True),
        T.StructField(C.CATEGORY, T.StringType(), True),
        T.StructField(C.TAGS, T.ArrayType(T.StringType(), False), True),
        T.StructField(C.TITLE_TOKENS, T.ArrayType(T.StringType(), False), True),
        T.StructField(C.LANGUAGE, T.StringType(), True),
        T.StructField(C.DURATION_BUCKET, T.StringType(), True),
        T.StructField(C.AGE_DAYS, T.DoubleType(), True),
        T.StructField(C.UPLOAD_TS, T.TimestampType(), True),
        T.StructField(C.AS_OF, T.TimestampType(), False),
    ]
)

USER_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField(C.USER_IDX, T.LongType(), False),
        T.StructField(C.AGE_BUCKET, T.StringType(), True),
        T.StructField(C.GENDER, T.StringType(), True),
        T.StructField(C.REGION, T.StringType(), True),
        T.StructField(C.LANGUAGE, T.StringType(), True),
        T.StructField(C.HISTORY_VIDEO_IDX, T.ArrayType(T.LongType(), False), True),
        T.StructField(C.AS_OF, T.TimestampType(), False),
    ]
)

FREQUENCIES_SCHEMA = T.StructType(
    [
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.VIDEO_IDX, T.LongType(), False),
        T.StructField(C.COUNT, T.LongType(), False),
        T.StructField(C.PROBABILITY, T.DoubleType(), False),
    ]
)


def video_id(idx: int) -> str:
    return f"v{idx:03d}"


def category_of(idx: int) -> int:
    return (idx - 1) % CATEGORIES


def _videos_rows(as_of: dt.datetime, rng: np.random.Generator) -> list[tuple]:
    rows = []
    for idx in range(1, NUM_VIDEOS + 1):
        category = category_of(idx)
        age = float(5 + idx) + (as_of - T1).total_seconds() / 86400.0
        rows.append(
            (
                video_id(idx),
                idx,
                f"clip {idx} about topic {category}",
                f"c{category}",
                [f"t{category}", f"t{category}x", "common"][: 1 + idx % 3],
                ["clip", f"topic{category}"],
                "en" if idx % 2 else "fr",
                DURATION_BUCKETS[int(rng.integers(len(DURATION_BUCKETS)))],
                age,
                as_of - dt.timedelta(days=age),
                as_of,
            )
        )
    return rows


def _draw_positive(user_idx: int, rng: np.random.Generator) -> int:
    preferred = (user_idx - 1) % CATEGORIES
    category = preferred if rng.random() < 0.9 else int(rng.integers(CATEGORIES))
    members = [idx for idx in range(1, NUM_VIDEOS + 1) if category_of(idx) == category]
    weights = 1.0 / np.arange(1, len(members) + 1)
    return int(rng.choice(members, p=weights / weights.sum()))


def _user_attributes(user_idx: int) -> tuple[str, str, str, str]:
    preferred = (user_idx - 1) % CATEGORIES
    age_bucket = ["18-24", "25-34", "35-44"][user_idx % 3]
    gender = None if user_idx % 5 == 0 else ["f", "m"][user_idx % 2]
    return age_bucket, gender, f"r{preferred}", "en"


def build_events(seed: int = 7) -> dict[int, list[tuple[dt.datetime, int]]]:
    """Return user_idx → [(event_ts, video_idx)] in time order, train events first."""
    rng = np.random.default_rng(seed)
    events = {}
    for user_idx in range(1, NUM_USERS + 1):
        timeline = []
        for day in range(TRAIN_EVENTS + VALIDATION_EVENTS):
            ts = START + dt.timedelta(days=day, hours=int(rng.integers(0, 12)))
            timeline.append((ts, _draw_positive(user_idx, rng)))
        events[user_idx] = timeline
    return events


def write_two_tower_lake(spark: SparkSession, root: str, with_users: bool = False) -> dict:
    """Write training/{train,validation} and the features train_two_tower reads under ``root``.

    Only the ``test`` feature snapshot is written, because the two_tower.snapshot default
    reads that one.

    Args:
      spark: The test session.
      root: The lake root.
      with_users: Also write features/users/test (what a caller of the query model reads).

    Returns:
      Facts for the tests: ``events``, ``train_counts``.
    """
    lake = io.Lake(root)
    rng = np.random.default_rng(11)
    events = build_events()
    train_counts = Counter(
        video for timeline in events.values() for _, video in timeline[:TRAIN_EVENTS]
    )
    total = sum(train_counts.values())
    probability = {idx: count / total for idx, count in train_counts.items()}

    splits: dict[str, list[tuple]] = {C.TRAIN: [], C.VALIDATION: []}
    for user_idx, timeline in events.items():
        attributes = _user_attributes(user_idx)
        for position, (ts, video) in enumerate(timeline):
            history = [v for _, v in reversed(timeline[:position])][:HISTORY_LENGTH]
            negatives = [
                int(n)
                for n in rng.choice(np.arange(1, NUM_VIDEOS + 1), size=3, replace=False)
                if n != video
            ][:2]
            split = C.TRAIN if position < TRAIN_EVENTS else C.VALIDATION
            p = probability.get(video)
            splits[split].append(
                (
                    f"u{user_idx:03d}",
                    user_idx,
                    video_id(video),
                    video,
                    ts,
                    ts.hour,
                    # Spark weekday, like build_training_set: 0 = Monday.
                    ts.weekday(),
                    *attributes,
                    history,
                    p,
                    negatives,
                    ["random", "popular"][: len(negatives)],
                )
            )
    for split, rows in splits.items():
        io.write_table(spark.createDataFrame(rows, TRAINING_SCHEMA), lake.training(split))

    io.write_table(
        spark.createDataFrame(_videos_rows(T2, rng), VIDEO_FEATURES_SCHEMA),
        lake.features("videos", C.TEST),
    )
    if with_users:
        users = []
        for user_idx, timeline in events.items():
            history = [video for ts, video in reversed(timeline) if ts < T2][:HISTORY_LENGTH]
            users.append((f"u{user_idx:03d}", user_idx, *_user_attributes(user_idx), history, T2))
        io.write_table(
            spark.createDataFrame(users, USER_FEATURES_SCHEMA), lake.features("users", C.TEST)
        )

    frequencies = [
        (video_id(idx), idx, count, count / total) for idx, count in sorted(train_counts.items())
    ]
    io.write_table(
        spark.createDataFrame(frequencies, FREQUENCIES_SCHEMA),
        lake.features("item_frequencies"),
    )
    vocabularies = {
        "category": [f"c{i}" for i in range(CATEGORIES)],
        "tag": ["common"] + [f"t{i}" for i in range(CATEGORIES)] + [f"t{i}x" for i in range(3)],
        "title_token": ["clip"] + [f"topic{i}" for i in range(CATEGORIES)],
        "language": ["en", "fr"],
        "region": [f"r{i}" for i in range(CATEGORIES)],
        "age_bucket": ["18-24", "25-34", "35-44"],
        "gender": ["f", "m"],
        "duration_bucket": DURATION_BUCKETS,
    }
    for name, values in vocabularies.items():
        io.write_text(
            spark,
            lake.features("vocabularies", f"{name}.txt"),
            "\n".join(values) + "\n",
        )
    io.write_json(
        spark,
        lake.features("manifest.json"),
        {
            "t0": START.isoformat(),
            "t1": T1.isoformat(),
            "t2": T2.isoformat(),
            "num_users": NUM_USERS + 1,
            "num_videos": NUM_VIDEOS + 1,
            "vocabulary_sizes": {name: len(values) for name, values in vocabularies.items()},
        },
    )
    return {"events": events, "train_counts": train_counts}
