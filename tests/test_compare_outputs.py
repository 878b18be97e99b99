"""scripts/compare_outputs.py: the row matching behind the cluster-versus-local check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_outputs.py"
_spec = importlib.util.spec_from_file_location("compare_outputs", SCRIPT)
compare_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_outputs)

LISTS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("rank", T.IntegerType()),
        T.StructField("video_id", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("run_id", T.StringType()),
    ]
)
DIFFERENCES_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("rank", T.IntegerType()),
        T.StructField("difference", T.StringType()),
        T.StructField("left_video_id", T.StringType()),
        T.StructField("right_video_id", T.StringType()),
        T.StructField("left_source", T.StringType()),
        T.StructField("right_source", T.StringType()),
        T.StructField("left_score", T.DoubleType()),
        T.StructField("right_score", T.DoubleType()),
    ]
)


def test_recommendation_differences_by_key(spark):
    left = spark.createDataFrame(
        [
            ("u1", 1, "v1", "two_tower", 0.5, "run-a"),
            ("u1", 2, "v2", "two_tower", 0.4, "run-a"),
            ("u2", 1, "v3", "popular_region", 0.3, "run-a"),
            ("u3", 1, "v9", "fresh", 0.1, "run-a"),
        ],
        LISTS_SCHEMA,
    )
    right = spark.createDataFrame(
        [
            # 5e-7 apart: within the 1e-6 tolerance, and the run ids differ: no difference.
            ("u1", 1, "v1", "two_tower", 0.5000005, "run-b"),
            # Another source and a score 0.01 apart.
            ("u1", 2, "v2", "fresh", 0.41, "run-b"),
            ("u2", 1, "v4", "popular_region", 0.3, "run-b"),
            ("u4", 1, "v1", "fresh", 0.2, "run-b"),
        ],
        LISTS_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            ("u1", 2, "source,score", "v2", "v2", "two_tower", "fresh", 0.4, 0.41),
            ("u2", 1, "video_id", "v3", "v4", "popular_region", "popular_region", 0.3, 0.3),
            ("u3", 1, "missing_right", "v9", None, "fresh", None, 0.1, None),
            ("u4", 1, "missing_left", None, "v1", None, "fresh", None, 0.2),
        ],
        DIFFERENCES_SCHEMA,
    )
    actual = compare_outputs.recommendation_differences(left, right, tolerance=1e-6)
    assertDataFrameEqual(actual, expected)


def test_recommendation_differences_none_when_equal(spark):
    rows = [("u1", 1, "v1", "two_tower", 0.5, "run-a"), ("u1", 2, "v2", "fresh", 0.25, "run-a")]
    left = spark.createDataFrame(rows, LISTS_SCHEMA)
    right = spark.createDataFrame(rows, LISTS_SCHEMA).drop("run_id")
    assert compare_outputs.recommendation_differences(left, right).count() == 0


def test_row_differences_multiset(spark):
    schema = T.StructType(
        [
            T.StructField("video_id", T.StringType()),
            T.StructField("weight", T.DoubleType()),
            T.StructField("affinity", T.MapType(T.StringType(), T.DoubleType())),
            T.StructField("run_id", T.StringType()),
        ]
    )
    left = spark.createDataFrame(
        [
            # Rounds to 1.0 at 6 decimals, so it matches the right side's first row.
            ("a", 1.0000001, {"x": 1.0, "y": 2.0}, "run-a"),
            ("a", 1.0, {"x": 1.0, "y": 2.0}, "run-a"),
            ("b", 2.0, {}, "run-a"),
        ],
        schema,
    )
    right = spark.createDataFrame(
        [
            # The same map with its entries in another order.
            ("a", 1.0, {"y": 2.0, "x": 1.0}, "run-b"),
            ("a", 1.0, {"x": 1.0, "y": 2.0}, "run-b"),
            ("c", 2.0, {}, "run-b"),
        ],
        schema,
    )
    differences = compare_outputs.row_differences(left, right, decimals=6).collect()
    # "a" appears twice on both sides; only b (left) and c (right) are extra.
    assert sorted((row["side"], row["video_id"]) for row in differences) == [
        ("left", "b"),
        ("right", "c"),
    ]
