"""Misinformation rule: flagged videos dropped, unreviewed ones by policy."""

import pytest

from recsys_spark.postprocess.misinformation import misinformation_demoted, misinformation_reason


def test_policies_per_flag(spark):
    df = spark.createDataFrame(
        [("flagged", True), ("clean", False), ("unreviewed", None)],
        "video_id string, misinformation boolean",
    )
    columns = []
    for policy in ("allow", "demote", "drop"):
        columns.append(misinformation_reason(policy).alias(f"reason_{policy}"))
        columns.append(misinformation_demoted(policy).alias(f"demoted_{policy}"))
    rows = {row.video_id: row for row in df.select("video_id", *columns).collect()}

    # A flagged video is removed under every policy and never only demoted.
    for policy in ("allow", "demote", "drop"):
        assert rows["flagged"][f"reason_{policy}"] == "misinformation_flagged"
        assert rows["clean"][f"reason_{policy}"] is None
        assert not rows["clean"][f"demoted_{policy}"]
    assert not rows["flagged"]["demoted_demote"]

    assert rows["unreviewed"]["reason_allow"] is None
    assert not rows["unreviewed"]["demoted_allow"]
    assert rows["unreviewed"]["reason_demote"] is None
    assert rows["unreviewed"]["demoted_demote"]
    assert rows["unreviewed"]["reason_drop"] == "misinformation_unreviewed"
    assert not rows["unreviewed"]["demoted_drop"]


def test_unknown_policy_rejected():
    with pytest.raises(ValueError, match="rules.misinformation.unreviewed"):
        misinformation_reason("hide")
