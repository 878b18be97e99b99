"""Already-watched rule: pairs watched before the snapshot time, and the rewatch policy."""

import datetime as dt

import pytest
from pyspark.sql import functions as F

from recsys_spark.columns import INTERACTIONS_SCHEMA
from recsys_spark.postprocess.watched import mark_watched, watched_pairs, watched_reason

AS_OF = "2026-06-30T00:00:00"
UTC = dt.UTC


def test_watched_pairs_before_snapshot(spark):
    events = spark.createDataFrame(
        [
            ("u1", "v1", dt.datetime(2026, 6, 29, tzinfo=UTC), "watch", 30.0, None),
            ("u1", "v1", dt.datetime(2026, 6, 28, tzinfo=UTC), "like", None, None),
            ("u1", "v2", dt.datetime(2026, 6, 29, tzinfo=UTC), "impression", None, None),
            ("u1", "v3", dt.datetime(2026, 6, 30, tzinfo=UTC), "watch", 10.0, None),
            ("u2", "v4", dt.datetime(2026, 1, 1, tzinfo=UTC), "rating", None, 4.0),
        ],
        INTERACTIONS_SCHEMA,
    )
    pairs = watched_pairs(events, AS_OF, ["watch", "like", "rating"])
    # v1 once (two events), no impression, v3 is exactly at the snapshot time (not before).
    assert sorted(tuple(row) for row in pairs.collect()) == [("u1", "v1"), ("u2", "v4")]


def test_watched_pairs_rejects_unknown_type(spark):
    events = spark.createDataFrame([], INTERACTIONS_SCHEMA)
    with pytest.raises(ValueError, match="rules.watched_event_types"):
        watched_pairs(events, AS_OF, ["view"])


def test_mark_watched_and_policies(spark):
    candidates = spark.createDataFrame(
        [("u1", "v1"), ("u1", "v2"), ("u2", "v1")], "user_id string, video_id string"
    )
    watched = spark.createDataFrame([("u1", "v1")], "user_id string, video_id string")
    marked = mark_watched(candidates, watched)
    rows = {
        (row.user_id, row.video_id): row
        for row in marked.select(
            "user_id",
            "video_id",
            "_watched",
            watched_reason("remove").alias("remove"),
            watched_reason("allow").alias("allow"),
        ).collect()
    }
    assert rows[("u1", "v1")]._watched
    assert rows[("u1", "v1")].remove == "already_watched"
    assert rows[("u1", "v1")].allow is None
    # Watched by another user only: not watched.
    assert not rows[("u2", "v1")]._watched
    assert rows[("u2", "v1")].remove is None
    assert rows[("u1", "v2")].remove is None
    assert marked.where(F.col("_watched").isNull()).count() == 0


def test_unknown_rewatch_policy_rejected():
    with pytest.raises(ValueError, match="rules.rewatch"):
        watched_reason("sometimes")
