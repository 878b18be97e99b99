"""The stratified random split and the global time cut-off of the benchmark protocols."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.evaluation.splits import split_ratios, stratified_split, time_cutoff_split

SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("video_id", T.StringType(), False),
        T.StructField("rating", T.DoubleType(), True),
    ]
)


def interactions(spark, group_sizes: dict[str, int], by: str = "user"):
    """One row per (user, item); ``group_sizes`` gives the rows of each user (or item)."""
    rows = []
    for group, size in group_sizes.items():
        for n in range(size):
            other = f"{group}-{n:03d}"
            rows.append((group, other, 4.0) if by == "user" else (other, group, 4.0))
    return spark.createDataFrame(rows, SCHEMA)


def keys(df):
    return sorted((row.user_id, row.video_id) for row in df.select("user_id", "video_id").collect())


@pytest.fixture
def by_user(spark):
    # 4 rows -> 3 train (floor(0.75 * 4)); 10 -> 7; 1 -> 0 (1/1 > 0.75); 8 -> 6.
    return interactions(spark, {"a": 4, "b": 10, "c": 1, "d": 8})


def test_each_user_split_at_ratio(spark, by_user):
    train, test = stratified_split(by_user, ratio=0.75, by="user", seed=42)
    train_counts = Counter(row.user_id for row in train.select("user_id").collect())
    test_counts = Counter(row.user_id for row in test.select("user_id").collect())
    assert train_counts == {"a": 3, "b": 7, "d": 6}
    assert test_counts == {"a": 1, "b": 3, "c": 1, "d": 2}


def test_split_is_disjoint_and_complete(spark, by_user):
    train, test = stratified_split(by_user, ratio=0.75, by="user", seed=42)
    train_keys, test_keys = keys(train), keys(test)
    assert not set(train_keys) & set(test_keys)
    assert sorted(train_keys + test_keys) == keys(by_user)
    assert train.columns == by_user.columns


def test_stratified_by_item(spark):
    df = interactions(spark, {"i1": 4, "i2": 6}, by="item")
    train, test = stratified_split(df, ratio=0.5, by="item", seed=42)
    train_counts = Counter(row.video_id for row in train.select("video_id").collect())
    assert train_counts == {"i1": 2, "i2": 3}
    assert test.count() == 5


def test_same_seed_same_split_across_partitionings(spark, by_user):
    train, _ = stratified_split(by_user, ratio=0.75, seed=42)
    shuffled = by_user.repartition(3, "video_id").sortWithinPartitions(F.rand(seed=1))
    train_again, _ = stratified_split(shuffled, ratio=0.75, seed=42)
    assert keys(train) == keys(train_again)


def test_other_seed_other_split(spark):
    df = interactions(spark, {"a": 40})
    first, _ = stratified_split(df, ratio=0.5, seed=42)
    second, _ = stratified_split(df, ratio=0.5, seed=43)
    assert keys(first) != keys(second)
    assert len(keys(first)) == len(keys(second)) == 20


def test_min_rating_drops_small_groups(spark, by_user):
    train, test = stratified_split(by_user, ratio=0.75, min_rating=5, seed=42)
    users = {row.user_id for row in train.unionByName(test).select("user_id").collect()}
    assert users == {"b", "d"}


def test_three_way_ratios_normalised(spark):
    df = interactions(spark, {"a": 10})
    splits = stratified_split(df, ratio=[6, 2, 2], seed=42)
    assert [split.count() for split in splits] == [6, 2, 2]


def test_split_ratios():
    assert split_ratios(0.75) == [0.75, 1.0]
    assert split_ratios([1, 1, 2]) == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_ratios(1.0)
    with pytest.raises(ValueError, match="positive"):
        split_ratios([0.5, 0.0])
    with pytest.raises(TypeError, match="float or a list of floats"):
        split_ratios("0.75")


def test_invalid_arguments_rejected(spark, by_user):
    with pytest.raises(ValueError, match="'user' or 'item'"):
        stratified_split(by_user, by="video")
    with pytest.raises(ValueError, match="min_rating"):
        stratified_split(by_user, min_rating=0)
    with pytest.raises(ValueError, match="missing columns"):
        stratified_split(by_user.drop("video_id"))


def test_time_cutoff_split(spark):
    start = dt.datetime(2024, 1, 1)
    rows = [("u1", f"v{n}", start + dt.timedelta(days=n)) for n in range(5)]
    df = spark.createDataFrame(rows, "user_id string, video_id string, event_ts timestamp")
    cutoff = start + dt.timedelta(days=2)
    train, test = time_cutoff_split(df, cutoff)
    # Days 0, 1, 2 are at or before the cut-off.
    assert [row.video_id for row in train.orderBy("event_ts").collect()] == ["v0", "v1", "v2"]
    assert [row.video_id for row in test.orderBy("event_ts").collect()] == ["v3", "v4"]
    with pytest.raises(TypeError, match="cutoff must be a datetime"):
        time_cutoff_split(df, None)


def test_time_cutoff_reads_naive_as_utc(spark):
    # 2024-01-01 12:00 UTC as epoch seconds, stored as a timestamp.
    df = spark.createDataFrame(
        [("u1", "v1", 1704110400)], "user_id string, video_id string, s long"
    )
    df = df.selectExpr("user_id", "video_id", "timestamp_seconds(s) AS event_ts")
    before, _ = time_cutoff_split(df, dt.datetime(2024, 1, 1, 11, 59))
    at, _ = time_cutoff_split(df, dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone.utc))
    assert before.count() == 0
    assert at.count() == 1
