"""Ranking and beyond-accuracy metrics on Spark against a pure-Python reference and
values worked out by hand."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.sql import types as T

from recsys_spark.evaluation import beyond_accuracy as ba
from recsys_spark.evaluation.metrics import (
    METRICS,
    evaluate_with_ranking_evaluator,
    metric_column,
    per_user_ranking_metrics,
    rank_by_score,
    ranking_summary,
)

RECS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("video_id", T.StringType(), False),
        T.StructField("rank", T.IntegerType(), False),
    ]
)
SCORED_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("video_id", T.StringType(), False),
        T.StructField("score", T.DoubleType(), False),
    ]
)
PAIRS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("video_id", T.StringType(), False),
    ]
)


# --- the pure-Python reference --------------------------------------------------------


def reference_user_metrics(ranked: list[str], relevant: set[str], k: int) -> dict[str, float]:
    """Compute every metric for one user from a list already in rank order."""
    seen: set[str] = set()
    items = []
    for item in ranked:
        if item not in seen:
            seen.add(item)
            items.append(item)
    top = items[:k]
    hits = [item in relevant for item in top]
    hit_count = sum(hits)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    precision_sum = 0.0
    running = 0
    for i, hit in enumerate(hits):
        if hit:
            running += 1
            precision_sum += running / (i + 1)
    first = next((i + 1 for i, hit in enumerate(hits) if hit), None)
    return {
        "precision": hit_count / k,
        "recall": hit_count / len(relevant),
        "ndcg": dcg / ideal,
        "map": precision_sum / len(relevant),
        "map_capped": precision_sum / min(len(relevant), k),
        "mrr": 1.0 / first if first else 0.0,
        "hit_rate": 1.0 if first else 0.0,
    }


def reference_summary(lists: dict[str, list[str]], relevant: dict[str, set[str]], ks):
    """Average the reference metrics over users with relevant items; count the others."""
    evaluated = sorted(user for user, items in relevant.items() if items)
    summary = {
        "users_evaluated": len(evaluated),
        "users_without_relevant": len([u for u in lists if not relevant.get(u)]),
        "users_without_recommendations": len([u for u in evaluated if not lists.get(u)]),
    }
    for k in ks:
        per_user = [reference_user_metrics(lists.get(u, []), relevant[u], k) for u in evaluated]
        for name in METRICS:
            summary[metric_column(name, k)] = sum(m[name] for m in per_user) / len(per_user)
    return summary


# --- hand-made data ---------------------------------------------------------------------

# u1: ranks with gaps (positions 1..4 are a, b, c, d); relevant b, d and x (never shown).
# u3: a list but nothing relevant: excluded and counted.
# u4: relevant a but no list: scored 0 and counted.
# u5: a repeated at ranks 1 and 2 counts once, so b is at position 2.
HAND_RECS = [
    ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 5), ("u1", "d", 7),
    ("u3", "a", 1), ("u3", "b", 2),
    ("u5", "a", 1), ("u5", "a", 2), ("u5", "b", 3),
]  # fmt: skip
HAND_RELEVANT = [("u1", "b"), ("u1", "d"), ("u1", "x"), ("u4", "a"), ("u5", "b"), ("u5", "b")]
# u2 is ranked from scores: e 0.9, then f and g tied at 0.5 (f first by id); relevant g.
HAND_SCORES = [("u2", "e", 0.9), ("u2", "g", 0.5), ("u2", "f", 0.5)]
HAND_RELEVANT_SCORED = [("u2", "g")]


@pytest.fixture
def hand_inputs(spark):
    ranked = rank_by_score(spark.createDataFrame(HAND_SCORES, SCORED_SCHEMA)).select(
        "user_id", "video_id", "rank"
    )
    recs = spark.createDataFrame(HAND_RECS, RECS_SCHEMA).unionByName(ranked)
    relevant = spark.createDataFrame(HAND_RELEVANT + HAND_RELEVANT_SCORED, PAIRS_SCHEMA)
    return recs, relevant


def test_rank_by_score_breaks_ties_by_id(spark):
    ranked = rank_by_score(spark.createDataFrame(HAND_SCORES, SCORED_SCHEMA))
    order = [row.video_id for row in ranked.orderBy("rank").collect()]
    assert order == ["e", "f", "g"]


def test_per_user_metrics_hand_values(spark, hand_inputs):
    recs, relevant = hand_inputs
    rows = {
        row.user_id: row for row in per_user_ranking_metrics(recs, relevant, ks=(2, 10)).collect()
    }
    assert set(rows) == {"u1", "u2", "u4", "u5"}  # u3 has nothing relevant

    u1 = rows["u1"]
    assert u1.num_relevant == 3
    assert u1.list_length == 4
    # K=2: b is a hit at position 2.
    assert u1.precision_at_2 == pytest.approx(0.5)
    assert u1.recall_at_2 == pytest.approx(1 / 3)
    # DCG 1/log2(3) = 0.63093; ideal 1 + 1/log2(3) = 1.63093.
    assert u1.ndcg_at_2 == pytest.approx(0.386853, abs=1e-6)
    assert u1.map_at_2 == pytest.approx(0.5 / 3)  # precision 1/2 at b, over 3 relevant
    assert u1.map_capped_at_2 == pytest.approx(0.25)  # over min(3, 2)
    assert u1.mrr_at_2 == pytest.approx(0.5)
    assert u1.hit_rate_at_2 == 1.0
    # K=10 is longer than the list: hits b@2 and d@4; precision still divides by 10.
    assert u1.precision_at_10 == pytest.approx(0.2)
    assert u1.recall_at_10 == pytest.approx(2 / 3)
    # DCG 0.630930 + 1/log2(5) = 1.061606; ideal 1 + 0.630930 + 0.5 = 2.130930.
    assert u1.ndcg_at_10 == pytest.approx(0.498189, abs=1e-6)
    assert u1.map_at_10 == pytest.approx((1 / 2 + 2 / 4) / 3)

    u2 = rows["u2"]  # e, f, g with g relevant at position 3
    assert u2.hit_rate_at_2 == 0.0
    assert u2.ndcg_at_2 == 0.0
    assert u2.ndcg_at_10 == pytest.approx(0.5)  # 1/log2(4) over 1
    assert u2.mrr_at_10 == pytest.approx(1 / 3)

    u4 = rows["u4"]
    assert u4.list_length == 0
    assert u4.recall_at_10 == 0.0
    assert u4.ndcg_at_10 == 0.0

    u5 = rows["u5"]  # the repeated a counts once, so b sits at position 2
    assert u5.num_relevant == 1
    assert u5.list_length == 2
    assert u5.precision_at_2 == pytest.approx(0.5)
    assert u5.ndcg_at_2 == pytest.approx(1 / math.log2(3))


def test_summary_counts_excluded_users(spark, hand_inputs):
    recs, relevant = hand_inputs
    summary = ranking_summary(recs, relevant, ks=(2, 10)).collect()[0].asDict()
    assert summary["users_evaluated"] == 4
    assert summary["users_without_relevant"] == 1  # u3
    assert summary["users_without_recommendations"] == 1  # u4
    # Precision@2 over u1, u2, u4, u5: (0.5 + 0 + 0 + 0.5) / 4.
    assert summary["precision_at_2"] == pytest.approx(0.25)
    # Recall@10: (2/3 + 1 + 0 + 1) / 4.
    assert summary["recall_at_10"] == pytest.approx((2 / 3 + 1 + 0 + 1) / 4)


def test_summary_matches_reference_on_hand_data(spark, hand_inputs):
    recs, relevant = hand_inputs
    lists = {
        "u1": ["a", "b", "c", "d"],
        "u2": ["e", "f", "g"],
        "u3": ["a", "b"],
        "u5": ["a", "a", "b"],
    }
    relevant_sets = {"u1": {"b", "d", "x"}, "u2": {"g"}, "u4": {"a"}, "u5": {"b"}}
    expected = reference_summary(lists, relevant_sets, ks=(1, 2, 3, 10))
    summary = ranking_summary(recs, relevant, ks=(1, 2, 3, 10)).collect()[0].asDict()
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, abs=1e-12), key


def random_lists(seed: int):
    """Random lists over 12 items for 25 users; some users lack a list or relevant items."""
    generator = random.Random(seed)
    items = [f"i{n:02d}" for n in range(12)]
    lists, relevant = {}, {}
    for n in range(25):
        user = f"u{n:02d}"
        if generator.random() < 0.85:
            lists[user] = generator.sample(items, generator.randint(1, 8))
        if generator.random() < 0.8:
            relevant[user] = set(generator.sample(items, generator.randint(1, 5)))
    return lists, relevant


def lists_to_frames(spark, lists, relevant):
    recs = [
        (user, item, position + 1)
        for user, items in lists.items()
        for position, item in enumerate(items)
    ]
    pairs = [(user, item) for user, items in relevant.items() for item in sorted(items)]
    return spark.createDataFrame(recs, RECS_SCHEMA), spark.createDataFrame(pairs, PAIRS_SCHEMA)


def test_summary_matches_reference_on_random_lists(spark):
    lists, relevant = random_lists(seed=7)
    recs, pairs = lists_to_frames(spark, lists, relevant)
    ks = (1, 3, 5, 10)
    expected = reference_summary(lists, relevant, ks)
    summary = ranking_summary(recs, pairs, ks=ks).collect()[0].asDict()
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, abs=1e-12), key


def test_ranking_evaluator_agrees(spark, hand_inputs):
    recs, relevant = hand_inputs
    ks = (2, 10)
    ours = ranking_summary(recs, relevant, ks=ks).collect()[0].asDict()
    spark_values = evaluate_with_ranking_evaluator(recs, relevant, ks=ks)
    assert set(spark_values) == {
        metric_column(name, k)
        for k in ks
        for name in ("precision", "recall", "ndcg", "map", "map_capped")
    }
    for key, value in spark_values.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_summary_without_relevant_users(spark):
    recs = spark.createDataFrame([("u1", "a", 1)], RECS_SCHEMA)
    relevant = spark.createDataFrame([], PAIRS_SCHEMA)
    summary = ranking_summary(recs, relevant, ks=(10,)).collect()[0].asDict()
    assert summary["users_evaluated"] == 0
    assert summary["users_without_relevant"] == 1
    assert summary["ndcg_at_10"] is None
    assert evaluate_with_ranking_evaluator(recs, relevant, ks=(10,)) == {}


def test_invalid_cutoffs_rejected(spark, hand_inputs):
    recs, relevant = hand_inputs
    with pytest.raises(ValueError, match="positive integers"):
        ranking_summary(recs, relevant, ks=(0, 10))


def test_missing_column_named(spark):
    recs = spark.createDataFrame([("u1", "a")], PAIRS_SCHEMA)
    with pytest.raises(ValueError, match=r"recommendations is missing columns \['rank'\]"):
        ranking_summary(recs, recs, ks=(10,))


# --- beyond accuracy ---------------------------------------------------------------------

INTERACTIONS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u3", "a"), ("u3", "c"), ("u3", "c")]
CATALOG = ["a", "b", "c", "d"]


@pytest.fixture
def popularity(spark):
    interactions = spark.createDataFrame(INTERACTIONS, PAIRS_SCHEMA)
    catalog = spark.createDataFrame([(item,) for item in CATALOG], "video_id string")
    return ba.item_popularity(interactions, catalog)


def test_item_popularity_hand_values(spark, popularity):
    rows = {row.video_id: row for row in popularity.collect()}
    # Distinct users: a 3, b 1, c 1 (u3's repeat counts once), d 0.
    assert {item: rows[item].popularity for item in CATALOG} == {"a": 3, "b": 1, "c": 1, "d": 0}
    # Mid-rank percentiles over 4 items: d (0 + 0.5) / 4, b and c (1 + 1) / 4, a (3 + 0.5) / 4.
    assert rows["d"].popularity_percentile == pytest.approx(0.125)
    assert rows["b"].popularity_percentile == pytest.approx(0.5)
    assert rows["a"].popularity_percentile == pytest.approx(0.875)
    # Self-information -log2((popularity + 1) / (3 users + 1)).
    assert rows["a"].self_information == pytest.approx(0.0)
    assert rows["b"].self_information == pytest.approx(1.0)
    assert rows["d"].self_information == pytest.approx(2.0)


def test_popularity_summary_hand_values(spark, popularity):
    recs = spark.createDataFrame(
        [("u1", "d", 1), ("u1", "b", 2), ("u2", "a", 1), ("u2", "z", 2)], RECS_SCHEMA
    )
    row = ba.popularity_summary(recs, popularity, ks=(1, 2), long_tail_percentile=0.8).collect()[0]
    # K=1: slots d and a.
    assert row.catalog_coverage_at_1 == pytest.approx(2 / 4)
    assert row.novelty_at_1 == pytest.approx((2.0 + 0.0) / 2)
    assert row.popularity_percentile_at_1 == pytest.approx((0.125 + 0.875) / 2)
    assert row.long_tail_share_at_1 == pytest.approx(0.5)
    # K=2: z is not in the catalog, so it is counted and left out of the means.
    assert row.unknown_item_slots_at_2 == 1
    assert row.catalog_coverage_at_2 == pytest.approx(3 / 4)
    assert row.novelty_at_2 == pytest.approx((2.0 + 1.0 + 0.0) / 3)
    assert row.long_tail_share_at_2 == pytest.approx(2 / 3)


def test_intra_list_diversity_hand_values(spark):
    videos = spark.createDataFrame(
        [("a", ["x", "y"], None), ("b", ["x"], None), ("c", [], "z"), ("d", [], None)],
        "video_id string, tags array<string>, category string",
    )
    features = ba.item_feature_sets(videos)
    recs = spark.createDataFrame(
        [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u2", "a", 1)],
        RECS_SCHEMA,
    )
    row = ba.intra_list_diversity(recs, features, ks=(2, 4)).collect()[0]
    # K=2: cos(a, b) = |{x}| / sqrt(2 * 1) = 0.70711. u2 has one item, so no pairs.
    assert row.intra_list_diversity_at_2 == pytest.approx(1 - 1 / math.sqrt(2))
    assert row.diversity_lists_at_2 == 1
    # K=4: d has no features; pairs a-b 0.70711, a-c 0, b-c 0 (c is {category:z}).
    assert row.intra_list_diversity_at_4 == pytest.approx(1 - (1 / math.sqrt(2)) / 3)


def test_exposure_histogram_and_gini(spark):
    catalog = spark.createDataFrame(
        [("a", "c1"), ("b", "c1"), ("c", "c2"), ("d", None), ("e", "c3")],
        "video_id string, creator_id string",
    )
    recs = spark.createDataFrame(
        [("u1", "a", 1), ("u1", "c", 2), ("u1", "d", 3), ("u2", "b", 1), ("u2", "a", 2)],
        RECS_SCHEMA,
    )
    histogram = ba.exposure_histogram(recs, catalog, "creator_id", k=10)
    pairs = sorted((row.exposure, row.units) for row in histogram.collect())
    # c1 gets a, a, b = 3 slots; c2 gets 1; c3 none; d has no creator and is left out.
    assert pairs == [(0, 1), (1, 1), (3, 1)]
    # Sorted 0, 1, 3: sum (2i - n - 1) x_i = -2*0 + 0*1 + 2*3 = 6, over n * total = 12.
    assert ba.gini_from_histogram(pairs) == pytest.approx(0.5)


def test_gini_extremes():
    assert ba.gini_from_histogram([(5, 3)]) == pytest.approx(0.0)
    # One unit of four gets everything: (n - 1) / n.
    assert ba.gini_from_histogram([(0, 3), (9, 1)]) == pytest.approx(0.75)
    assert ba.gini_from_histogram([(0, 4)]) is None
    assert ba.gini_from_histogram([]) is None
    with pytest.raises(ValueError, match="non-negative"):
        ba.gini_from_histogram([(-1, 2)])


def test_lorenz_curve_corners():
    assert ba.lorenz_curve_from_histogram([(1, 1), (0, 1)]) == [(0.0, 0.0), (0.5, 0.0), (1.0, 1.0)]
    assert ba.lorenz_curve_from_histogram([(0, 2)]) is None


def test_popularity_profile_shares(spark, popularity):
    recs = spark.createDataFrame([("u1", "a", 1), ("u2", "a", 1), ("u2", "d", 2)], RECS_SCHEMA)
    rows = {row.bin: row for row in ba.popularity_profile(recs, popularity, k=2, bins=2).collect()}
    # Percentiles d 0.125 -> bin 0; b, c 0.5 -> bin 1; a 0.875 -> bin 1.
    assert rows[0].catalog_share == pytest.approx(0.25)
    assert rows[1].catalog_share == pytest.approx(0.75)
    assert rows[0].recommendation_share == pytest.approx(1 / 3)
    assert rows[1].recommendation_share == pytest.approx(2 / 3)


def test_safe_float():
    assert ba.safe_float(None) is None
    assert ba.safe_float(float("nan")) is None
    assert ba.safe_float(2) == 2.0
