"""Already-watched rule: a video the user watched before the snapshot time is removed.

"Watched" means any event of the configured types (by default every type but
``impression``) strictly before the snapshot time. ``rules.rewatch: allow`` keeps them.
"""

from __future__ import annotations

from typing import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import EVENT_TS, EVENT_TYPE, EVENT_TYPES, USER_ID, VIDEO_ID
from recsys_spark.postprocess import timestamp_literal

WATCHED = "already_watched"
REWATCH_POLICIES = ("remove", "allow")


def watched_pairs(interactions: DataFrame, as_of: str, event_types: Sequence[str]) -> DataFrame:
    """Return the distinct (user, video) pairs watched strictly before ``as_of``.

    Args:
      interactions: Columns ``user_id``, ``video_id``, ``event_ts``, ``event_type``.
      as_of: The snapshot time, ISO-8601 in the session time zone (UTC).
      event_types: Event types that count as watched.

    Returns:
      Columns ``user_id``, ``video_id``, one row per pair.
    """
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise ValueError(
            f"event_types must be a non-empty subset of {list(EVENT_TYPES)}, got "
            f"{list(event_types)} (config key rules.watched_event_types)."
        )
    return (
        interactions.where(
            (F.col(EVENT_TS) < timestamp_literal(as_of)) & F.col(EVENT_TYPE).isin(list(event_types))
        )
        .select(USER_ID, VIDEO_ID)
        .distinct()
    )


def mark_watched(df: DataFrame, watched: DataFrame, output_col: str = "_watched") -> DataFrame:
    """Add a boolean ``output_col``: true where (user_id, video_id) is in ``watched``.

    Args:
      df: Any rows with ``user_id`` and ``video_id``.
      watched: Distinct ``user_id``, ``video_id`` pairs (see :func:`watched_pairs`).
      output_col: Name of the added column.
    """
    flags = watched.select(USER_ID, VIDEO_ID).withColumn(output_col, F.lit(True))
    return df.join(flags, [USER_ID, VIDEO_ID], "left").withColumn(
        output_col, F.coalesce(F.col(output_col), F.lit(False))
    )


def watched_reason(rewatch: str, watched: Column | str = "_watched") -> Column:
    """Return ``"already_watched"`` for watched rows under ``rewatch: remove``, else null."""
    if rewatch not in REWATCH_POLICIES:
        raise ValueError(
            f"Unknown rewatch policy {rewatch!r}; choose one of {REWATCH_POLICIES} "
            "(config key rules.rewatch)."
        )
    watched = F.col(watched) if isinstance(watched, str) else watched
    if rewatch == "allow":
        return F.lit(None).cast("string")
    return F.when(watched, F.lit(WATCHED))
