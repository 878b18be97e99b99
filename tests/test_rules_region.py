"""Region rule: blocked videos per user region, and users without a region."""

from pyspark.sql import functions as F

from recsys_spark.postprocess.region import available_everywhere, region_reason

SCHEMA = "user_id string, video_id string, region string, blocked_regions array<string>"


def test_region_reason_per_case(spark):
    rows = [
        ("u1", "v1", "US", ["US", "FR"]),
        ("u1", "v2", "US", ["DE"]),
        ("u1", "v3", "US", []),
        ("u1", "v4", "US", None),
        ("u2", "v1", None, ["US", "FR"]),
        ("u2", "v3", None, []),
        ("u2", "v4", None, None),
    ]
    df = spark.createDataFrame(rows, SCHEMA)
    result = {
        (row.user_id, row.video_id): row.reason
        for row in df.select("user_id", "video_id", region_reason().alias("reason")).collect()
    }
    # v1 is blocked in US: removed for the US user, and for the user without a region
    # because it is not available everywhere.
    assert result[("u1", "v1")] == "region_blocked"
    assert result[("u2", "v1")] == "region_unknown"
    # Blocked elsewhere only: allowed in US.
    assert result[("u1", "v2")] is None
    # Empty and null blocked lists mean available everywhere, for every user.
    assert result[("u1", "v3")] is None
    assert result[("u1", "v4")] is None
    assert result[("u2", "v3")] is None
    assert result[("u2", "v4")] is None


def test_available_everywhere_null_and_empty(spark):
    df = spark.createDataFrame(
        [("a", []), ("b", None), ("c", ["US"])], "video_id string, blocked_regions array<string>"
    )
    result = {
        row.video_id: row.everywhere
        for row in df.select(
            "video_id", available_everywhere(F.col("blocked_regions")).alias("everywhere")
        ).collect()
    }
    assert result == {"a": True, "b": True, "c": False}
