"""Freshness rule: exponential boost by age and the fresh flag."""

import pytest

from recsys_spark.postprocess.freshness import freshness_boost, is_fresh


def test_boost_halves_every_half_life(spark):
    df = spark.createDataFrame(
        [("new", 0.0), ("week", 7.0), ("two_weeks", 14.0), ("unknown", None), ("future", -3.0)],
        "video_id string, age_days double",
    )
    rows = {
        row.video_id: row
        for row in df.select(
            "video_id",
            freshness_boost(0.1, 7.0).alias("boost"),
            is_fresh(7.0).alias("fresh"),
        ).collect()
    }
    # boost = 0.1 * 0.5 ** (age / 7): 0.1 at upload, 0.05 after 7 days, 0.025 after 14.
    assert rows["new"].boost == pytest.approx(0.1)
    assert rows["week"].boost == pytest.approx(0.05)
    assert rows["two_weeks"].boost == pytest.approx(0.025)
    # Unknown age: no boost; a negative age is clipped to 0, so never above the full boost.
    assert rows["unknown"].boost == 0.0
    assert rows["future"].boost == pytest.approx(0.1)

    assert rows["new"].fresh
    assert rows["week"].fresh
    assert not rows["two_weeks"].fresh
    assert not rows["unknown"].fresh


def test_half_life_must_be_positive():
    with pytest.raises(ValueError, match="half_life_days"):
        freshness_boost(0.1, 0.0)
