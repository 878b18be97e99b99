"""Item frequencies, alias tables, negative sampling and the streaming file layout."""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import math

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from recsys_spark import columns as C
from recsys_spark.sampling import (
    alias_table,
    item_frequencies,
    popularity_table,
    sample_negatives,
    uniform_table,
    user_pool,
)
from recsys_spark.settings import NegativesConfig
from recsys_spark.training_set import layout_for_streaming

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
NONE = NegativesConfig(random=0, popular=0, impression=0, mined=0)

EXAMPLES_SCHEMA = "user_idx long, video_idx long, event_ts timestamp, split string"
PAIRS_SCHEMA = "user_idx long, video_idx long"
IMPRESSIONS_SCHEMA = "user_idx long, video_idx long, event_ts timestamp"


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def implied_probabilities(accept: np.ndarray, alias: np.ndarray) -> np.ndarray:
    n = accept.size
    probabilities = accept.copy()
    np.add.at(probabilities, alias, 1.0 - accept)
    return probabilities / n


# --- alias tables ---------------------------------------------------------------------


def test_alias_table_is_exact():
    weights = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    accept, alias = alias_table(weights)
    np.testing.assert_allclose(implied_probabilities(accept, alias), weights / 10.0, atol=1e-12)
    assert accept[3] == 0.0  # a zero weight never keeps its own slot


def test_alias_table_skewed_weights():
    weights = np.arange(1, 1001, dtype=float) ** 2
    accept, alias = alias_table(weights)
    np.testing.assert_allclose(
        implied_probabilities(accept, alias), weights / weights.sum(), atol=1e-12
    )


@pytest.mark.parametrize(
    "weights", [[], [0.0, 0.0], [1.0, -1.0], [1.0, float("nan")], [[1.0, 2.0]]]
)
def test_alias_table_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="weights must"):
        alias_table(np.array(weights))


# --- item frequencies -----------------------------------------------------------------


def test_item_frequencies_hand_computed(spark):
    train = spark.createDataFrame(
        [("a", 1), ("a", 1), ("a", 1), ("b", 2)], "video_id string, video_idx long"
    )
    expected = spark.createDataFrame(
        [("a", 1, 3, 0.75), ("b", 2, 1, 0.25)],
        "video_id string, video_idx long, count long, probability double",
    )
    assertDataFrameEqual(item_frequencies(train), expected)


# --- negatives ------------------------------------------------------------------------


def frequencies(spark, counts: dict[int, int]):
    rows = [(f"v{idx}", idx, count) for idx, count in sorted(counts.items())]
    return spark.createDataFrame(rows, "video_id string, video_idx long, count long")


def corpus(spark, size: int):
    return spark.createDataFrame(
        [(f"v{i}", i) for i in range(1, size + 1)], "video_id string, video_idx long"
    )


# (user, video, hour shown). u1's train positive 1 and u2's train positive 5 never enter
# the pool; u1's validation positive 3 does, and only training examples may draw it.
IMPRESSIONS = [
    (1, 7, 0.0),
    (1, 3, 0.2),
    (1, 1, 0.5),
    (1, 8, 1.5),
    (1, 7, 3.0),  # shown again: the pool keeps its first time
    (1, 9, 3.5),
    (2, 10, 0.0),
    (2, 5, 0.5),
    (2, 11, 2.0),
]


def impressed_before(user: int, hour: float) -> set[int]:
    return {video for u, video, shown in IMPRESSIONS if u == user and shown < hour}


@pytest.fixture
def world(spark):
    """Two users, a 12-video corpus, impressions and positives in several splits."""
    examples = spark.createDataFrame(
        [
            (1, 1, at(1), C.TRAIN),
            (1, 2, at(2), C.TRAIN),
            (1, 3, at(3), C.VALIDATION),
            (1, 4, at(4), C.TEST),
            (2, 5, at(1), C.TRAIN),
            (2, 6, at(5), C.TEST),
        ],
        EXAMPLES_SCHEMA,
    )
    positives = examples.select(C.USER_IDX, C.VIDEO_IDX, C.SPLIT)
    impressions = spark.createDataFrame(
        [(user, video, at(hour)) for user, video, hour in IMPRESSIONS], IMPRESSIONS_SCHEMA
    )
    pool = user_pool(impressions, positives.filter(F.col(C.SPLIT) == C.TRAIN), since=C.EVENT_TS)
    counts = {1: 5, 2: 3, 3: 1, 5: 2, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1}
    return {
        "examples": examples,
        "positives": positives,
        "uniform": uniform_table(corpus(spark, 12)),
        "popular": popularity_table(frequencies(spark, counts), 0.75),
        "impression_pool": pool,
    }


def sample(world, negatives, seed=11, examples=None, **extra):
    return sample_negatives(
        world["examples"] if examples is None else examples,
        world["positives"],
        negatives,
        seed,
        uniform=world["uniform"],
        popular=world["popular"],
        impression_pool=world["impression_pool"],
        **extra,
    )


def visible_positives(world):
    """(user, split rank) -> the videos that user's examples in that split must avoid."""
    ranks = {C.TRAIN: 0, C.VALIDATION: 1, C.TEST: 2}
    rows = world["positives"].collect()
    return {
        (user, rank): {
            r[C.VIDEO_IDX] for r in rows if r[C.USER_IDX] == user and ranks[r[C.SPLIT]] <= rank
        }
        for user in (1, 2)
        for rank in ranks.values()
    }


def test_impression_pool_in_time_order_without_training_positives(world):
    pool = world["impression_pool"].collect()
    by_user = {}
    for row in pool:
        by_user.setdefault(row[C.USER_IDX], []).append((row["_position"], row["_chosen"]))
    # u1 saw 7, 3, 1 (a train positive), 8, 7 again and 9; u2 saw 10, 5 (a train positive)
    # and 11. Positions follow the first time shown, not the video index.
    assert sorted(by_user[1]) == [(0, 7), (1, 3), (2, 8), (3, 9)]
    assert sorted(by_user[2]) == [(0, 10), (1, 11)]
    assert {row["_pool_size"] for row in pool if row[C.USER_IDX] == 1} == {4}


def test_impression_negatives_only_from_earlier_impressions(world):
    config = dataclasses.replace(NONE, impression=3, oversampling=30.0)
    got = {
        (row[C.USER_IDX], row[C.VIDEO_IDX]): row[C.NEGATIVE_VIDEO_IDX]
        for row in sample(world, config).collect()
    }
    # u1's train example at hour 1 has seen 7 and 3: 3 is a later validation positive,
    # which a training example may use. At hour 2 (train) 8 has been shown too.
    assert sorted(got[(1, 1)]) == [3, 7]
    assert sorted(got[(1, 2)]) == [3, 7, 8]
    # The validation example at hour 3 must not draw its own split's positive 3.
    assert sorted(got[(1, 3)]) == [7, 8]
    # At hour 4 (test) 9 has been shown as well; 3 stays out.
    assert sorted(got[(1, 4)]) == [7, 8, 9]
    # u2's example at hour 1 has seen 10 only; at hour 5, 10 and 11.
    assert got[(2, 5)] == [10]
    assert sorted(got[(2, 6)]) == [10, 11]


def test_negatives_follow_mix_and_avoid_positives(world):
    config = dataclasses.replace(NONE, random=3, popular=2, impression=2, oversampling=4.0)
    got = sample(world, config).collect()
    ranks = {C.TRAIN: 0, C.VALIDATION: 1, C.TEST: 2}
    avoid = visible_positives(world)
    assert len(got) == 6
    for row in got:
        negatives, types = row[C.NEGATIVE_VIDEO_IDX], row[C.NEGATIVE_TYPES]
        user = row[C.USER_IDX]
        assert len(negatives) == len(types)
        assert len(set(negatives)) == len(negatives), row
        assert not set(negatives) & avoid[(user, ranks[row[C.SPLIT]])], row
        assert row[C.VIDEO_IDX] not in negatives
        # Grouped by source in the configured order; each source fills its quota.
        assert types == sorted(types, key=["random", "popular", "impression"].index)
        assert types.count("random") == 3, row
        assert types.count("popular") == 2, row
        # Impressions fill their quota from what random and popular left over.
        earlier = {n for n, t in zip(negatives, types, strict=True) if t != "impression"}
        chosen = [n for n, t in zip(negatives, types, strict=True) if t == "impression"]
        # The world's examples are at the hours 1 to 4 (u1) and 1 and 5 (u2).
        hour = {1: 1, 2: 2, 3: 3, 4: 4, 5: 1, 6: 5}[row[C.VIDEO_IDX]]
        visible = impressed_before(user, hour) - avoid[(user, ranks[row[C.SPLIT]])]
        assert set(chosen) <= visible, row
        assert len(chosen) == min(2, len(visible - earlier)), row


def test_negatives_skip_earlier_split_positives_only(spark, world):
    # A 6-video corpus: u1's train positives are 1 and 2, validation 3, test 4.
    world = dict(world, uniform=uniform_table(corpus(spark, 6)))
    config = dataclasses.replace(NONE, random=2, oversampling=20.0)
    got = {
        (row[C.USER_IDX], row[C.VIDEO_IDX]): set(row[C.NEGATIVE_VIDEO_IDX])
        for row in sample(world, config).collect()
    }
    # The test example may use only 5 and 6; a training example may also use the later
    # positives 3 and 4 (excluding them would leak held-out labels into training).
    assert got[(1, 4)] <= {5, 6}
    assert got[(1, 1)] <= {3, 4, 5, 6}
    assert len(got[(1, 1)]) == 2


def test_negatives_run_short_without_candidates(spark, world):
    # Corpus = u2's two positives: every draw is rejected and the arrays stay empty.
    world = dict(world, uniform=uniform_table(corpus(spark, 12).filter("video_idx in (5, 6)")))
    config = dataclasses.replace(NONE, random=2)
    got = sample(world, config).filter(F.col(C.USER_IDX) == 2).orderBy(C.EVENT_TS).collect()
    assert [row[C.NEGATIVE_VIDEO_IDX] for row in got] == [[6], []]
    assert [row[C.NEGATIVE_TYPES] for row in got] == [["random"], []]


def test_negatives_identical_across_partitioning(world):
    config = dataclasses.replace(NONE, random=2, popular=2, impression=1)
    baseline = sample(world, config)
    reshuffled = sample(world, config, examples=world["examples"].repartition(3).orderBy(F.rand(5)))
    assertDataFrameEqual(reshuffled, baseline)
    other_seed = sample(world, config, seed=12)
    assert sorted(map(tuple, other_seed.collect())) != sorted(map(tuple, baseline.collect()))


def test_popular_negatives_follow_weights(spark):
    # Weights 1 ** 0.75 = 1 and 16 ** 0.75 = 8: video 2 should be drawn 8 / 9 of the time.
    examples = spark.range(3000).select(
        (F.col("id") % 50 + 100).alias(C.USER_IDX),
        (F.col("id") + 1000).alias(C.VIDEO_IDX),
        F.timestamp_seconds(F.lit(1_767_225_600) + F.col("id")).alias(C.EVENT_TS),
        F.lit(C.TRAIN).alias(C.SPLIT),
    )
    got = sample_negatives(
        examples,
        examples.select(C.USER_IDX, C.VIDEO_IDX, C.SPLIT),
        dataclasses.replace(NONE, popular=1, oversampling=1.0),
        seed=3,
        popular=popularity_table(frequencies(spark, {1: 1, 2: 16}), 0.75),
    )
    drawn = got.select(F.explode(C.NEGATIVE_VIDEO_IDX).alias("video")).groupBy("video").count()
    counts = {row["video"]: row["count"] for row in drawn.collect()}
    assert sum(counts.values()) == 3000
    # Binomial standard deviation: sqrt(3000 * 8/9 * 1/9) / 3000 = 0.0057.
    assert counts[2] / 3000 == pytest.approx(8 / 9, abs=0.025)


def test_mined_negatives_come_from_the_table(spark, world):
    mined = spark.createDataFrame([(1, 12), (1, 11), (1, 2)], PAIRS_SCHEMA)
    config = dataclasses.replace(NONE, mined=2, oversampling=10.0)
    got = {
        (row[C.USER_IDX], row[C.VIDEO_IDX]): (row[C.NEGATIVE_VIDEO_IDX], row[C.NEGATIVE_TYPES])
        for row in sample(world, config, mined_pool=user_pool(mined)).collect()
    }
    # u1's train example at video 1 may use 12, 11 and 2 (positive only in train, so
    # excluded); u2 has no mined rows.
    negatives, types = got[(1, 1)]
    assert set(negatives) == {11, 12}
    assert types == ["mined", "mined"]
    assert got[(2, 5)] == ([], [])


def test_no_sources_gives_empty_arrays(world):
    got = sample(world, NONE).collect()
    assert {tuple(row[C.NEGATIVE_VIDEO_IDX]) for row in got} == {()}
    assert {tuple(row[C.NEGATIVE_TYPES]) for row in got} == {()}


# --- file layout ----------------------------------------------------------------------


def test_layout_bounded_files_stable_order(spark, tmp_path):
    rows = spark.range(250).select(
        (F.col("id") % 17).alias(C.USER_IDX),
        F.col("id").alias(C.VIDEO_IDX),
        F.timestamp_seconds(F.lit(1_767_225_600) + F.col("id")).alias(C.EVENT_TS),
    )
    orders = []
    for name, source in (("a", rows), ("b", rows.repartition(7).orderBy(F.rand(1)))):
        path = str(tmp_path / name)
        layout_for_streaming(source, 250, 100, seed=5).write.option(
            "maxRecordsPerFile", 100
        ).parquet(path)
        files = sorted(glob.glob(f"{path}/*.parquet"))
        # ceil(250 / 100) = 3 partitions, each below the 100-row cap.
        assert len(files) == math.ceil(250 / 100)
        orders.append(
            [[row[C.VIDEO_IDX] for row in spark.read.parquet(file).collect()] for file in files]
        )
    assert orders[0] == orders[1]
    flat = [video for part in orders[0] for video in part]
    assert sorted(flat) == list(range(250))
    assert flat != sorted(flat)
