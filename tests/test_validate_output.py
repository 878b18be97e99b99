"""validate_output on hand-written partitions of the tiny lake: a clean one, one with a
planted violation of each kind, a wrong schema and mixed runs."""

from __future__ import annotations

import posixpath

import pytest
import recommend_fixtures as fixtures

from jobs import validate_output
from recsys_spark import config as config_module
from recsys_spark import io, output
from recsys_spark.columns import RECOMMENDATIONS_SCHEMA
from recsys_spark.config import load_config
from recsys_spark.postprocess.apply import AUDIT_SCHEMA
from recsys_spark.runs import Run

CLEAN_DATE = "2026-06-30"
BAD_DATE = "2026-07-01"

# k = 2. Every list obeys the rules of the fixture; u6 has one row and a short-list reason.
CLEAN = [
    ("u1", 1, "v01"),
    ("u1", 2, "v06"),
    ("u2", 1, "v01"),
    ("u2", 2, "v07"),
    ("u3", 1, "v06"),
    ("u3", 2, "v07"),
    ("u4", 1, "v06"),
    ("u4", 2, "v10"),
    ("u6", 1, "v12"),
]
# One violation of each kind (u6, who has candidates, is missing). The run that wrote it
# capped creators and categories at one video per list.
BAD = [
    ("u1", 1, "v03"),  # blocked in u1's region US
    ("u1", 2, "v04"),  # flagged as misinformation, and its score is null below; 2 x news
    ("u2", 1, "v06"),  # liked by u2 before the snapshot, and listed twice
    ("u2", 2, "v06"),
    ("u3", 1, "v01"),  # v01 and v02 are one near-duplicate cluster, both of creator c1
    ("u3", 2, "v02"),
    ("u4", 2, "v99"),  # unknown video, ranks start at 2, one row instead of two
    ("u5", 1, "v13"),  # uploaded after the snapshot time
    ("u5", 2, "v10"),
]


def write_partition(spark, lake, date, run_id, rows, short_users=(), null_score=None):
    records = [
        (
            user,
            rank,
            video,
            None if (user, video) == null_score else 1.0 / rank,
            "two_tower",
            run_id,
            "m1",
            fixtures.AS_OF_DATETIME,
        )
        for user, rank, video in rows
    ]
    schema = RECOMMENDATIONS_SCHEMA
    if null_score:
        schema = schema.fromJson(schema.jsonValue())
        schema["score"].nullable = True
    output.write_partition(
        spark.createDataFrame(records, schema), lake, output.RECOMMENDATIONS, date
    )
    audit = spark.createDataFrame(
        [(user, None, "short_list", "no_eligible_videos", None, None, 1) for user in short_users],
        AUDIT_SCHEMA,
    ).selectExpr("*", f"'{run_id}' as run_id")
    output.write_partition(audit, lake, output.AUDIT, date)
    clusters = spark.createDataFrame(
        [("v01", "v01", run_id), ("v02", "v01", run_id)],
        "video_id string, cluster_id string, run_id string",
    )
    output.write_partition(clusters, lake, output.CLUSTERS, date)


def write_summary(spark, lake, config, run_id):
    summary = {
        "run_id": run_id,
        "config": config_module.to_dict(config),
        "stages": {"recommend": {"as_of": fixtures.AS_OF}},
    }
    io.write_json(spark, posixpath.join(lake.run(run_id), "summary.json"), summary)


@pytest.fixture(scope="module")
def lake_root(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("validate") / "lake")
    fixtures.write_tiny_lake(spark, root)
    lake = io.Lake(root)
    config = load_config(overrides=[f"lake.root={root}", "recommend.k=2"])
    write_partition(spark, lake, CLEAN_DATE, "r-clean", CLEAN, short_users=["u6"])
    write_summary(spark, lake, config, "r-clean")
    write_partition(spark, lake, BAD_DATE, "r-bad", BAD, null_score=("u1", "v04"))
    capped = load_config(
        overrides=[
            f"lake.root={root}",
            "recommend.k=2",
            "rules.fairness.max_per_creator=1",
            "rules.fairness.max_per_category=1",
        ]
    )
    write_summary(spark, lake, capped, "r-bad")
    return root


def test_clean_partition_passes(spark, lake_root):
    config = load_config(overrides=[f"lake.root={lake_root}", f"run_date={CLEAN_DATE}"])
    result = validate_output.run(Run(spark=spark, config=config))
    assert result["run_id"] == "r-clean"
    assert result["settings_from"].endswith("summary.json")
    assert result["checks"] == {
        "null_values": 0,
        "rank_sequence": 0,
        "list_size": 0,
        "missing_user": 0,
        "duplicate_video": 0,
        "unknown_video": 0,
        "unreleased_video": 0,
        "creator_cap": 0,
        "category_cap": 0,
        "region_blocked": 0,
        "misinformation": 0,
        "already_watched": 0,
        "near_duplicate_cluster": 0,
    }


def test_planted_violations_reported(spark, lake_root, capsys):
    # k comes from the producing run's summary (2), not from this config (20).
    code = validate_output.main(
        [
            "--set",
            f"lake.root={lake_root}",
            "--set",
            f"run_date={BAD_DATE}",
            "--set",
            "spark.shuffle_partitions=2",
        ]
    )
    assert code == 1
    message = capsys.readouterr().err
    expected = {
        "null_values": "user_id=u1, video_id=v04",
        "rank_sequence": "user_id=u4, detail=ranks span 2..2 over 1 rows",
        "list_size": "user_id=u4, detail=1 rows, expected 2, no short-list reason",
        "missing_user": "user_id=u6",
        "duplicate_video": "user_id=u2, video_id=v06, detail=listed 2 times",
        "unknown_video": "user_id=u4, video_id=v99",
        "unreleased_video": (
            "user_id=u5, video_id=v13, detail=uploaded 2026-07-02T00:00:00, after the "
            "snapshot time 2026-06-30T00:00:00"
        ),
        "creator_cap": "user_id=u3, video_id=v02, detail=one of 2 videos of creator_id c1 in "
        "the list, cap 1",
        "category_cap": "user_id=u1, video_id=v04, detail=one of 2 videos of category news in "
        "the list, cap 1",
        "region_blocked": "user_id=u1, video_id=v03, detail=region_blocked for region US",
        "misinformation": "user_id=u1, video_id=v04, detail=misinformation_flagged",
        "already_watched": "user_id=u2, video_id=v06",
        "near_duplicate_cluster": "user_id=u3, video_id=v02, detail=one of 2 videos of cluster v01",
    }
    for check, offender in expected.items():
        assert f"- {check}:" in message
        assert offender in message
    assert "- already_watched: 2 offending rows" in message


def test_wrong_schema_rejected(spark, tmp_path):
    lake = io.Lake(str(tmp_path / "lake"))
    rows = spark.createDataFrame(
        [("u1", "1", "v1")], "user_id string, rank string, video_id string"
    )
    output.write_partition(rows, lake, output.RECOMMENDATIONS, CLEAN_DATE)
    config = load_config(overrides=[f"lake.root={lake.root}"])
    with pytest.raises(ValueError, match="rank is string, expected int") as error:
        validate_output.run(Run(spark=spark, config=config))
    assert "missing column score (double)" in str(error.value)


def test_mixed_runs_rejected(spark, tmp_path):
    lake = io.Lake(str(tmp_path / "lake"))
    rows = spark.createDataFrame(
        [
            ("u1", 1, "v1", 1.0, "s", "r1", "m", fixtures.AS_OF_DATETIME),
            ("u2", 1, "v1", 1.0, "s", "r2", "m", fixtures.AS_OF_DATETIME),
        ],
        RECOMMENDATIONS_SCHEMA,
    )
    output.write_partition(rows, lake, output.RECOMMENDATIONS, CLEAN_DATE)
    config = load_config(overrides=[f"lake.root={lake.root}", f"run_date={CLEAN_DATE}"])
    with pytest.raises(ValueError, match="r1, r2"):
        validate_output.run(Run(spark=spark, config=config))


def test_no_partition_names_table(spark, tmp_path):
    config = load_config(overrides=[f"lake.root={tmp_path / 'lake'}"])
    with pytest.raises(FileNotFoundError, match="recommend job"):
        validate_output.run(Run(spark=spark, config=config))


def test_unsettled_newer_partition_named(spark, tmp_path):
    lake = io.Lake(str(tmp_path / "lake"))
    rows = spark.createDataFrame(
        [("u1", 1, "v1", 1.0, "s", "r1", "m", fixtures.AS_OF_DATETIME)], RECOMMENDATIONS_SCHEMA
    )
    output.write_partition(rows, lake, output.RECOMMENDATIONS, CLEAN_DATE)
    # A run killed between the renames of its commit of BAD_DATE: the partition is set
    # aside and only the journal records it. The older partition must not pass for the newest.
    table = output.table_path(lake, output.RECOMMENDATIONS)
    journal = posixpath.join(table, f"_commit-run_date={BAD_DATE}-0123abcd.json")
    io.write_json(spark, journal, {"commit": "0123abcd", "entries": []})
    config = load_config(overrides=[f"lake.root={lake.root}"])
    with pytest.raises(FileNotFoundError, match=rf"run_date {BAD_DATE} .*killed run") as error:
        validate_output.run(Run(spark=spark, config=config))
    assert journal in str(error.value)
