"""Validate output: check a recommendations partition against the raw tables and its run.

Checks the partition of ``run_date``, or the newest one when run_date is null:

- the schema, no null value, ranks 1..n per user;
- exactly k rows per user, unless the run recorded a short-list reason for the user;
- every user with candidates has a list (or a short-list reason);
- no video twice in a list, and no unknown video;
- no video blocked in the user's region, flagged as misinformation, already watched or
  uploaded after the snapshot time;
- at most ``rules.fairness.max_per_creator`` videos of one creator and
  ``max_per_category`` of one category in a list;
- at most one video per near-duplicate cluster of the run.

The rules checked are those the run applied, read from its run summary
(``runs/<run_id>/summary.json``); without a summary the current config is used. Exits
with status 1 and lists the first offenders of each failed check.
"""

from __future__ import annotations

import logging
import posixpath
import sys
from typing import Any, Optional, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark import config as config_module
from recsys_spark import io, output
from recsys_spark.cli import job_main
from recsys_spark.columns import AS_OF, INTERACTIONS, RUN_ID, USER_ID, USERS, VIDEOS
from recsys_spark.postprocess.watched import watched_pairs
from recsys_spark.runs import Run, run_date

logger = logging.getLogger(__name__)

RECOMMEND_STAGE = "recommend"


def partition_run_ids(recommendations: DataFrame) -> list[str]:
    """Return the distinct run ids of a partition (at most two are read)."""
    rows = recommendations.select(RUN_ID).distinct().limit(2).collect()
    return sorted(row[RUN_ID] for row in rows if row[RUN_ID] is not None)


def check_settings(
    spark: SparkSession, run: Run, producing_run: Optional[str]
) -> tuple[output.CheckSettings, str]:
    """Return the settings the producing run applied, and where they were read from."""
    lake = run.lake
    if producing_run:
        path = posixpath.join(lake.run(producing_run), "summary.json")
        if io.exists(spark, path):
            summary = io.read_json(spark, path)
            stage = summary.get("stages", {}).get(RECOMMEND_STAGE)
            if stage and stage.get("as_of"):
                settings = output.CheckSettings.from_config(summary["config"], stage["as_of"])
                return settings, path
        logger.warning(
            "No recommend stage with an as_of in %s; checking against the current config.",
            path,
        )
    snapshot = run.config.recommend.snapshot
    features = io.read_table(
        spark, lake.features("videos", snapshot), f"features/videos/{snapshot}"
    )
    as_of = features.agg(
        F.date_format(F.max(AS_OF), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").alias("as_of")
    ).first()["as_of"]
    config = config_module.to_dict(run.config)
    return output.CheckSettings.from_config(config, as_of), "the current config"


def optional_partition(
    spark: SparkSession, lake: io.Lake, table: str, date: str, run_id: Optional[str]
) -> Optional[DataFrame]:
    """Read this run's rows of an auxiliary output table, or None when it has no partition."""
    path = output.partition_path(lake, table, date)
    if not io.exists(spark, path):
        return None
    rows = spark.read.parquet(path)
    return rows if run_id is None else rows.where(F.col(RUN_ID) == run_id)


def run(run: Run) -> dict[str, Any]:
    spark, lake, config = run.spark, run.lake, run.config
    date = run_date(config) if config.run_date else output.latest_run_date(spark, lake)
    partition = output.partition_path(lake, output.RECOMMENDATIONS, date)
    recommendations = output.read_partition(spark, lake, output.RECOMMENDATIONS, date)

    problems = output.schema_problems(recommendations.schema)
    if problems:
        raise ValueError(
            f"Output partition {partition} has the wrong schema: {'; '.join(problems)}. "
            "Rerun the recommend job for this run_date."
        )
    run_ids = partition_run_ids(recommendations)
    if len(run_ids) > 1:
        raise ValueError(
            f"Output partition {partition} mixes rows of several runs ({', '.join(run_ids)}); "
            "rerun the recommend job for this run_date."
        )
    producing_run = run_ids[0] if run_ids else None
    settings, settings_source = check_settings(spark, run, producing_run)
    logger.info(
        "Validating %s (run %s, k=%d, as of %s, rules from %s)",
        partition,
        producing_run,
        settings.k,
        settings.as_of,
        settings_source,
    )

    users = io.read_table(spark, lake.raw(USERS), "raw users")
    videos = io.read_table(spark, lake.raw(VIDEOS), "raw videos")
    interactions = io.read_table(spark, lake.raw(INTERACTIONS), "raw interactions")
    candidates = io.read_table(
        spark,
        lake.path("candidates", settings.snapshot),
        f"candidates/{settings.snapshot}",
    )
    audit = optional_partition(spark, lake, output.AUDIT, date, producing_run)
    if audit is None:
        logger.warning("No audit partition for %s: every short list counts as a violation.", date)
        short_lists = spark.createDataFrame([], f"{USER_ID} string")
    else:
        short_lists = output.short_list_users(audit)
    clusters = optional_partition(spark, lake, output.CLUSTERS, date, producing_run)

    checks = output.output_checks(
        recommendations,
        settings,
        users=users,
        videos=videos,
        watched=watched_pairs(interactions, settings.as_of, settings.watched_event_types),
        short_lists=short_lists,
        expected_users=candidates.select(USER_ID),
        clusters=clusters,
    )
    report = output.run_checks(checks, config.recommend.max_listed_offenders)
    if any(result["violations"] for result in report.values()):
        raise ValueError(output.describe_violations(report, partition))
    logger.info("%s passed %d checks", partition, len(report))
    return {
        "partition": partition,
        "run_id": producing_run,
        "settings_from": settings_source,
        "checks": {name: result["violations"] for name, result in report.items()},
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("validate_output", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
