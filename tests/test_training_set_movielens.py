"""build_features and build_training_set as jobs: a tiny hand-made lake and MovieLens 100K."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import build_features, build_training_set
from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.runs import Run
from recsys_spark.splits import parse_utc

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 2, 1, tzinfo=UTC)

STRING = T.StringType()
LONG = T.LongType()
DOUBLE = T.DoubleType()
TIMESTAMP = T.TimestampType()

# Column names and types of docs/lake.md, in order.
USER_FEATURES = [
    ("user_id", STRING),
    ("user_idx", LONG),
    ("age_bucket", STRING),
    ("gender", STRING),
    ("region", STRING),
    ("language", STRING),
    ("events_1d", LONG),
    ("events_7d", LONG),
    ("events_30d", LONG),
    ("events_all", LONG),
    ("log_events_7d", DOUBLE),
    ("log_events_30d", DOUBLE),
    ("avg_watch_fraction", DOUBLE),
    ("category_affinity", T.MapType(STRING, DOUBLE)),
    ("history_video_ids", T.ArrayType(STRING)),
    ("history_video_idx", T.ArrayType(LONG)),
    ("days_since_last_activity", DOUBLE),
    ("as_of", TIMESTAMP),
]
VIDEO_FEATURES = [
    ("video_id", STRING),
    ("video_idx", LONG),
    ("title", STRING),
    ("category", STRING),
    ("tags", T.ArrayType(STRING)),
    ("title_tokens", T.ArrayType(STRING)),
    ("language", STRING),
    ("duration_s", DOUBLE),
    ("duration_bucket", STRING),
    ("upload_ts", TIMESTAMP),
    ("age_days", DOUBLE),
    ("creator_id", STRING),
    ("views_1d", LONG),
    ("views_7d", LONG),
    ("views_30d", LONG),
    ("views_all", LONG),
    ("log_views_7d", DOUBLE),
    ("log_views_30d", DOUBLE),
    ("log_views_all", DOUBLE),
    ("watch_through_rate", DOUBLE),
    ("like_rate", DOUBLE),
    ("blocked_regions", T.ArrayType(STRING)),
    ("misinformation", T.BooleanType()),
    ("as_of", TIMESTAMP),
]
ITEM_FREQUENCIES = [
    ("video_id", STRING),
    ("video_idx", LONG),
    ("count", LONG),
    ("probability", DOUBLE),
]
TRAINING = [
    ("user_id", STRING),
    ("user_idx", LONG),
    ("video_id", STRING),
    ("video_idx", LONG),
    ("event_ts", TIMESTAMP),
    ("hour_of_day", T.IntegerType()),
    ("day_of_week", T.IntegerType()),
    ("age_bucket", STRING),
    ("gender", STRING),
    ("region", STRING),
    ("language", STRING),
    ("history_video_idx", T.ArrayType(LONG)),
    ("sampling_probability", DOUBLE),
    ("negative_video_idx", T.ArrayType(LONG)),
    ("negative_types", T.ArrayType(STRING)),
]
VOCABULARIES = {
    "category",
    "tag",
    "title_token",
    "language",
    "region",
    "age_bucket",
    "gender",
    "duration_bucket",
}


def columns_of(df) -> list[tuple[str, T.DataType]]:
    """Names and types, ignoring nullability (Parquet makes every column nullable)."""

    def strip(data_type):
        if isinstance(data_type, T.ArrayType):
            return T.ArrayType(strip(data_type.elementType))
        if isinstance(data_type, T.MapType):
            return T.MapType(strip(data_type.keyType), strip(data_type.valueType))
        return data_type

    return [(field.name, strip(field.dataType)) for field in df.schema.fields]


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def write_tiny_lake(spark, lake: io.Lake) -> None:
    """4 users, 6 videos and 30 events over 10 days, in the canonical schemas."""
    users = [
        ("u1", at(-30), "EU", "en", "25-34", "F", {}),
        ("u2", at(-30), "US", "en", "18-24", "M", {}),
        ("u3", at(-30), "US", "es", "35-44", None, {}),
        ("u4", at(-30), None, None, None, None, {}),
    ]
    videos = [
        (
            f"v{i}",
            f"Video number {i}",
            [f"tag{i % 2}", "all"],
            f"cat{i % 3}",
            "en",
            60.0 * i,
            at(-10 - i),
            f"creator{i % 2}",
            [],
            None,
        )
        for i in range(1, 7)
    ]
    events = []
    for day in range(10):
        for user in ("u1", "u2", "u3"):
            video = f"v{(day + int(user[1])) % 6 + 1}"
            other = f"v{(day + 2 * int(user[1])) % 6 + 1}"
            duration = 60.0 * int(video[1:])
            ts = at(day + 0.1 * int(user[1]))
            events.append((user, video, ts, "impression", None, None))
            events.append(
                (user, video, ts + dt.timedelta(minutes=1), "watch", 0.8 * duration, None)
            )
            if day % 3 == 0:
                events.append((user, other, ts + dt.timedelta(hours=1), "like", None, None))
    write = io.write_table
    write(spark.createDataFrame(users, C.USERS_SCHEMA), lake.raw(C.USERS))
    write(spark.createDataFrame(videos, C.VIDEOS_SCHEMA), lake.raw(C.VIDEOS))
    write(spark.createDataFrame(events, C.INTERACTIONS_SCHEMA), lake.raw(C.INTERACTIONS))
    write(
        spark.createDataFrame(
            [(u[0], i + 1) for i, u in enumerate(users)], "user_id string, user_idx long"
        ),
        lake.id_map(C.USERS),
    )
    write(
        spark.createDataFrame(
            [(v[0], i + 1) for i, v in enumerate(videos)], "video_id string, video_idx long"
        ),
        lake.id_map(C.VIDEOS),
    )


def check_training_tables(spark, lake: io.Lake, manifest: dict) -> dict[str, int]:
    """Check the contract properties every training table must have; return row counts."""
    t1, t2 = parse_utc(manifest["t1"], "t1"), parse_utc(manifest["t2"], "t2")
    tables = {split: spark.read.parquet(lake.training(split)) for split in C.SPLITS}
    for split, table in tables.items():
        assert columns_of(table) == TRAINING, split

    bounds = {
        split: table.agg(F.min(C.EVENT_TS).alias("lo"), F.max(C.EVENT_TS).alias("hi")).first()
        for split, table in tables.items()
    }
    naive = {
        name: value.astimezone(UTC).replace(tzinfo=None) for name, value in (("t1", t1), ("t2", t2))
    }
    assert bounds[C.TRAIN]["hi"] < naive["t1"]
    if bounds[C.VALIDATION]["lo"] is not None:
        assert naive["t1"] <= bounds[C.VALIDATION]["lo"]
        assert bounds[C.VALIDATION]["hi"] < naive["t2"]
    if bounds[C.TEST]["lo"] is not None:
        assert naive["t2"] <= bounds[C.TEST]["lo"]

    train = tables[C.TRAIN]
    assert train.filter(F.col(C.SAMPLING_PROBABILITY).isNull()).count() == 0
    everything = tables[C.TRAIN].unionByName(tables[C.VALIDATION]).unionByName(tables[C.TEST])

    # Each history video is a positive of the same user strictly before the example.
    first_positive = everything.groupBy(C.USER_IDX, C.VIDEO_IDX).agg(
        F.min(C.EVENT_TS).alias("first_ts")
    )
    history = everything.select(
        C.USER_IDX, C.EVENT_TS, F.explode(C.HISTORY_VIDEO_IDX).alias(C.VIDEO_IDX)
    )
    late = history.join(first_positive, [C.USER_IDX, C.VIDEO_IDX], "left").filter(
        F.col("first_ts").isNull() | (F.col("first_ts") >= F.col(C.EVENT_TS))
    )
    assert late.count() == 0

    # No training negative is a training positive of the same user.
    train_negatives = train.select(C.USER_IDX, F.explode(C.NEGATIVE_VIDEO_IDX).alias(C.VIDEO_IDX))
    clash = train_negatives.join(train.select(C.USER_IDX, C.VIDEO_IDX), [C.USER_IDX, C.VIDEO_IDX])
    assert clash.count() == 0
    assert everything.filter(F.size(C.NEGATIVE_VIDEO_IDX) != F.size(C.NEGATIVE_TYPES)).count() == 0
    return {split: table.count() for split, table in tables.items()}


def test_jobs_on_tiny_lake(spark, make_config):
    config = make_config(
        "features.history_length=3",
        "training.negatives={random: 2, popular: 1, impression: 1, mined: 1}",
    )
    lake = io.Lake(config.lake.root)
    write_tiny_lake(spark, lake)

    features_summary = build_features.run(Run(spark=spark, config=config))
    manifest = io.read_json(spark, lake.features("manifest.json"))
    assert manifest["split"] == "time"
    assert manifest["num_users"] == 5
    assert manifest["num_videos"] == 7
    assert set(manifest["vocabulary_sizes"]) == VOCABULARIES
    assert manifest["vocabulary_sizes"]["category"] == 3
    assert manifest["snapshots"]["validation"]["as_of"] == manifest["t1"]
    assert manifest["snapshots"]["test"]["as_of"] == manifest["t2"]
    assert features_summary["non_finite_inputs"] == {C.WATCH_S: 0, C.RATING: 0}

    for snapshot in C.SNAPSHOTS:
        users = spark.read.parquet(lake.features("users", snapshot))
        videos = spark.read.parquet(lake.features("videos", snapshot))
        assert columns_of(users) == USER_FEATURES
        assert columns_of(videos) == VIDEO_FEATURES
        assert users.count() == 4
        assert videos.count() == 6
    vocabulary = io.read_text(spark, lake.features("vocabularies", "tag.txt"))
    # tag0 (v2, v4, v6) and tag1 (v1, v3, v5) tie at 3, behind "all" (6).
    assert vocabulary.split("\n") == ["all", "tag0", "tag1"]
    # u4 has no region: the vocabulary lists the known ones only.
    assert io.read_text(spark, lake.features("vocabularies", "region.txt")).split("\n") == [
        "US",
        "EU",
    ]

    frequencies = spark.read.parquet(lake.features("item_frequencies"))
    assert columns_of(frequencies) == ITEM_FREQUENCIES
    assert frequencies.agg(F.sum(C.PROBABILITY)).first()[0] == pytest.approx(1.0)
    assert frequencies.filter(F.col(C.PROBABILITY) <= 0).count() == 0

    training_summary = build_training_set.run(Run(spark=spark, config=config))
    # mined > 0 without training/mined_negatives: a warning, no mined negatives.
    assert training_summary["mined_negatives_used"] is False
    counts = check_training_tables(spark, lake, manifest)
    assert counts == training_summary["rows"]
    training_manifest = io.read_json(spark, lake.path("training", "manifest.json"))
    assert training_manifest["rows"] == counts
    assert [column["name"] for column in training_manifest["schema"]] == [n for n, _ in TRAINING]
    train_count = frequencies.agg(F.sum(C.COUNT)).first()[0]
    assert train_count == counts[C.TRAIN]


def test_training_set_rejects_other_split(spark, make_config):
    config = make_config()
    lake = io.Lake(config.lake.root)
    io.write_json(spark, lake.features("manifest.json"), {"split": "random"})
    with pytest.raises(ValueError, match="Rerun build_features"):
        build_training_set.run(Run(spark=spark, config=config))


@pytest.mark.integration
@pytest.mark.slow
def test_movielens_100k_end_to_end(spark, make_config, movielens_100k):
    ingest = pytest.importorskip("jobs.ingest", reason="the ingest job is not in this tree yet")
    config = make_config(
        "data.source=movielens", f"data.path={movielens_100k}", files=["movielens"]
    )
    lake = io.Lake(config.lake.root)
    ingest.run(Run(spark=spark, config=config))
    build_features.run(Run(spark=spark, config=config))
    summary = build_training_set.run(Run(spark=spark, config=config))

    manifest = io.read_json(spark, lake.features("manifest.json"))
    # 943 users and 1,682 movies, plus index 0 for unknown ids.
    assert manifest["num_users"] == 944
    assert manifest["num_videos"] == 1683
    assert manifest["vocabulary_sizes"]["gender"] == 2
    assert manifest["vocabulary_sizes"]["category"] > 10
    assert manifest["vocabulary_sizes"]["language"] == 0

    counts = check_training_tables(spark, lake, manifest)
    # Every (user, movie) is rated once; 34,174 fours and 21,201 fives are positives.
    assert sum(counts.values()) == 55_375
    assert counts[C.TRAIN] > counts[C.VALIDATION] > 0
    # MovieLens has no impressions. Random (2) and popular (2) nearly always fill up:
    # only users who rated a large share of the 1,682 movies run out of candidates.
    negatives = summary["negatives"][C.TRAIN]
    assert negatives["impression"] == 0
    assert negatives["mined"] == 0
    assert 0.99 * 2 * counts[C.TRAIN] <= negatives["random"] <= 2 * counts[C.TRAIN]
    assert 0.95 * 2 * counts[C.TRAIN] <= negatives["popular"] <= 2 * counts[C.TRAIN]

    users = spark.read.parquet(lake.features("users", C.TEST))
    assert users.count() == 943
    lengths = users.agg(F.max(F.size(C.HISTORY_VIDEO_IDX))).first()[0]
    assert lengths == config.features.history_length
