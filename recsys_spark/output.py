"""The recommend job's output tables: their shape, their atomic writes, and their checks.

Three tables, each partitioned by ``run_date`` and replaced one partition at a time:

- ``recommendations/``: :data:`recsys_spark.columns.RECOMMENDATIONS_SCHEMA`.
- ``recommendations_audit/``: one row per candidate a rule removed or demoted, and one
  ``short_list`` row per user whose list has fewer than k rows
  (:data:`recsys_spark.postprocess.apply.AUDIT_SCHEMA` + ``run_id``, ``generated_at``).
- ``near_duplicate_clusters/``: ``video_id``, ``cluster_id``, ``run_id`` for every video
  with a near-duplicate in that run.

The recommend job writes the audit and the clusters first and the recommendations last,
so a reader who sees a new recommendations partition also finds its audit. A run killed
during a write leaves the previous partition of that table complete (see
:func:`recsys_spark.io.write_table`); ``validate_output`` matches the tables by
``run_id``.

:func:`output_checks` builds one offender DataFrame per check, and :func:`run_checks`
counts them and lists the first offenders.
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import io
from recsys_spark.columns import (
    BLOCKED_REGIONS,
    CATEGORY,
    CREATOR_ID,
    GENERATED_AT,
    MISINFORMATION,
    MODEL_VERSION,
    RANK,
    RECOMMENDATIONS_SCHEMA,
    REGION,
    RUN_DATE,
    RUN_ID,
    SCORE,
    SOURCE,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.postprocess import timestamp_literal
from recsys_spark.postprocess.apply import ACTION, SHORT_LIST
from recsys_spark.postprocess.duplicates import CLUSTER_ID
from recsys_spark.postprocess.misinformation import misinformation_reason
from recsys_spark.postprocess.region import region_reason

logger = logging.getLogger(__name__)

RECOMMENDATIONS = "recommendations"
AUDIT = "recommendations_audit"
CLUSTERS = "near_duplicate_clusters"
DETAIL = "detail"

OFFENDER_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), True),
        T.StructField(VIDEO_ID, T.StringType(), True),
        T.StructField(DETAIL, T.StringType(), True),
    ]
)


def table_path(lake: io.Lake, table: str) -> str:
    """Return the folder of one of the output tables (``recommendations``, ...)."""
    return lake.path(table)


def partition_path(lake: io.Lake, table: str, run_date: str) -> str:
    """Return the folder of one run date's partition of an output table."""
    return posixpath.join(table_path(lake, table), f"{RUN_DATE}={run_date}")


def to_recommendations(
    lists: DataFrame, run_id: str, model_version: str, generated_at: str
) -> DataFrame:
    """Shape final lists as :data:`RECOMMENDATIONS_SCHEMA` (without the partition column).

    Args:
      lists: ``user_id``, ``rank``, ``video_id``, ``score``, ``source``.
      run_id: The run writing the output.
      model_version: The model version recorded on every row.
      generated_at: ISO-8601 instant in the session time zone, the same on every row.
    """
    for name, value in (("run_id", run_id), ("model_version", model_version)):
        if not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    columns = {
        USER_ID: F.col(USER_ID),
        RANK: F.col(RANK),
        VIDEO_ID: F.col(VIDEO_ID),
        SCORE: F.col(SCORE),
        SOURCE: F.col(SOURCE),
        RUN_ID: F.lit(run_id),
        MODEL_VERSION: F.lit(model_version),
        GENERATED_AT: F.to_timestamp(F.lit(generated_at)),
    }
    return lists.select(
        *[
            columns[field.name].cast(field.dataType).alias(field.name)
            for field in RECOMMENDATIONS_SCHEMA
        ]
    )


def write_partition(df: DataFrame, lake: io.Lake, table: str, run_date: str) -> str:
    """Write ``df`` as the ``run_date`` partition of ``table``, keeping other partitions.

    Returns:
      The partition's path.
    """
    io.write_table(
        df.withColumn(RUN_DATE, F.lit(run_date)),
        table_path(lake, table),
        partition_by=[RUN_DATE],
        replace_partitions=True,
    )
    return partition_path(lake, table, run_date)


def read_partition(spark, lake: io.Lake, table: str, run_date: str) -> DataFrame:
    """Read one run date's partition of an output table (without the ``run_date`` column)."""
    return io.read_table(
        spark, partition_path(lake, table, run_date), f"{table} for run_date {run_date}"
    )


def latest_run_date(spark, lake: io.Lake, table: str = RECOMMENDATIONS) -> str:
    """Return the newest ``run_date`` partition of an output table.

    Raises:
      FileNotFoundError: The table has no partition, or a killed run left the commit of
        a partition at least as new unsettled, so that partition may be missing.
    """
    prefix = f"{RUN_DATE}="
    names = io.list_dir(spark, table_path(lake, table))
    dates = [name[len(prefix) :] for name in names if name.startswith(prefix)]
    journal = re.compile(rf"{re.escape(io.JOURNAL_PREFIX + prefix)}(.+)-[0-9a-f]{{8}}\.json")
    unsettled = sorted(
        (match.group(1), name) for name in names if (match := journal.fullmatch(name))
    )
    if unsettled and (not dates or unsettled[-1][0] >= max(dates)):
        date, name = unsettled[-1]
        raise FileNotFoundError(
            io.interrupted_commit_message(
                f"The {table} partition for run_date {date}",
                partition_path(lake, table, date),
                posixpath.join(table_path(lake, table), name),
            )
        )
    if not dates:
        raise FileNotFoundError(
            f"No {table} partition found under {table_path(lake, table)}. Run the recommend "
            "job first, or check lake.root."
        )
    return max(dates)


@dataclass(frozen=True)
class CheckSettings:
    """Rules and list length a run applied, from its run summary or the current config."""

    k: int
    snapshot: str
    as_of: str
    region: bool = True
    misinformation: bool = True
    unreviewed: str = "demote"
    rewatch: str = "remove"
    watched_event_types: tuple[str, ...] = (
        "watch",
        "like",
        "dislike",
        "share",
        "rating",
    )
    duplicates: bool = True
    # None: no cap, or the fairness rule was off.
    max_per_creator: Optional[int] = None
    max_per_category: Optional[int] = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], as_of: str) -> "CheckSettings":
        """Build the settings from a config as nested dicts (``config.to_dict`` form)."""
        rules = config["rules"]
        fairness = rules.get("fairness", {})
        caps_on = bool(fairness.get("enabled", False))
        return cls(
            k=int(config["recommend"]["k"]),
            snapshot=str(config["recommend"]["snapshot"]),
            as_of=as_of,
            region=bool(rules["region"]["enabled"]),
            misinformation=bool(rules["misinformation"]["enabled"]),
            unreviewed=str(rules["misinformation"]["unreviewed"]),
            rewatch=str(rules["rewatch"]),
            watched_event_types=tuple(rules["watched_event_types"]),
            duplicates=bool(rules["duplicates"]["enabled"]),
            max_per_creator=fairness.get("max_per_creator") if caps_on else None,
            max_per_category=fairness.get("max_per_category") if caps_on else None,
        )


def schema_problems(schema: T.StructType) -> list[str]:
    """Return how ``schema`` differs from :data:`RECOMMENDATIONS_SCHEMA` (names and types).

    Nullability is not compared, because Parquet files read back as nullable; null
    values are a separate check.
    """
    expected = {field.name: field.dataType for field in RECOMMENDATIONS_SCHEMA}
    actual = {field.name: field.dataType for field in schema}
    problems = [
        f"missing column {name} ({kind.simpleString()})"
        for name, kind in expected.items()
        if name not in actual
    ]
    problems += [f"unexpected column {name}" for name in actual if name not in expected]
    problems += [
        f"column {name} is {actual[name].simpleString()}, expected {kind.simpleString()}"
        for name, kind in expected.items()
        if name in actual and actual[name] != kind
    ]
    return problems


def _offenders(df: DataFrame, user: Column, video: Column, detail: Column) -> DataFrame:
    return df.select(
        user.cast("string").alias(USER_ID),
        video.cast("string").alias(VIDEO_ID),
        detail.cast("string").alias(DETAIL),
    )


def output_checks(
    recommendations: DataFrame,
    settings: CheckSettings,
    users: DataFrame,
    videos: DataFrame,
    watched: DataFrame,
    short_lists: DataFrame,
    expected_users: DataFrame,
    clusters: Optional[DataFrame],
) -> dict[str, DataFrame]:
    """Build one offender DataFrame (``user_id``, ``video_id``, ``detail``) per check.

    Args:
      recommendations: One partition of the recommendations table.
      settings: The rules the run applied.
      users: Raw users (``user_id``, ``region``).
      videos: Raw videos (``video_id``, ``creator_id``, ``category``, ``blocked_regions``,
        ``misinformation``, ``upload_ts``).
      watched: ``user_id``, ``video_id`` pairs watched before the snapshot time.
      short_lists: ``user_id`` of users with a recorded short-list reason in this run.
      expected_users: ``user_id`` of users owed a list (users with candidates).
      clusters: ``video_id``, ``cluster_id`` of this run, or None when not written.

    Returns:
      Check name to offenders; a check with no offender row passed. Rules that the run
      disabled are not checked.
    """
    recs = recommendations
    checks: dict[str, DataFrame] = {}

    not_null = [
        F.col(field.name).isNull() for field in RECOMMENDATIONS_SCHEMA if field.name in recs.columns
    ]
    any_null = not_null[0]
    for condition in not_null[1:]:
        any_null = any_null | condition
    checks["null_values"] = _offenders(
        recs.where(any_null),
        F.col(USER_ID),
        F.col(VIDEO_ID),
        F.lit("a required column is null"),
    )

    per_user = recs.groupBy(USER_ID).agg(
        F.count(F.lit(1)).alias("_rows"),
        F.countDistinct(RANK).alias("_ranks"),
        F.min(RANK).alias("_min"),
        F.max(RANK).alias("_max"),
    )
    checks["rank_sequence"] = _offenders(
        per_user.where(
            (F.col("_min") != 1)
            | (F.col("_max") != F.col("_rows"))
            | (F.col("_ranks") != F.col("_rows"))
        ),
        F.col(USER_ID),
        F.lit(None),
        F.format_string(
            "ranks span %d..%d over %d rows",
            F.col("_min"),
            F.col("_max"),
            F.col("_rows"),
        ),
    )
    checks["list_size"] = _offenders(
        per_user.where(F.col("_rows") != settings.k).join(short_lists, USER_ID, "left_anti"),
        F.col(USER_ID),
        F.lit(None),
        F.format_string(f"%d rows, expected {settings.k}, no short-list reason", F.col("_rows")),
    )
    checks["missing_user"] = _offenders(
        expected_users.select(USER_ID)
        .distinct()
        .join(recs.select(USER_ID), USER_ID, "left_anti")
        .join(short_lists, USER_ID, "left_anti"),
        F.col(USER_ID),
        F.lit(None),
        F.lit("user with candidates has no list and no short-list reason"),
    )
    checks["duplicate_video"] = _offenders(
        recs.groupBy(USER_ID, VIDEO_ID).count().where(F.col("count") > 1),
        F.col(USER_ID),
        F.col(VIDEO_ID),
        F.format_string("listed %d times", F.col("count")),
    )
    checks["unknown_video"] = _offenders(
        recs.join(videos.select(VIDEO_ID), VIDEO_ID, "left_anti"),
        F.col(USER_ID),
        F.col(VIDEO_ID),
        F.lit("video not in the raw videos table"),
    )

    with_videos = recs.select(USER_ID, VIDEO_ID).join(
        videos.select(VIDEO_ID, CREATOR_ID, CATEGORY, BLOCKED_REGIONS, MISINFORMATION, UPLOAD_TS),
        VIDEO_ID,
    )
    checks["unreleased_video"] = _offenders(
        with_videos.where(F.col(UPLOAD_TS) > timestamp_literal(settings.as_of)),
        F.col(USER_ID),
        F.col(VIDEO_ID),
        F.concat(
            F.lit("uploaded "),
            F.date_format(UPLOAD_TS, "yyyy-MM-dd'T'HH:mm:ss"),
            F.lit(f", after the snapshot time {settings.as_of}"),
        ),
    )
    for check, column, cap in (
        ("creator_cap", CREATOR_ID, settings.max_per_creator),
        ("category_cap", CATEGORY, settings.max_per_category),
    ):
        if cap is None:
            continue
        sharing = Window.partitionBy(USER_ID, column)
        checks[check] = _offenders(
            with_videos.where(F.col(column).isNotNull())
            .withColumn("_sharing", F.count(F.lit(1)).over(sharing))
            .where(F.col("_sharing") > cap),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            F.format_string(
                f"one of %d videos of {column} %s in the list, cap {cap}",
                F.col("_sharing"),
                F.col(column),
            ),
        )
    if settings.region:
        region_rows = with_videos.join(users.select(USER_ID, REGION), USER_ID, "left")
        reason = region_reason(F.col(REGION), F.col(BLOCKED_REGIONS))
        checks["region_blocked"] = _offenders(
            region_rows.where(reason.isNotNull()),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            F.concat(reason, F.lit(" for region "), F.coalesce(F.col(REGION), F.lit("null"))),
        )
    if settings.misinformation:
        reason = misinformation_reason(settings.unreviewed)
        checks["misinformation"] = _offenders(
            with_videos.where(reason.isNotNull()),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            reason,
        )
    if settings.rewatch == "remove":
        checks["already_watched"] = _offenders(
            recs.join(watched.select(USER_ID, VIDEO_ID), [USER_ID, VIDEO_ID], "left_semi"),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            F.lit(f"watched before {settings.as_of}"),
        )
    if settings.duplicates and clusters is not None:
        in_cluster = recs.select(USER_ID, VIDEO_ID).join(
            clusters.select(VIDEO_ID, CLUSTER_ID), VIDEO_ID
        )
        members = Window.partitionBy(USER_ID, CLUSTER_ID)
        checks["near_duplicate_cluster"] = _offenders(
            in_cluster.withColumn("_members", F.count(F.lit(1)).over(members)).where(
                F.col("_members") > 1
            ),
            F.col(USER_ID),
            F.col(VIDEO_ID),
            F.format_string("one of %d videos of cluster %s", F.col("_members"), F.col(CLUSTER_ID)),
        )
    return checks


def short_list_users(audit: DataFrame) -> DataFrame:
    """Return ``user_id`` of the audit's short-list rows."""
    return audit.where(F.col(ACTION) == SHORT_LIST).select(USER_ID).distinct()


def run_checks(checks: Mapping[str, DataFrame], max_listed: int) -> dict[str, dict[str, Any]]:
    """Count each check's offenders and list the first ``max_listed`` (sorted); runs Spark jobs.

    Returns:
      ``{check: {"violations": n, "examples": [{"user_id", "video_id", "detail"}, ...]}}``.
    """
    report = {}
    for name, offenders in checks.items():
        offenders = offenders.persist()
        count = offenders.count()
        examples = []
        if count:
            examples = [
                row.asDict()
                for row in offenders.orderBy(USER_ID, VIDEO_ID, DETAIL).limit(max_listed).collect()
            ]
        offenders.unpersist()
        report[name] = {"violations": count, "examples": examples}
    return report


def describe_violations(report: Mapping[str, Mapping[str, Any]], partition: str) -> str:
    """Format the failed checks of a :func:`run_checks` report as an error message."""
    lines = [f"Output partition {partition} violates its contract:"]
    for name, result in report.items():
        if not result["violations"]:
            continue
        count = result["violations"]
        rows = "offending row" if count == 1 else "offending rows"
        lines.append(f"- {name}: {count} {rows}; first ones:")
        for example in result["examples"]:
            parts = [f"{key}={value}" for key, value in example.items() if value is not None]
            lines.append("    " + ", ".join(parts))
    lines.append("Rerun the recommend job for this run_date after fixing the cause.")
    return "\n".join(lines)
