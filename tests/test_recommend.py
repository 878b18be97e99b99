"""The recommend job on the tiny lake of recommend_fixtures, run twice, plus a killed write.

Expected lists (k=3, list_depth=5, backfill_pool=5), worked out from the fixture:

- u1 (US): v02 is v01's near-duplicate, v03 blocked in US, v04 flagged, v12 watched,
  v13 uploaded after the snapshot time; v05 (unreviewed) is demoted below v06. List v01,
  v06, v05.
- u2 (DE): v08 blocked in DE, v06 liked; two candidates left, so the DE pool
  (v06, v10, v11, v12, v01) fills the last slot with v12: u2 watched v10 and v11, and
  v01 is already listed.
- u3 (no region): v03 and v08 are blocked somewhere. List v06, v07, v10.
- u4 has no candidate: fallback list from the US pool (v06, v10, v12, v11, v01) without
  v11, which u4 watched 40 days before: v06, v10, v12 with scores 1.0, 0.8, 0.6.
- u5 signed up after the snapshot time: no list.
- u6 watched both candidates: backfill from the US pool without them: v12, v11, v01.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import recommend_fixtures as fixtures
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import recommend, validate_output
from recsys_spark import io, output
from recsys_spark.columns import RECOMMENDATIONS_SCHEMA
from recsys_spark.config import load_config
from recsys_spark.runs import Run

RUN_DATE = "2026-06-30"
SETTINGS = [
    "recommend.k=3",
    "recommend.list_depth=5",
    "recommend.backfill_pool=5",
    "rules.duplicates.min_cosine=0.98",
    f"run_date={RUN_DATE}",
]
EXPECTED_LISTS = {
    "u1": [("v01", "two_tower"), ("v06", "two_tower"), ("v05", "two_tower")],
    "u2": [("v01", "two_tower"), ("v07", "two_tower"), ("v12", "backfill_popular")],
    "u3": [("v06", "two_tower"), ("v07", "two_tower"), ("v10", "two_tower")],
    "u4": [("v06", "fallback_popular"), ("v10", "fallback_popular"), ("v12", "fallback_popular")],
    "u6": [("v12", "backfill_popular"), ("v11", "backfill_popular"), ("v01", "backfill_popular")],
}
EXPECTED_AUDIT = [
    ("u1", "v02", "removed", "near_duplicate"),
    ("u1", "v03", "removed", "region_blocked"),
    ("u1", "v04", "removed", "misinformation_flagged"),
    ("u1", "v05", "demoted", "misinformation_unreviewed"),
    ("u1", "v12", "removed", "already_watched"),
    ("u1", "v13", "removed", "not_in_catalog"),
    ("u2", "v06", "removed", "already_watched"),
    ("u2", "v08", "removed", "region_blocked"),
    ("u3", "v03", "removed", "region_unknown"),
    ("u3", "v08", "removed", "region_unknown"),
    ("u6", "v06", "removed", "already_watched"),
    ("u6", "v10", "removed", "already_watched"),
]


def stable_columns(df):
    """Drop the columns that differ between runs by design."""
    return df.drop("run_id", "generated_at")


@pytest.fixture(scope="module")
def job_runs(spark, tmp_path_factory):
    """Run the job twice on one tiny lake; keep each run's summary and collected output."""
    root = str(tmp_path_factory.mktemp("recommend") / "lake")
    fixtures.write_tiny_lake(spark, root)
    config = load_config(overrides=[f"lake.root={root}", *SETTINGS])
    lake = io.Lake(root)
    runs = []
    for _ in range(2):
        run = Run(spark=spark, config=config)
        summary = recommend.run(run)
        run.record("recommend", summary)
        recommendations = output.read_partition(spark, lake, output.RECOMMENDATIONS, RUN_DATE)
        audit = output.read_partition(spark, lake, output.AUDIT, RUN_DATE)
        runs.append(
            {
                "run": run,
                "summary": summary,
                "recommendations": spark.createDataFrame(
                    recommendations.collect(), recommendations.schema
                ),
                "audit": spark.createDataFrame(audit.collect(), audit.schema),
            }
        )
    return {"root": root, "config": config, "runs": runs}


def test_lists_match_hand_worked(job_runs):
    rows = job_runs["runs"][0]["recommendations"].orderBy("user_id", "rank").collect()
    lists = {}
    for row in rows:
        lists.setdefault(row.user_id, []).append((row.video_id, row.source))
    assert lists == EXPECTED_LISTS
    ranks = {}
    for row in rows:
        ranks.setdefault(row.user_id, []).append(row["rank"])
    assert all(value == [1, 2, 3] for value in ranks.values())


def test_fallback_scores_and_versions(job_runs):
    rows = job_runs["runs"][0]["recommendations"].where("user_id = 'u4'").orderBy("rank")
    # Pool score 1 - (pool_rank - 1) / backfill_pool for pool ranks 1, 2, 3.
    assert [round(row.score, 6) for row in rows.collect()] == [1.0, 0.8, 0.6]
    versions = {row.model_version for row in job_runs["runs"][0]["recommendations"].collect()}
    # No ranker is trained: the candidates' two-tower version is recorded.
    assert versions == {fixtures.TWO_TOWER_VERSION}


def test_output_schema_and_partition(job_runs, spark):
    recommendations = job_runs["runs"][0]["recommendations"]
    assert output.schema_problems(recommendations.schema) == []
    names = io.list_dir(spark, output.table_path(io.Lake(job_runs["root"]), "recommendations"))
    assert [name for name in names if name.startswith("run_date=")] == [f"run_date={RUN_DATE}"]
    assert [name for name in names if name.startswith("_previous")] == []
    assert [field.name for field in RECOMMENDATIONS_SCHEMA] == recommendations.columns


def test_audit_reasons(job_runs):
    rows = job_runs["runs"][0]["audit"].orderBy("user_id", "video_id").collect()
    assert [(row.user_id, row.video_id, row.action, row.reason) for row in rows] == EXPECTED_AUDIT
    run_ids = {row.run_id for row in rows}
    assert run_ids == {job_runs["runs"][0]["run"].run_id}


def test_summary_counts(job_runs):
    summary = job_runs["runs"][0]["summary"]
    assert summary["users"] == 5
    assert summary["rows"] == 15
    assert summary["users_with_k"] == 5
    assert summary["short_lists"]["users"] == 0
    assert summary["fallback_users"] == 1
    assert summary["backfilled_users"] == 2
    assert summary["scorer"] == "retrieval_score"
    assert "train_ranker" in summary["fallback_reason"]
    assert summary["as_of"].startswith(fixtures.AS_OF)

    rules = summary["rules"]
    assert rules["region_blocked"]["rows"] == 2
    assert rules["region_unknown"]["rows"] == 2
    assert rules["misinformation_flagged"]["rows"] == 1
    assert rules["misinformation_unreviewed"]["action"] == "demoted"
    assert rules["misinformation_unreviewed"]["rows"] == 1
    assert rules["near_duplicate"]["rows"] == 1
    # already_watched per user with candidates (u1, u2, u3, u6): 1, 1, 0, 2.
    assert rules["already_watched"]["rows"] == 4
    assert rules["already_watched"]["users"] == 3
    assert rules["already_watched"]["per_user"]["min"] == 0
    assert rules["already_watched"]["per_user"]["max"] == 2
    assert rules["not_in_catalog"]["rows"] == 1
    assert rules["creator_cap"]["rows"] == 0

    duplicates = summary["near_duplicates"]
    # v01 ~ v02 by shingles and by embedding; v09 has neither title tokens nor tags.
    assert duplicates["text_edges"] == 1
    assert duplicates["embedding_edges"] == 1
    assert duplicates["clusters"] == 1
    assert duplicates["videos_without_shingles"] == 1

    for side in ("before_rules", "after_rules"):
        assert 0.0 <= summary["exposure"][side]["creator_gini"] <= 1.0
        assert 0.0 <= summary["exposure"][side]["long_tail_share"] <= 1.0


def test_two_runs_identical(job_runs):
    first, second = job_runs["runs"]
    assert first["run"].run_id != second["run"].run_id
    assertDataFrameEqual(
        stable_columns(first["recommendations"]), stable_columns(second["recommendations"])
    )
    assertDataFrameEqual(stable_columns(first["audit"]), stable_columns(second["audit"]))


def test_validate_output_passes(job_runs, spark):
    run = Run(spark=spark, config=job_runs["config"])
    result = validate_output.run(run)
    assert set(result["checks"].values()) == {0}
    assert result["run_id"] == job_runs["runs"][1]["run"].run_id
    assert result["settings_from"].endswith("summary.json")
    assert "near_duplicate_cluster" in result["checks"]


def test_ranker_scorer_requires_ranker(spark, tmp_path):
    config = load_config(overrides=[f"lake.root={tmp_path / 'lake'}", "recommend.scorer=ranker"])
    with pytest.raises(FileNotFoundError, match="train_ranker"):
        recommend.read_scored_candidates(spark, io.Lake(config.lake.root), config.recommend)


CHILD = """
import sys, time
from recsys_spark import io, output
from recsys_spark.columns import RECOMMENDATIONS_SCHEMA
from recsys_spark.config import load_config
from recsys_spark.session import get_spark

root, run_date = sys.argv[1], sys.argv[2]
config = load_config(overrides=[
    f"lake.root={root}", "spark.master=local[1]", "spark.driver_memory=512m",
    "spark.shuffle_partitions=1", "spark.log_level=ERROR",
    "spark.conf={spark.ui.enabled: 'false'}",
])
spark = get_spark(config)

def slow(batches):
    for batch in batches:
        time.sleep(600)
        yield batch

rows = spark.createDataFrame(
    [("new", 1, "vx", 1.0, "two_tower", "child", "m", None)],
    "user_id string, rank int, video_id string, score double, source string, "
    "run_id string, model_version string, generated_at timestamp",
).mapInPandas(slow, RECOMMENDATIONS_SCHEMA)
output.write_partition(rows, io.Lake(root), output.RECOMMENDATIONS, run_date)
"""


def test_killed_write_keeps_previous(spark, tmp_path):
    root = str(tmp_path / "lake")
    lake = io.Lake(root)
    previous = spark.createDataFrame(
        [("u1", 1, "v1", 0.5, "two_tower", "r1", "m1", fixtures.AS_OF_DATETIME)],
        RECOMMENDATIONS_SCHEMA,
    )
    output.write_partition(previous, lake, output.RECOMMENDATIONS, RUN_DATE)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, root, RUN_DATE],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(name.startswith(io.STAGING_PREFIX) for name in os.listdir(root)):
            assert child.poll() is None, "the child process exited before writing"
            assert time.monotonic() < deadline, "no staging folder appeared within 240 s"
            time.sleep(0.2)
    finally:
        # The child and its Spark JVM share the session started above.
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    staged = [name for name in os.listdir(root) if name.startswith(io.STAGING_PREFIX)]
    assert staged, "the kill should leave the staging folder behind"
    table = os.listdir(os.path.join(root, "recommendations"))
    assert f"run_date={RUN_DATE}" in table
    assert not [name for name in table if name.startswith(io.PREVIOUS_PREFIX)]
    after = output.read_partition(spark, lake, output.RECOMMENDATIONS, RUN_DATE)
    assertDataFrameEqual(after, previous)
    assert after.where(F.col("run_id") == "child").count() == 0
