"""Benchmark splits on Spark: the stratified random split and a global time cut-off.

:func:`stratified_split` follows ``python_stratified_split`` and ``spark_stratified_split``
of Microsoft Recommenders (recommenders/datasets/python_splitters.py and
spark_splitters.py). Within each group (each user, or each item with ``by="item"``), the
rows are put in random order and numbered 1..n. Row i goes to the first split whose
cumulative ratio is at least i / n. Groups with fewer than ``min_rating`` rows are
dropped first. Their ``filter_by`` argument picks both the group that is filtered and the
group that is stratified; their published MovieLens benchmark passes ``filter_by="item"``.

The random order here comes from a hash of (user, item, seed) instead of ``F.rand``, so
the same seed gives the same split for any partitioning and on every recomputation; the
rows themselves differ from theirs, which come from numpy's generator.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Literal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import DEFAULT_SEED, EVENT_TS, USER_ID, VIDEO_ID
from recsys_spark.evaluation.metrics import require_columns

_ORDER = "_split_order"
_FRACTION = "_split_fraction"


def split_ratios(ratio: float | Sequence[float]) -> list[float]:
    """Return cumulative split boundaries for one ratio or a list of ratios.

    A single ratio r gives two splits (r, 1 - r); a list is normalised to sum to 1,
    as Microsoft Recommenders' ``process_split_ratio`` does.
    """
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"A single split ratio must be strictly between 0 and 1, got {ratio}.")
        ratios = [float(ratio), 1.0 - float(ratio)]
    elif (
        isinstance(ratio, Sequence)
        and ratio
        and all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratio)
    ):
        if any(r <= 0 for r in ratio):
            raise ValueError(f"Every split ratio must be positive, got {list(ratio)}.")
        total = math.fsum(ratio)
        ratios = [r / total for r in ratio]
    else:
        raise TypeError(f"ratio must be a float or a list of floats, got {ratio!r}.")
    boundaries = []
    running = 0.0
    for r in ratios:
        running += r
        boundaries.append(running)
    boundaries[-1] = 1.0
    return boundaries


def stratified_split(
    df: DataFrame,
    ratio: float | Sequence[float] = 0.75,
    by: Literal["user", "item"] = "user",
    min_rating: int = 1,
    seed: int = DEFAULT_SEED,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
) -> list[DataFrame]:
    """Split each group's rows at random in the given proportions.

    Args:
      df: Interactions with ``user_col`` and ``item_col``; other columns are kept. A
        (user, item) pair should appear once: repeated pairs get the same random key and
        are ordered by their position only through the remaining ties.
      ratio: A float r for a (r, 1 - r) split, or a list of ratios (normalised).
      by: The group to stratify and to filter with ``min_rating``: ``user`` (the
        default of ``python_stratified_split``) or ``item`` (their MovieLens benchmark).
      min_rating: Groups with fewer rows are dropped before splitting.
      seed: Seed of the per-row hash that orders each group.

    Returns:
      One DataFrame per ratio, disjoint and together holding every row of the kept
      groups. Row i of a group of n goes to the first split whose cumulative ratio is
      at least i / n, compared in floating point as the reference does. So a (r, 1 - r)
      split puts floor(n * r) rows of each group in the first split.
    """
    if by not in ("user", "item"):
        raise ValueError(f"by must be 'user' or 'item', got {by!r}.")
    if isinstance(min_rating, bool) or not isinstance(min_rating, int) or min_rating < 1:
        raise ValueError(f"min_rating must be an integer of at least 1, got {min_rating!r}.")
    require_columns(df, [user_col, item_col], "stratified_split input")
    boundaries = split_ratios(ratio)
    group = user_col if by == "user" else item_col

    order = F.xxhash64(F.col(user_col).cast("string"), F.col(item_col).cast("string"), F.lit(seed))
    whole_group = Window.partitionBy(group)
    in_order = Window.partitionBy(group).orderBy(_ORDER, user_col, item_col)
    numbered = (
        df.withColumn(_ORDER, order)
        .withColumn("_group_size", F.count(F.lit(1)).over(whole_group))
        .where(F.col("_group_size") >= min_rating)
        .withColumn(_FRACTION, F.row_number().over(in_order) / F.col("_group_size"))
        .drop(_ORDER, "_group_size")
    )
    splits = []
    lower = None
    for upper in boundaries:
        condition = F.col(_FRACTION) <= upper
        if lower is not None:
            condition &= F.col(_FRACTION) > lower
        splits.append(numbered.where(condition).drop(_FRACTION))
        lower = upper
    return splits


def time_cutoff_split(
    df: DataFrame, cutoff: dt.datetime, timestamp_col: str = EVENT_TS
) -> tuple[DataFrame, DataFrame]:
    """Split at one global time: rows at or before ``cutoff`` train, later rows test.

    Args:
      df: Rows with ``timestamp_col``; rows with a null timestamp are dropped.
      cutoff: The cut-off instant. A naive datetime is read as UTC, whatever the time
        zones of the Python process and the Spark session.

    Returns:
      (train, test).
    """
    require_columns(df, [timestamp_col], "time_cutoff_split input")
    if not isinstance(cutoff, dt.datetime):
        raise TypeError(f"cutoff must be a datetime, got {cutoff!r}.")
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=dt.timezone.utc)
    seconds = F.col(timestamp_col).cast("double")
    return df.where(seconds <= cutoff.timestamp()), df.where(seconds > cutoff.timestamp())
