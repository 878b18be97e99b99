"""Row validation for ingest: give every source row one quarantine reason, or none.

Each ``classify_*`` function adds a ``reason`` column: null for a valid row, otherwise
the first check the row fails, so every row has at most one reason. The checks of each
table start with whether the source could split the record, then check the ids, then
the other columns. Each column is checked for being parseable, then present, then within
bounds. The references to other tables come next and duplicates last:

users
  malformed_row, invalid_user_id, missing_user_id, then per column in schema order
  unparseable_<column> (for example a MovieLens age) and signup_ts_in_future (after
  ingest time plus ``ingest.max_future_skew_s``), then duplicate_user_id

videos
  malformed_row, invalid_video_id, missing_video_id, then per column in schema order
  unparseable_<column>, invalid_duration_s (zero, negative, NaN or infinite) and
  upload_ts_in_future, then duplicate_video_id

interactions
  malformed_row, invalid_user_id, missing_user_id, invalid_video_id, missing_video_id,
  unparseable_event_ts, missing_event_ts, event_ts_out_of_range (before
  ``ingest.min_event_ts``), event_ts_in_future, unparseable_event_type,
  unknown_event_type (missing or not one of ``columns.EVENT_TYPES``),
  unparseable_watch_s, invalid_watch_s (negative, NaN or infinite), unparseable_rating,
  rating_out_of_range (outside ``[ingest.min_rating, ingest.max_rating]``, or NaN),
  missing_rating (a ``rating`` event without one), unknown_user, unknown_video (not
  among the valid users or videos), watch_s_exceeds_duration (more than the video's
  ``duration_s * ingest.max_watch_ratio``), duplicate_event

An id is invalid when the source could not parse it (a MovieLens id that is not an
integer) or when it contains control characters; it is missing when null, empty or
whitespace only. Any other string is a valid id and is kept exactly as given.
Among rows with the same user or video id, one is kept: the first in the order of its
column values (schema order, nulls last), so the choice does not depend on partitioning.
Of exact duplicate events (equal in every canonical column), one is kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark.settings import IngestConfig
from recsys_spark.sources import RAW_LINE, raw_column
from recsys_spark.sources.text import is_blank

logger = logging.getLogger(__name__)

# Quarantine column with the whole source record, where the source could not split it.
RAW_LINE_OUT = "raw_line"

MALFORMED_ROW = "malformed_row"
UNKNOWN_USER = "unknown_user"
UNKNOWN_VIDEO = "unknown_video"
WATCH_S_EXCEEDS_DURATION = "watch_s_exceeds_duration"
DUPLICATE_EVENT = "duplicate_event"

_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
_REASON_SO_FAR = "_reason_so_far"

Check = tuple[str, Column]


@dataclass(frozen=True)
class Bounds:
    """The limits a valid row stays within, fixed at ingest time."""

    min_event_ts: dt.datetime
    # Latest valid event, signup or upload time: ingest time plus the allowed skew.
    max_ts: dt.datetime
    min_rating: float
    max_rating: float
    max_watch_ratio: float

    @classmethod
    def from_config(cls, ingest: IngestConfig, now: dt.datetime) -> Bounds:
        """Build the bounds from the ``ingest`` config section and the ingest time (UTC)."""
        return cls(
            min_event_ts=_utc(dt.datetime.fromisoformat(ingest.min_event_ts)),
            max_ts=_utc(now) + dt.timedelta(seconds=ingest.max_future_skew_s),
            min_rating=ingest.min_rating,
            max_rating=ingest.max_rating,
            max_watch_ratio=ingest.max_watch_ratio,
        )


def _utc(moment: dt.datetime) -> dt.datetime:
    """Read a naive datetime as UTC, so Spark literals do not depend on the local zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


# --- building blocks ----------------------------------------------------------------


def _unparseable(df: DataFrame, column: str) -> Column | None:
    """Return the condition "the source could not parse ``column``", if it reports that."""
    raw = raw_column(column)
    return F.col(raw).isNotNull() if raw in df.columns else None


def _malformed(df: DataFrame) -> list[Check]:
    return [(MALFORMED_ROW, F.col(RAW_LINE).isNotNull())] if RAW_LINE in df.columns else []


def _id_checks(df: DataFrame, column: str) -> list[Check]:
    """Return the invalid and missing checks of an id column such as ``user_id``."""
    name = column.removesuffix("_id")
    invalid = F.col(column).rlike(_CONTROL_CHARACTERS)
    unparseable = _unparseable(df, column)
    if unparseable is not None:
        invalid = unparseable | invalid
    return [
        (f"invalid_{name}_id", invalid),
        (f"missing_{name}_id", is_blank(F.col(column))),
    ]


def _column_checks(df: DataFrame, column: str, checks: list[Check]) -> list[Check]:
    """Prefix ``checks`` with ``unparseable_<column>`` when the source reports it."""
    unparseable = _unparseable(df, column)
    prefix = [(f"unparseable_{column}", unparseable)] if unparseable is not None else []
    return prefix + checks


def _row_checks(
    df: DataFrame,
    schema: T.StructType,
    id_columns: tuple[str, ...],
    value_checks: dict[str, list[Check]],
) -> list[Check]:
    """Return the checks that need only the row itself, in the documented order.

    Args:
      df: The source table.
      schema: Its canonical schema, whose column order sets the order of the checks.
      id_columns: The id columns, checked first in this order.
      value_checks: Bounds checks per column, run after that column's parse check.
    """
    checks = list(_malformed(df))
    for column in id_columns:
        checks += _id_checks(df, column)
    for column in schema.fieldNames():
        if column not in id_columns:
            checks += _column_checks(df, column, value_checks.get(column, []))
    return checks


def _first_failure(checks: list[Check]) -> Column:
    """Return the reason of the first check whose condition is true, or null if none is.

    A condition that evaluates to null (a comparison with a null value) counts as passed.
    """
    return F.coalesce(*[F.when(condition, F.lit(reason)) for reason, condition in checks])


def _is_nan_or_infinite(column: Column) -> Column:
    return F.isnan(column) | (F.abs(column) == F.lit(float("inf")))


def _sort_key(df: DataFrame, name: str) -> Column:
    """Return an orderable form of a column: a map becomes its entries sorted by key."""
    if isinstance(df.schema[name].dataType, T.MapType):
        return F.array_sort(F.map_entries(F.col(name)))
    return F.col(name)


def _mark_duplicate_ids(df: DataFrame, id_column: str, reason: str) -> DataFrame:
    """Mark every valid row of an id after the first with ``reason``.

    Rows already quarantined keep their reason. Within an id, valid rows sort first and
    then by their column values, so the kept row is the same however the data is
    partitioned.
    """
    others = [name for name in df.columns if not name.startswith("_") and name != id_column]
    order = [F.col(_REASON_SO_FAR).asc_nulls_first()]
    order += [_sort_key(df, name).asc_nulls_last() for name in others]
    position = F.row_number().over(Window.partitionBy(id_column).orderBy(*order))
    duplicate = F.col(_REASON_SO_FAR).isNull() & (position > 1)
    return df.withColumn(
        C.REASON, F.when(duplicate, F.lit(reason)).otherwise(F.col(_REASON_SO_FAR))
    ).drop(_REASON_SO_FAR)


# --- users and videos ---------------------------------------------------------------


def classify_users(users: DataFrame, bounds: Bounds) -> DataFrame:
    """Add ``reason`` to each user row: the first check it fails, or null if valid.

    Args:
      users: Source users: ``columns.USERS_SCHEMA`` plus optional ``_raw`` columns.
      bounds: Validation limits.

    Returns:
      ``users`` with a ``reason`` string column added.
    """
    checks = _row_checks(
        users,
        C.USERS_SCHEMA,
        (C.USER_ID,),
        {C.SIGNUP_TS: [("signup_ts_in_future", F.col(C.SIGNUP_TS) > F.lit(bounds.max_ts))]},
    )
    classified = users.withColumn(_REASON_SO_FAR, _first_failure(checks))
    return _mark_duplicate_ids(classified, C.USER_ID, "duplicate_user_id")


def classify_videos(videos: DataFrame, bounds: Bounds) -> DataFrame:
    """Add ``reason`` to each video row: the first check it fails, or null if valid.

    Args:
      videos: Source videos: ``columns.VIDEOS_SCHEMA`` plus optional ``_raw`` columns.
      bounds: Validation limits.

    Returns:
      ``videos`` with a ``reason`` string column added.
    """
    duration = F.col(C.DURATION_S)
    value_checks = {
        C.DURATION_S: [("invalid_duration_s", (duration <= 0) | _is_nan_or_infinite(duration))],
        C.UPLOAD_TS: [("upload_ts_in_future", F.col(C.UPLOAD_TS) > F.lit(bounds.max_ts))],
    }
    checks = _row_checks(videos, C.VIDEOS_SCHEMA, (C.VIDEO_ID,), value_checks)
    classified = videos.withColumn(_REASON_SO_FAR, _first_failure(checks))
    return _mark_duplicate_ids(classified, C.VIDEO_ID, "duplicate_video_id")


# --- interactions -------------------------------------------------------------------


def _interaction_row_checks(df: DataFrame, bounds: Bounds) -> list[Check]:
    """Return the checks that need nothing but the interaction row itself, in order."""
    event_ts = F.col(C.EVENT_TS)
    event_type = F.col(C.EVENT_TYPE)
    watch_s = F.col(C.WATCH_S)
    rating = F.col(C.RATING)
    known_type = event_type.isNotNull() & event_type.isin(*C.EVENT_TYPES)
    value_checks = {
        C.EVENT_TS: [
            ("missing_event_ts", event_ts.isNull()),
            ("event_ts_out_of_range", event_ts < F.lit(bounds.min_event_ts)),
            ("event_ts_in_future", event_ts > F.lit(bounds.max_ts)),
        ],
        C.EVENT_TYPE: [("unknown_event_type", ~known_type)],
        C.WATCH_S: [("invalid_watch_s", (watch_s < 0) | _is_nan_or_infinite(watch_s))],
        C.RATING: [
            (
                "rating_out_of_range",
                ~rating.between(bounds.min_rating, bounds.max_rating),
            ),
            ("missing_rating", (event_type == "rating") & rating.isNull()),
        ],
    }
    return _row_checks(df, C.INTERACTIONS_SCHEMA, (C.USER_ID, C.VIDEO_ID), value_checks)


def classify_interactions(
    interactions: DataFrame, users: DataFrame, videos: DataFrame, bounds: Bounds
) -> DataFrame:
    """Add ``reason`` to each interaction: the first check it fails, or null if valid.

    Args:
      interactions: Source interactions: ``columns.INTERACTIONS_SCHEMA`` plus optional
        ``_raw`` columns.
      users: Output of :func:`classify_users`; rows with a null ``reason`` are the known
        users.
      videos: Output of :func:`classify_videos`; rows with a null ``reason`` are the
        known videos, whose ``duration_s`` bounds the watch time.
      bounds: Validation limits.

    Returns:
      ``interactions`` (same columns and rows) with a ``reason`` string column added.
    """
    known_users = users.where(F.col(C.REASON).isNull()).select(
        F.col(C.USER_ID).alias("_known_user_id")
    )
    known_videos = videos.where(F.col(C.REASON).isNull()).select(
        F.col(C.VIDEO_ID).alias("_known_video_id"),
        F.col(C.DURATION_S).alias("_video_duration_s"),
    )
    # Valid users and videos have unique ids, so these left joins keep one row per event.
    joined = interactions.join(
        known_users, F.col(C.USER_ID) == F.col("_known_user_id"), "left"
    ).join(known_videos, F.col(C.VIDEO_ID) == F.col("_known_video_id"), "left")

    max_watch_s = F.col("_video_duration_s") * bounds.max_watch_ratio
    checks = [
        *_interaction_row_checks(interactions, bounds),
        (UNKNOWN_USER, F.col("_known_user_id").isNull()),
        (UNKNOWN_VIDEO, F.col("_known_video_id").isNull()),
        (WATCH_S_EXCEEDS_DURATION, F.col(C.WATCH_S) > max_watch_s),
    ]
    classified = joined.withColumn(_REASON_SO_FAR, _first_failure(checks)).drop(
        "_known_user_id", "_known_video_id", "_video_duration_s"
    )

    # Valid copies sort first, so every copy after the first valid one is a duplicate.
    event = [F.col(name) for name in C.INTERACTIONS_SCHEMA.fieldNames()]
    position = F.row_number().over(
        Window.partitionBy(*event).orderBy(F.col(_REASON_SO_FAR).asc_nulls_first())
    )
    duplicate = F.col(_REASON_SO_FAR).isNull() & (position > 1)
    reason = F.when(duplicate, F.lit(DUPLICATE_EVENT)).otherwise(F.col(_REASON_SO_FAR))
    return classified.withColumn(C.REASON, reason).drop(_REASON_SO_FAR)


# --- outputs ------------------------------------------------------------------------


def valid_rows(classified: DataFrame, schema: T.StructType) -> DataFrame:
    """Return the rows without a reason, with ``schema``'s columns only.

    Args:
      classified: Output of a ``classify_*`` function.
      schema: The table's canonical schema.
    """
    return classified.where(F.col(C.REASON).isNull()).select(*schema.fieldNames())


def quarantined_rows(classified: DataFrame, schema: T.StructType, run_id: str) -> DataFrame:
    """Return the rows with a reason, in the quarantine table's columns.

    Args:
      classified: Output of a ``classify_*`` function.
      schema: The table's canonical schema.
      run_id: The ingest run's id.

    Returns:
      ``schema``'s columns, ``raw_line``, ``reason`` and ``run_id``. A column that the
      source parses from text becomes a string. It contains the source text where parsing
      failed and the parsed value as text elsewhere. The other columns keep their
      canonical types. ``raw_line`` is the whole record where the source could not split
      it, else null.
    """
    selected = []
    for name in schema.fieldNames():
        raw = raw_column(name)
        if raw in classified.columns:
            selected.append(F.coalesce(F.col(raw), F.col(name).cast(T.StringType())).alias(name))
        else:
            selected.append(F.col(name))
    if RAW_LINE in classified.columns:
        raw_line = F.col(RAW_LINE)
    else:
        raw_line = F.lit(None).cast(T.StringType())
    return classified.where(F.col(C.REASON).isNotNull()).select(
        *selected,
        raw_line.alias(RAW_LINE_OUT),
        F.col(C.REASON),
        F.lit(run_id).alias(C.RUN_ID),
    )


def count_by_reason(classified: DataFrame) -> dict[str | None, int]:
    """Count rows per reason (None for valid rows). Runs one Spark job.

    Args:
      classified: Output of a ``classify_*`` function.
    """
    rows = classified.groupBy(C.REASON).count().collect()
    return {row[C.REASON]: row["count"] for row in rows}
