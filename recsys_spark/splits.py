"""Train, validation and test splits of the interaction log, and the snapshot times.

Every interaction row gets a ``split`` label, so features and examples can be built from
exactly the events a split is allowed to see. Three methods:

* ``time`` (default): global cut-offs ``t1`` and ``t2``. Train is ``[t0, t1)``,
  validation ``[t1, t2)`` and test ``[t2, t_end)``, where ``t_end`` is one microsecond
  after the last event. No training event is later than any validation or test event.
* ``leave_last_n``: per user, the last ``n`` videos the user had a positive on go to
  test and the ``n`` before them to validation (by the time of the first positive on
  each video). The user's events from those times on follow them, so within one user the
  split is a time split. Users with fewer than ``2n + 1`` positive videos stay in train.
  Events of one user's test period can precede another user's training events, which
  leaks popularity across users; the split logs a warning.
* ``random``: a seeded hash of ``(user_id, video_id)``, so all events of a pair share a
  split and the result does not depend on row order or partitioning. A benchmark
  protocol for data without meaningful time; it ignores time entirely.

A snapshot (``features/*/validation``, ``features/*/test``) reads only the events of the
earlier splits: train for ``validation``, train and validation for ``test``. Of those it
reads only events strictly before its ``as_of`` time. For the time split ``as_of`` is ``t1``
or ``t2``. For ``leave_last_n`` a user's ``as_of`` is that user's own validation or test
start (``t_end`` for users without held-out videos) and videos use ``t_end``. For
``random`` both use ``t_end``, so the time windows of a random-split snapshot end at the
end of the data.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark import hashing
from recsys_spark.cleaning import is_non_finite
from recsys_spark.columns import (
    AS_OF,
    EVENT_TS,
    RATING,
    SPLIT,
    SPLITS,
    TEST,
    TRAIN,
    USER_ID,
    VALIDATION,
    VIDEO_ID,
    WATCH_S,
)
from recsys_spark.positives import IS_POSITIVE
from recsys_spark.settings import TrainingConfig

logger = logging.getLogger(__name__)

VALIDATION_START = "validation_start"
TEST_START = "test_start"

# Position of each split in time order. A snapshot reads the splits ranked below its own.
SPLIT_RANK = {name: rank for rank, name in enumerate(SPLITS)}

_MICROS_PER_SECOND = 1_000_000


def to_micros(instant: dt.datetime) -> int:
    """Return microseconds since the Unix epoch. A naive datetime counts as UTC."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    delta = instant - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * _MICROS_PER_SECOND + delta.microseconds


def from_micros(micros: int) -> dt.datetime:
    """Return the UTC datetime ``micros`` microseconds after the Unix epoch."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)


def timestamp_literal(instant: dt.datetime) -> Column:
    """Return a timestamp literal for ``instant``, independent of the Python process's zone.

    ``F.lit(datetime)`` converts a naive datetime with the local time zone of the Python
    process, and going through epoch microseconds avoids that.
    """
    return F.timestamp_micros(F.lit(to_micros(instant)))


def parse_utc(text: str, key: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp from config. Without an offset it is UTC.

    Raises:
      ValueError: ``text`` is not ISO 8601; the message names the config ``key``.
    """
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(
            f"{key} {text!r} is not an ISO 8601 timestamp; use for example "
            "2026-05-01T00:00:00 (UTC)."
        ) from error
    if instant.tzinfo is None:
        return instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(dt.timezone.utc)


def isoformat(instant: Optional[dt.datetime]) -> Optional[str]:
    return None if instant is None else instant.astimezone(dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class Cutoffs:
    """The time boundaries of a split, as UTC datetimes.

    Attributes:
      method: ``time``, ``leave_last_n`` or ``random``.
      t0: Time of the first event.
      t_end: One microsecond after the last event, so every event is strictly before it.
      t1: Start of validation (time split only, else None).
      t2: Start of test (time split only, else None); equals ``t_end`` when the test
        fraction is 0.
    """

    method: str
    t0: dt.datetime
    t_end: dt.datetime
    t1: Optional[dt.datetime] = None
    t2: Optional[dt.datetime] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.method,
            "t0": isoformat(self.t0),
            "t1": isoformat(self.t1),
            "t2": isoformat(self.t2),
            "t_end": isoformat(self.t_end),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Cutoffs":
        def parse(key: str) -> Optional[dt.datetime]:
            return None if data.get(key) is None else parse_utc(data[key], f"manifest {key}")

        return cls(
            method=data["split"],
            t0=parse("t0"),
            t_end=parse("t_end"),
            t1=parse("t1"),
            t2=parse("t2"),
        )


@dataclass(frozen=True)
class InteractionProfile:
    """Row count, time range and non-finite counts from one pass over the interactions."""

    rows: int
    t0: dt.datetime
    t_end: dt.datetime
    # NaN or infinite values per double column, which cleaning replaces with null.
    non_finite: dict[str, int] = field(default_factory=dict)


def profile_interactions(interactions: DataFrame) -> InteractionProfile:
    """Measure the time range and count non-finite values (an action: one aggregation job).

    Args:
      interactions: ``event_ts``, ``watch_s``, ``rating``.

    Raises:
      ValueError: There are no interactions.
    """
    row = interactions.agg(
        F.count(F.lit(1)).alias("rows"),
        F.min(F.unix_micros(EVENT_TS)).alias("first"),
        F.max(F.unix_micros(EVENT_TS)).alias("last"),
        F.sum(is_non_finite(WATCH_S).cast("long")).alias(WATCH_S),
        F.sum(is_non_finite(RATING).cast("long")).alias(RATING),
    ).first()
    if not row["rows"]:
        raise ValueError(
            "The interactions table is empty, so there is nothing to split. Check the "
            "ingest job's output under <lake.root>/raw/interactions and its quarantine."
        )
    return InteractionProfile(
        rows=int(row["rows"]),
        t0=from_micros(row["first"]),
        t_end=from_micros(row["last"] + 1),
        non_finite={WATCH_S: int(row[WATCH_S] or 0), RATING: int(row[RATING] or 0)},
    )


def resolve_cutoffs(training: TrainingConfig, t0: dt.datetime, t_end: dt.datetime) -> Cutoffs:
    """Compute the cut-offs of ``training.split`` for data spanning ``[t0, t_end)``.

    The time split places ``t1`` and ``t2`` at fractions of the time range unless
    ``training.validation_start`` or ``training.test_start`` give them explicitly.

    Raises:
      ValueError: The cut-offs leave no training time or are out of order.
    """
    if training.split != "time":
        return Cutoffs(method=training.split, t0=t0, t_end=t_end)
    span = to_micros(t_end) - to_micros(t0)
    start = to_micros(t0)
    train_share = 1.0 - training.validation_fraction - training.test_fraction
    t1 = (
        parse_utc(training.validation_start, "training.validation_start")
        if training.validation_start
        else from_micros(start + math.floor(span * train_share))
    )
    t2 = (
        parse_utc(training.test_start, "training.test_start")
        if training.test_start
        else from_micros(start + math.floor(span * (1.0 - training.test_fraction)))
    )
    if t1 <= t0:
        raise ValueError(
            f"The validation start t1={isoformat(t1)} is not after the first event "
            f"t0={isoformat(t0)}, so the training split would be empty. Lower "
            "training.validation_fraction/test_fraction or set a later "
            "training.validation_start."
        )
    if t2 < t1:
        raise ValueError(
            f"The test start t2={isoformat(t2)} is before the validation start "
            f"t1={isoformat(t1)}. Set training.validation_start and training.test_start "
            "in order, or use fractions for both."
        )
    if t2 >= t_end:
        logger.info(
            "Test start %s is at or after the last event: the test split is empty.", isoformat(t2)
        )
    return Cutoffs(method="time", t0=t0, t_end=t_end, t1=t1, t2=t2)


def assign_time_split(events: DataFrame, t1: dt.datetime, t2: dt.datetime) -> DataFrame:
    """Add ``split``: train before ``t1``, validation before ``t2``, test from ``t2`` on.

    Args:
      events: ``event_ts``.

    Returns:
      ``events`` with ``split`` (string).
    """
    ts = F.col(EVENT_TS)
    split = (
        F.when(ts < timestamp_literal(t1), F.lit(TRAIN))
        .when(ts < timestamp_literal(t2), F.lit(VALIDATION))
        .otherwise(F.lit(TEST))
    )
    return events.withColumn(SPLIT, split)


def assign_random_split(
    events: DataFrame, validation_fraction: float, test_fraction: float, seed: int
) -> DataFrame:
    """Add ``split`` from a seeded hash of ``(user_id, video_id)``.

    All events of one pair share a split, so a video never is both a training positive
    and a held-out positive of the same user. The hash does not depend on row order or
    partitioning, so the same seed gives the same split on any cluster.

    Args:
      events: ``user_id``, ``video_id``.

    Returns:
      ``events`` with ``split`` (string).
    """
    draw = hashing.uniform(seed, "split", F.col(USER_ID), F.col(VIDEO_ID))
    split = (
        F.when(draw < test_fraction, F.lit(TEST))
        .when(draw < test_fraction + validation_fraction, F.lit(VALIDATION))
        .otherwise(F.lit(TRAIN))
    )
    return events.withColumn(SPLIT, split)


def leave_last_n_cutoffs(events: DataFrame, n: int) -> DataFrame:
    """Compute each user's validation and test start for the leave-last-n split.

    The user's positive videos are ordered by the time of their first positive (ties by
    ``video_id``). The test start is the first-positive time of the n-th last video, and
    the validation start that of the 2n-th last. Users with fewer than ``2n + 1``
    positive videos are left out: all their events stay in train.

    Args:
      events: ``user_id``, ``video_id``, ``event_ts``, ``is_positive``.
      n: Videos held out per user for test, and as many for validation.

    Returns:
      One row per eligible user: ``user_id``, ``validation_start``, ``test_start``.
    """
    firsts = (
        events.filter(F.col(IS_POSITIVE))
        .groupBy(USER_ID, VIDEO_ID)
        .agg(F.min(EVENT_TS).alias("_first_ts"))
    )
    by_user = Window.partitionBy(USER_ID)
    latest_first = by_user.orderBy(F.col("_first_ts").desc(), F.col(VIDEO_ID).desc())
    ranked = firsts.withColumn("_rank", F.row_number().over(latest_first)).withColumn(
        "_videos", F.count(F.lit(1)).over(by_user)
    )
    rank = F.col("_rank")
    return (
        ranked.filter(F.col("_videos") >= 2 * n + 1)
        .groupBy(USER_ID)
        .agg(
            F.min(F.when((rank > n) & (rank <= 2 * n), F.col("_first_ts"))).alias(VALIDATION_START),
            F.min(F.when(rank <= n, F.col("_first_ts"))).alias(TEST_START),
        )
    )


def assign_leave_last_n_split(events: DataFrame, user_cutoffs: DataFrame) -> DataFrame:
    """Add ``split`` from each user's validation and test start.

    An event at or after the user's test start is test, at or after the validation start
    validation, otherwise train. Positives that share the cut-off timestamp of the n-th
    last video follow it, so a user can hold out more than n videos when times tie.

    Args:
      events: ``user_id``, ``event_ts``.
      user_cutoffs: Output of :func:`leave_last_n_cutoffs`.

    Returns:
      ``events`` with ``split`` (string).
    """
    logger.warning(
        "leave_last_n split: one user's validation and test events can be earlier than "
        "another user's training events, so video popularity features and popular "
        "negatives see held-out interactions of other users. Use the time split to "
        "measure what a deployed model would see."
    )
    ts = F.col(EVENT_TS)
    split = (
        F.when(ts >= F.col(TEST_START), F.lit(TEST))
        .when(ts >= F.col(VALIDATION_START), F.lit(VALIDATION))
        .otherwise(F.lit(TRAIN))
    )
    return (
        events.join(user_cutoffs, on=USER_ID, how="left")
        .withColumn(SPLIT, split)
        .drop(VALIDATION_START, TEST_START)
    )


def assign_splits(
    events: DataFrame,
    training: TrainingConfig,
    cutoffs: Cutoffs,
    seed: int,
    user_cutoffs: Optional[DataFrame] = None,
) -> DataFrame:
    """Add ``split`` with the method of ``training.split``.

    Args:
      events: ``user_id``, ``video_id``, ``event_ts``.
      training: The ``training`` config section.
      cutoffs: From :func:`resolve_cutoffs`.
      seed: Seed of the random split.
      user_cutoffs: Required for ``leave_last_n``: from :func:`leave_last_n_cutoffs`.

    Returns:
      ``events`` with ``split`` (string: train, validation or test).
    """
    if training.split == "time":
        return assign_time_split(events, cutoffs.t1, cutoffs.t2)
    if training.split == "random":
        return assign_random_split(
            events, training.validation_fraction, training.test_fraction, seed
        )
    if user_cutoffs is None:
        raise ValueError(
            "The leave_last_n split needs the per-user cut-offs: pass "
            "user_cutoffs=leave_last_n_cutoffs(events, training.leave_last_n)."
        )
    return assign_leave_last_n_split(events, user_cutoffs)


def visible_splits(snapshot: str) -> tuple[str, ...]:
    """Return the splits whose events a snapshot (``validation`` or ``test``) may see."""
    if snapshot not in (VALIDATION, TEST):
        raise ValueError(f"Unknown snapshot {snapshot!r}; expected 'validation' or 'test'.")
    return SPLITS[: SPLIT_RANK[snapshot]]


def snapshot_time(cutoffs: Cutoffs, snapshot: str) -> dt.datetime:
    """Return the global ``as_of`` time of a snapshot: t1 or t2 for the time split, else t_end."""
    visible_splits(snapshot)
    if cutoffs.method == "time":
        return cutoffs.t1 if snapshot == VALIDATION else cutoffs.t2
    return cutoffs.t_end


def user_snapshot_times(user_cutoffs: DataFrame, snapshot: str) -> DataFrame:
    """Return per-user ``as_of`` times of a leave-last-n snapshot.

    Args:
      user_cutoffs: From :func:`leave_last_n_cutoffs`.
      snapshot: ``validation`` or ``test``.

    Returns:
      ``user_id``, ``as_of``: the user's validation or test start. Users without held-out
      videos are absent and use the global snapshot time (``t_end``).
    """
    visible_splits(snapshot)
    start = VALIDATION_START if snapshot == VALIDATION else TEST_START
    return user_cutoffs.select(USER_ID, F.col(start).alias(AS_OF))


def attach_as_of(
    df: DataFrame,
    as_of: dt.datetime,
    per_key_as_of: Optional[DataFrame] = None,
    key: str = USER_ID,
) -> DataFrame:
    """Add the ``as_of`` column: the row's key's own time if listed, else the global one.

    Args:
      df: Any DataFrame with ``key``.
      as_of: The global snapshot time.
      per_key_as_of: Optional ``key``, ``as_of`` rows (from :func:`user_snapshot_times`).
      key: The join key, ``user_id`` by default.

    Returns:
      ``df`` with ``as_of`` (timestamp, never null).
    """
    if per_key_as_of is None:
        return df.withColumn(AS_OF, timestamp_literal(as_of))
    times = per_key_as_of.select(key, F.col(AS_OF).alias("_key_as_of"))
    return (
        df.join(times, on=key, how="left")
        .withColumn(AS_OF, F.coalesce(F.col("_key_as_of"), timestamp_literal(as_of)))
        .drop("_key_as_of")
    )
