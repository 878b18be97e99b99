"""A user's last positives strictly before a time: for snapshots and for every example.

Both functions read first positives (:func:`recsys_spark.positives.first_positives` with
``video_idx`` attached), so each video enters a history once, at the time of the user's
first positive on it. A history lists at most ``length`` videos, most recent first;
positives at the same timestamp are ordered by ``video_id``.

Point-in-time rule: a history at time ``t`` contains only positives with
``event_ts < t``. Events that share a timestamp never see each other, whatever order
the rows arrive in.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import (
    AS_OF,
    EVENT_TS,
    HISTORY_VIDEO_IDS,
    HISTORY_VIDEO_IDX,
    USER_ID,
    VIDEO_ID,
    VIDEO_IDX,
)
from recsys_spark.splits import attach_as_of


def snapshot_history(
    first_positives: DataFrame,
    as_of: dt.datetime,
    length: int,
    per_user_as_of: Optional[DataFrame] = None,
) -> DataFrame:
    """Return each user's last ``length`` positives strictly before the snapshot time.

    Args:
      first_positives: ``user_id``, ``video_id``, ``video_idx``, ``event_ts``.
      as_of: The snapshot time.
      length: Maximum videos per history.
      per_user_as_of: Optional ``user_id``, ``as_of`` overriding ``as_of`` per user.

    Returns:
      One row per user with at least one positive before ``as_of``: ``user_id``,
      ``history_video_ids`` (array<string>), ``history_video_idx`` (array<long>).
    """
    visible = attach_as_of(first_positives, as_of, per_user_as_of).filter(
        F.col(EVENT_TS) < F.col(AS_OF)
    )
    latest_first = Window.partitionBy(USER_ID).orderBy(
        F.col(EVENT_TS).desc(), F.col(VIDEO_ID).asc()
    )
    items = F.sort_array(F.collect_list(F.struct("_rank", VIDEO_ID, VIDEO_IDX)))
    return (
        visible.withColumn("_rank", F.row_number().over(latest_first))
        .filter(F.col("_rank") <= length)
        .groupBy(USER_ID)
        .agg(items.alias("_items"))
        .select(
            USER_ID,
            F.transform("_items", lambda item: item[VIDEO_ID]).alias(HISTORY_VIDEO_IDS),
            F.transform("_items", lambda item: item[VIDEO_IDX]).alias(HISTORY_VIDEO_IDX),
        )
    )


def example_histories(examples: DataFrame, first_positives: DataFrame, length: int) -> DataFrame:
    """Add ``history_video_idx``: the user's last positives strictly before each example.

    First positives are grouped by (user, timestamp), one row per group. A window over a
    user's groups, ordered by time, collects the ``length`` non-empty groups before the
    current one. The frame ends at the preceding group, so positives that share the
    example's timestamp are never in its history, the example itself included. An
    example whose timestamp has no positives joins as an empty group. Each group is cut
    to ``length`` videos first, so a row contains at most ``length * length`` ids however
    long the user's history is.

    Args:
      examples: ``user_id``, ``event_ts`` and any other columns.
      first_positives: ``user_id``, ``video_id``, ``video_idx``, ``event_ts``.
      length: Maximum videos per history.

    Returns:
      ``examples`` with ``history_video_idx`` (array<long>, most recent first, never null).
    """
    videos = F.sort_array(F.collect_list(F.struct(VIDEO_ID, VIDEO_IDX)))
    groups = first_positives.groupBy(USER_ID, EVENT_TS).agg(
        F.transform(F.slice(videos, 1, length), lambda item: item[VIDEO_IDX]).alias("_videos")
    )
    keys = examples.select(USER_ID, EVENT_TS).distinct()
    groups = groups.join(keys, on=[USER_ID, EVENT_TS], how="full_outer").withColumn(
        "_videos", F.coalesce(F.col("_videos"), F.array().cast("array<bigint>"))
    )

    # _before counts the non-empty groups earlier than this row. The non-empty group k
    # groups back has _before equal to this row's _before - k, so a range frame of
    # [-length, -1] over _before contains exactly the `length` latest non-empty groups.
    # Empty groups in the frame add nothing. Each (user, event_ts) is one row here, so
    # the time order is total.
    by_time = Window.partitionBy(USER_ID).orderBy(EVENT_TS)
    non_empty = (F.size("_videos") > 0).cast("long")
    before = F.sum(non_empty).over(by_time.rowsBetween(Window.unboundedPreceding, -1))
    groups = groups.withColumn("_before", F.coalesce(before, F.lit(0)))
    previous_groups = Window.partitionBy(USER_ID).orderBy("_before").rangeBetween(-length, -1)
    previous = F.collect_list(F.struct((-F.col("_before")).alias("_order"), "_videos"))
    groups = groups.withColumn("_previous", previous.over(previous_groups))

    # Sorting on -_before puts the latest group first, whatever order collect_list used.
    history = F.slice(
        F.flatten(F.transform(F.sort_array("_previous"), lambda group: group["_videos"])),
        1,
        length,
    )
    histories = groups.select(USER_ID, EVENT_TS, history.alias(HISTORY_VIDEO_IDX))
    return examples.join(histories, on=[USER_ID, EVENT_TS], how="left").withColumn(
        HISTORY_VIDEO_IDX,
        F.coalesce(F.col(HISTORY_VIDEO_IDX), F.array().cast("array<bigint>")),
    )
