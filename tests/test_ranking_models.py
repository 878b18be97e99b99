"""Rankers: the RankNet loss and pairs, query groups, each model family, selection, scoring."""

from __future__ import annotations

import math
import posixpath

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from ranking_fixtures import synthetic_ranking_inputs

from recsys_spark import io
from recsys_spark.columns import SCORE
from recsys_spark.ranking import metrics
from recsys_spark.ranking.artifacts import load_metadata, load_ranker, save_ranker
from recsys_spark.ranking.base import RETRIEVAL_ORDER, RetrievalOrder
from recsys_spark.ranking.dataset import FEATURE_COLUMNS, build_ranking_dataset
from recsys_spark.ranking.neural import driver_sample, ranknet_loss, sample_pairs
from recsys_spark.ranking.pairwise import group_by_query
from recsys_spark.ranking.pointwise import fit_logistic_regression
from recsys_spark.ranking.scoring import score_candidates
from recsys_spark.ranking.selection import TRAINED, choose, train_and_select
from recsys_spark.settings import (
    LogisticRegressionConfig,
    RankerConfig,
    RankNetConfig,
    RatingRegressionConfig,
    XGBoostClassifierConfig,
    XGBoostRankerConfig,
)


def test_ranknet_loss_hand_worked():
    # loss = mean(log(1 + exp(-(s_pos - s_neg)))):
    #   d = 2: log(1 + e^-2) = 0.126928;  d = 0: log 2 = 0.693147;
    #   d = -3: log(1 + e^3) = 3.048587;  mean = 1.289554.
    positive = np.array([2.0, 0.0, 0.0], dtype=np.float32)
    negative = np.array([0.0, 0.0, 3.0], dtype=np.float32)
    loss = float(ranknet_loss(positive, negative))
    assert loss == pytest.approx(1.289554, abs=1e-5)
    assert loss == pytest.approx(
        np.mean([math.log1p(math.exp(-2)), math.log(2), math.log1p(math.exp(3))]), abs=1e-5
    )
    # A column of scores ([pairs, 1], the MLP's output) gives the same loss.
    assert float(ranknet_loss(positive[:, None], negative[:, None])) == pytest.approx(loss)


def test_sample_pairs_within_groups():
    labels = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    groups = np.array([7, 7, 7, 3, 3, 3, 5, 5])
    positive_rows, negative_rows = sample_pairs(labels, groups, 10, np.random.default_rng(0))
    pairs = set(zip(positive_rows.tolist(), negative_rows.tolist(), strict=True))
    # Group 7: row 0 over rows 1, 2. Group 3: rows 3, 4 over row 5. Group 5: no positive.
    assert pairs == {(0, 1), (0, 2), (3, 5), (4, 5)}
    assert len(positive_rows) == 4

    capped_positive, capped_negative = sample_pairs(labels, groups, 1, np.random.default_rng(0))
    assert len(capped_positive) == 2
    for positive, negative in zip(capped_positive, capped_negative, strict=True):
        assert groups[positive] == groups[negative]
        assert labels[positive] == 1
        assert labels[negative] == 0


def test_driver_sample_keeps_whole_users(spark):
    rows = [("u1", f"v{index}", 1 if index == 0 else 0) for index in range(6)]
    rows += [("u2", f"v{index}", 0) for index in range(3)]
    df = spark.createDataFrame(rows, "user_id string, video_id string, label int")
    counts = {
        (row["user_id"], row["label"]): row["count"]
        for row in driver_sample(df, 2, 100, seed=1).groupBy("user_id", "label").count().collect()
    }
    # u2 has no positive, so no pairs; u1 keeps its positive and 2 of its 5 negatives.
    assert counts == {("u1", 1): 1, ("u1", 0): 2}

    # 50 users of 3 rows (150) capped at 60 rows: about 20 whole users.
    many = [(f"u{user}", f"v{index}", int(index == 0)) for user in range(50) for index in range(3)]
    sample = driver_sample(
        spark.createDataFrame(many, "user_id string, video_id string, label int"), 5, 60, seed=1
    )
    rows_per_user = [row["count"] for row in sample.groupBy("user_id").count().collect()]
    assert set(rows_per_user) == {3}
    assert 8 <= len(rows_per_user) <= 32


def test_query_groups_whole_and_contiguous(spark):
    # Four queries whose rows arrive interleaved over three partitions (round robin).
    rows = [(qid, f"v{index}") for index in range(6) for qid in (40, 10, 30, 20)]
    interleaved = spark.createDataFrame(rows, "qid long, video_id string").repartition(3)
    assert interleaved.rdd.getNumPartitions() == 3
    spread = interleaved.rdd.glom().map(lambda part: sorted({row["qid"] for row in part}))
    assert any(len(qids) > 1 for qids in spread.collect())

    grouped = group_by_query(interleaved, "qid", 2)
    partitions = grouped.rdd.glom().map(lambda part: [row["qid"] for row in part]).collect()
    assert len(partitions) == 2
    assert sorted(qid for part in partitions for qid in part) == sorted(r[0] for r in rows)
    seen = set()
    for qids in partitions:
        assert qids == sorted(qids), "query ids must be non-decreasing within a partition"
        runs = [qid for index, qid in enumerate(qids) if index == 0 or qids[index - 1] != qid]
        assert len(runs) == len(set(runs)), "a query's rows must be contiguous"
        assert not seen & set(runs), "a query must not span two partitions"
        seen |= set(runs)
    assert seen == {10, 20, 30, 40}


def test_logistic_regression_separable(spark):
    # Feature x separates the classes at 0; every other feature is constant zero.
    rows = [(-2.0 - index / 10, 0) for index in range(10)]
    rows += [(2.0 + index / 10, 1) for index in range(10)]
    train = spark.createDataFrame(rows, "x double, label int")
    train = train.select(
        F.col("x").alias(FEATURE_COLUMNS[0]),
        *[F.lit(0.0).alias(name) for name in FEATURE_COLUMNS[1:]],
        "label",
    )
    ranker = fit_logistic_regression(train, LogisticRegressionConfig(reg_param=0.0))
    scored = ranker.score(train).select("label", SCORE).collect()
    assert all(row[SCORE] > 0.9 for row in scored if row["label"] == 1)
    assert all(row[SCORE] < 0.1 for row in scored if row["label"] == 0)
    assert metrics.auc(ranker.score(train)) == pytest.approx(1.0)
    coefficients = ranker.model.stages[-1].coefficients
    assert coefficients[0] > 0


def test_choose_prefers_ndcg_then_auc_then_order():
    def row(model, ndcg, auc, status=TRAINED):
        return {"model": model, "status": status, "ndcg_at_k": ndcg, "auc": auc}

    assert choose([row("a", 0.5, 0.7), row("b", 0.6, 0.6), row("c", 0.6, 0.8)]) == "c"
    assert choose([row("a", 0.6, 0.7), row("retrieval_order", 0.6, 0.7)]) == "a"
    assert choose([row("a", None, None, "skipped"), row("retrieval_order", 0.4, 0.5)]) == (
        "retrieval_order"
    )
    with pytest.raises(ValueError, match="no ranker-validation user"):
        choose([row("retrieval_order", None, None)])


@pytest.fixture(scope="module")
def synthetic_dataset(spark):
    inputs = synthetic_ranking_inputs(spark)
    dataset = build_ranking_dataset(
        inputs["candidates"],
        inputs["user_features"],
        inputs["video_features"],
        inputs["label_events"],
        validation_fraction=0.3,
        seed=5,
    ).cache()
    yield inputs, dataset
    dataset.unpersist()


# Small models keep the test fast; the defaults train longer.
SMALL_RANKERS = RankerConfig(
    logistic_regression=LogisticRegressionConfig(max_iter=20),
    rating_regression=RatingRegressionConfig(max_iter=15, max_depth=3),
    xgboost_classifier=XGBoostClassifierConfig(n_estimators=30, max_depth=3),
    xgboost_ranker=XGBoostRankerConfig(n_estimators=30, max_depth=3),
    ranknet=RankNetConfig(hidden_units=(16,), epochs=25, learning_rate=0.01, batch_size=256),
)


@pytest.fixture(scope="module")
def selection(synthetic_dataset):
    _, dataset = synthetic_dataset
    return train_and_select(dataset, SMALL_RANKERS, seed=5)


def test_every_ranker_beats_retrieval_order(selection):
    table = {row["model"]: row for row in selection.comparison}
    assert list(table) == [
        "logistic_regression",
        "rating_regression",
        "xgboost_classifier",
        "xgboost_ranker",
        "ranknet",
        RETRIEVAL_ORDER,
    ]
    baseline = table[RETRIEVAL_ORDER]["ndcg_at_k"]
    # The retrieval score is noise here, so the baseline is near chance (about 0.3).
    assert baseline < 0.5
    for name, row in table.items():
        if name == RETRIEVAL_ORDER:
            continue
        assert row["status"] == TRAINED, (name, row["reason"])
        assert row["ndcg_at_k"] > baseline + 0.2, (name, row["ndcg_at_k"], baseline)
        assert row["auc"] > 0.8, (name, row["auc"])
    assert selection.chosen.name != RETRIEVAL_ORDER
    assert [row["model"] for row in selection.comparison if row["chosen"]] == [
        selection.chosen.name
    ]


# One ranker per way of saving: an MLlib pipeline, a pipeline with an xgboost.spark
# stage (written by Python), and a TensorFlow SavedModel.
ROUND_TRIP = ("logistic_regression", "xgboost_ranker", "ranknet")


def test_saved_rankers_score_identically(spark, selection, synthetic_dataset, tmp_path):
    _, dataset = synthetic_dataset
    lake = io.Lake(str(tmp_path / "lake"))
    rows = dataset.where("ranker_split = 'validation'").limit(200).cache()
    for name in ROUND_TRIP:
        ranker = selection.rankers[name]
        save_ranker(spark, lake, f"version-{name}", ranker, {"comparison": selection.comparison})
        loaded, metadata = load_ranker(spark, lake, f"version-{name}")
        assert metadata["model"] == name
        assert metadata["feature_columns"] == list(FEATURE_COLUMNS)
        assert metadata["comparison"] == selection.comparison
        before = ranker.score(rows).select("user_id", "video_id", SCORE)
        after = loaded.score(rows).select("user_id", "video_id", SCORE)
        assertDataFrameEqual(after, before, rtol=1e-5)
    # LATEST names the last version saved.
    assert load_metadata(spark, lake)["version"] == "version-ranknet"
    rows.unpersist()


def test_score_candidates_from_lake(spark, synthetic_dataset, tmp_path):
    inputs, _ = synthetic_dataset
    lake = io.Lake(str(tmp_path / "lake"))
    candidates = inputs["candidates"].where(F.col("user_id") < "u010")
    io.write_table(candidates, posixpath.join(lake.candidates(), "test"))
    io.write_table(inputs["user_features"], lake.features("users", "test"))
    io.write_table(inputs["video_features"], lake.features("videos", "test"))

    with pytest.raises(FileNotFoundError, match="train_ranker"):
        score_candidates(spark, lake, "test")

    save_ranker(spark, lake, "baseline-1", RetrievalOrder(), {})
    scored = score_candidates(spark, lake, "test")
    assert scored.columns == [*candidates.columns, SCORE]
    assert scored.schema[SCORE].dataType.typeName() == "double"
    assert scored.count() == candidates.count()
    mismatched = scored.where(F.col(SCORE) != F.col("retrieval_score"))
    assert mismatched.isEmpty()
