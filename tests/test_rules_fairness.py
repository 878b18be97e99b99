"""Fairness and diversity: caps, minimum shares, MMR, tiers, long tail, Gini."""

import datetime as dt

import pandas as pd
import pytest

from recsys_spark.config import load_config
from recsys_spark.postprocess.fairness import (
    ListParams,
    creator_exposure_gini,
    exposure_metrics,
    gini_from_histogram,
    list_params,
    long_tail_videos,
    new_creator_videos,
    select_list,
    select_lists,
)

COLUMNS = [
    "user_id",
    "video_id",
    "tier",
    "rule_score",
    "source",
    "creator_id",
    "category",
    "long_tail",
    "fresh",
    "embedding",
]


def group(rows):
    """Build one user's rows from (video, score, creator, category, long_tail, fresh,
    embedding[, tier]) tuples."""
    records = []
    for row in rows:
        video, score, creator, category, tail, fresh, embedding, *tier = row
        records.append(
            (
                "u1",
                video,
                tier[0] if tier else 0,
                score,
                "two_tower",
                creator,
                category,
                tail,
                fresh,
                embedding,
            )
        )
    return pd.DataFrame(records, columns=COLUMNS)


def listed(result):
    ordered = result[result["rank"].notna()].sort_values("rank")
    return list(ordered["video_id"])


def removed(result):
    rows = result[result["reason"].notna()]
    return dict(zip(rows["video_id"], rows["reason"], strict=True))


def test_caps_remove_in_score_order():
    rows = group(
        [
            ("v1", 0.9, "c1", "music", False, False, None),
            ("v2", 0.8, "c1", "music", False, False, None),
            ("v3", 0.7, "c2", "music", False, False, None),
            ("v4", 0.6, "c3", "music", False, False, None),
            ("v5", 0.5, "c4", "news", False, False, None),
            ("v6", 0.4, "c5", "news", False, False, None),
        ]
    )
    result = select_list(rows, ListParams(k=3, max_per_creator=1, max_per_category=2))
    # v2 is c1's second video; v4 would be the third music video; v6 is never reached.
    assert listed(result) == ["v1", "v3", "v5"]
    assert removed(result) == {"v2": "creator_cap", "v4": "category_cap"}
    assert list(result["rank"].dropna()) == [1, 2, 3]


def test_null_creator_category_uncapped():
    rows = group(
        [
            ("v1", 0.9, None, None, False, False, None),
            ("v2", 0.8, None, None, False, False, None),
            ("v3", 0.7, None, None, False, False, None),
        ]
    )
    result = select_list(rows, ListParams(k=3, max_per_creator=1, max_per_category=1))
    assert listed(result) == ["v1", "v2", "v3"]
    assert removed(result) == {}


def test_min_long_tail_fills_last_slot():
    rows = group(
        [
            ("v1", 0.9, "c1", "a", False, False, None),
            ("v2", 0.8, "c2", "a", False, False, None),
            ("v3", 0.7, "c3", "a", False, False, None),
            ("v4", 0.1, "c4", "a", True, False, None),
        ]
    )
    result = select_list(rows, ListParams(k=3, min_long_tail=1))
    # Slots 1 and 2 are free (one tail video needed, two or three slots left); slot 3
    # must take the tail video.
    assert listed(result) == ["v1", "v2", "v4"]


def test_min_shares_prefer_rows_meeting_both():
    rows = group(
        [
            ("v1", 0.9, "c1", "a", False, False, None),
            ("v2", 0.8, "c2", "a", False, False, None),
            ("v3", 0.3, "c3", "a", True, False, None),
            ("v4", 0.2, "c4", "a", False, True, None),
            ("v5", 0.1, "c5", "a", True, True, None),
        ]
    )
    result = select_list(rows, ListParams(k=3, min_long_tail=1, min_fresh=1))
    # Slot 1: two rows needed, three slots left, free: v1. Slot 2: two needed, two left:
    # only v5 meets both. Slot 3: nothing needed any more: v2.
    assert listed(result) == ["v1", "v5", "v2"]


def test_mmr_with_embeddings():
    rows = group(
        [
            ("a", 1.0, "c1", "x", False, False, [1.0, 0.0]),
            ("b", 0.9, "c2", "x", False, False, [2.0, 0.0]),
            ("c", 0.6, "c3", "y", False, False, [0.0, 1.0]),
        ]
    )
    # lambda 0.5: after a, b scores 0.5 * 0.9 - 0.5 * cos(a, b) = 0.45 - 0.5 = -0.05 and
    # c scores 0.5 * 0.6 - 0.5 * 0 = 0.3, so c comes second.
    assert listed(select_list(rows, ListParams(k=3, mmr_lambda=0.5))) == ["a", "c", "b"]
    assert listed(select_list(rows, ListParams(k=3))) == ["a", "b", "c"]
    assert listed(select_list(rows, ListParams(k=3, mmr_lambda=1.0))) == ["a", "b", "c"]


def test_mmr_category_without_embeddings():
    rows = group(
        [
            ("a", 1.0, "c1", "music", False, False, None),
            ("b", 0.9, "c2", "music", False, False, None),
            ("c", 0.6, "c3", "news", False, False, None),
        ]
    )
    # Same arithmetic as with embeddings, with similarity 1 for the same category.
    assert listed(select_list(rows, ListParams(k=3, mmr_lambda=0.5))) == ["a", "c", "b"]
    params = ListParams(k=3, mmr_lambda=0.5, similarity="category")
    assert listed(select_list(rows, params)) == ["a", "c", "b"]


def test_ranked_tier_before_backfill_and_ties():
    rows = group(
        [
            ("p1", 0.99, "c1", "a", False, False, None, 1),
            ("r2", 0.5, "c2", "a", False, False, None, 0),
            ("r1", 0.5, "c3", "a", False, False, None, 0),
        ]
    )
    # Tier 0 first whatever the score; equal scores break by video id.
    assert listed(select_list(rows, ListParams(k=3))) == ["r1", "r2", "p1"]


def test_list_params_from_config():
    config = load_config(overrides=["lake.root=/tmp/unused"])
    params = list_params(20, config.rules)
    assert params.min_long_tail == 4  # ceil(0.2 * 20)
    assert params.max_per_creator == 2
    assert params.mmr_lambda == 0.8
    assert list_params(3, config.rules).min_long_tail == 1  # ceil(0.6)
    disabled = load_config(
        overrides=[
            "lake.root=/tmp/unused",
            "rules.fairness.enabled=false",
            "rules.diversity.method=none",
        ]
    )
    params = list_params(20, disabled.rules)
    assert params.max_per_creator is None
    assert params.min_long_tail == 0
    assert params.mmr_lambda is None


def test_select_lists_per_user(spark):
    schema = (
        "user_id string, video_id string, tier int, rule_score double, source string, "
        "creator_id string, category string, long_tail boolean, fresh boolean, "
        "embedding array<float>"
    )
    rows = spark.createDataFrame(
        [
            ("u1", "v1", 0, 0.9, "s", "c1", "a", False, False, None),
            ("u1", "v2", 0, 0.8, "s", "c1", "a", False, False, None),
            ("u1", "v3", 0, 0.7, "s", "c2", "a", False, False, None),
            ("u2", "v2", 0, 0.1, "s", "c1", "a", False, False, None),
        ],
        schema,
    )
    result = select_lists(rows, ListParams(k=2, max_per_creator=1)).collect()
    by_key = {(row.user_id, row.video_id): (row["rank"], row.reason) for row in result}
    assert by_key == {
        ("u1", "v1"): (1, None),
        ("u1", "v2"): (None, "creator_cap"),
        ("u1", "v3"): (2, None),
        ("u2", "v2"): (1, None),
    }


def test_long_tail_split(spark):
    videos = spark.createDataFrame(
        [("a", 100), ("b", 90), ("c", 10), ("d", 0), ("e", None)], "video_id string, views long"
    )
    flags = {
        row.video_id: row.long_tail for row in long_tail_videos(videos, 0.8, "views").collect()
    }
    # Total 200, head share 160: a (0 before it) and b (100 before it) are the head;
    # c has 190 before it.
    assert flags == {"a": False, "b": False, "c": True, "d": True, "e": True}


def test_long_tail_ties_stay_together(spark):
    videos = spark.createDataFrame(
        [("a", 50), ("b", 50), ("c", 50), ("d", 50)], "video_id string, views long"
    )
    flags = {row.long_tail for row in long_tail_videos(videos, 0.3, "views").collect()}
    assert flags == {False}


def test_gini_from_histogram():
    # Values 0, 0, 1, 3: sum over pairs of |x_i - x_j| = 20, G = 20 / (2 * 4**2 * 1).
    assert gini_from_histogram([(0, 2), (1, 1), (3, 1)]) == pytest.approx(0.625)
    assert gini_from_histogram([(5, 4)]) == 0.0
    assert gini_from_histogram([]) == 0.0
    # One of n creators takes everything: (n - 1) / n.
    assert gini_from_histogram([(0, 9), (10, 1)]) == pytest.approx(0.9)


def test_exposure_gini_and_long_tail(spark):
    catalog = spark.createDataFrame(
        [
            ("v1", "c1", False),
            ("v2", "c1", False),
            ("v3", "c2", True),
            ("v4", "c3", True),
            ("v5", "c4", False),
            ("v6", None, True),
        ],
        "video_id string, creator_id string, long_tail boolean",
    )
    lists = spark.createDataFrame(
        [("u1", "v1"), ("u1", "v3"), ("u2", "v1"), ("u2", "v2"), ("u3", "v6")],
        "user_id string, video_id string",
    )
    metrics = exposure_metrics(lists, catalog)
    # Slots per creator: c1 3, c2 1, c3 0, c4 0 (v6 has no creator): Gini 0.625.
    assert metrics["creator_gini"] == pytest.approx(0.625)
    # Long-tail slots: v3 and v6 of five.
    assert metrics["long_tail_share"] == pytest.approx(0.4)
    assert creator_exposure_gini(lists, catalog.drop("long_tail")) == pytest.approx(0.625)
    empty = spark.createDataFrame([], "user_id string, video_id string")
    assert exposure_metrics(empty, catalog) == {"creator_gini": 0.0, "long_tail_share": None}


def test_new_creator_flags(spark):
    utc = dt.UTC
    videos = spark.createDataFrame(
        [
            ("v1", "c1", dt.datetime(2026, 6, 20, tzinfo=utc)),
            ("v2", "c1", dt.datetime(2026, 6, 25, tzinfo=utc)),
            ("v3", "c2", dt.datetime(2026, 1, 1, tzinfo=utc)),
            ("v4", "c2", dt.datetime(2026, 6, 29, tzinfo=utc)),
            ("v5", None, dt.datetime(2026, 6, 29, tzinfo=utc)),
        ],
        "video_id string, creator_id string, upload_ts timestamp",
    )
    flags = {
        row.video_id: row.new_creator
        for row in new_creator_videos(videos, "2026-06-30T00:00:00", 30.0).collect()
    }
    # c1 first uploaded 10 days before: new. c2 first uploaded in January: not new, even
    # for its recent v4. No creator: not new.
    assert flags == {"v1": True, "v2": True, "v3": False, "v4": False, "v5": False}
