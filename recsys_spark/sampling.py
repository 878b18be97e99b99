"""Item frequencies for the logQ correction, and negatives for every positive example.

Negative sources (``training.negatives``):

* ``random``: uniform over the video corpus (every video in the id map).
* ``popular``: weighted by ``count ** popularity_exponent``, where ``count`` is the
  video's training positives (``features/item_frequencies``), so only videos with a
  training positive are drawn.
* ``impression``: videos shown to the user (impression events) before the example's
  time, except the user's training positives. Each example draws from the impressions
  its user had seen by then, so no example learns from later exposure.
* ``mined``: rows of ``training/mined_negatives`` (hard negatives from a trained model).

Sampling runs on the executors without a loop per row. Each example gets
``ceil(k * oversampling)`` candidate draws per source. Every draw takes its two uniforms
from a hash of the seed, the source, the example's key and the draw number
(:mod:`recsys_spark.hashing`), so the result does not depend on partitioning. A global
source maps the uniforms to a video with an alias table (Vose's method: O(1) per draw,
exact probabilities) joined on its slot. A per-user pool is joined on (user, position);
a pool with times is numbered in time order, so the videos an example may draw are the
first n positions of its user's pool.
Candidates that are one of the user's positives are removed. The sources then fill their
quotas in the order random, popular, impression, mined: each keeps its first ``k``
distinct candidates that no earlier source chose for the example. An example whose
candidates run out gets fewer negatives of that source.

The user's positives here are those of the example's split and the earlier ones, at any
time: a training example never gets a video the user had a positive on in train, and a
test example none the user had in any split. Positives of later splits are not excluded,
so training never uses held-out labels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import hashing
from recsys_spark.columns import (
    COUNT,
    EVENT_TS,
    NEGATIVE_SOURCES,
    NEGATIVE_TYPES,
    NEGATIVE_VIDEO_IDX,
    PROBABILITY,
    SAMPLING_PROBABILITY,
    SPLIT,
    USER_IDX,
    VIDEO_ID,
    VIDEO_IDX,
)
from recsys_spark.settings import NegativesConfig
from recsys_spark.splits import SPLIT_RANK

logger = logging.getLogger(__name__)

# Alias tables up to this many slots are broadcast to the executors. A slot takes four
# 8-byte fields, so this is about 64 MB. Larger tables are joined with a shuffle.
BROADCAST_MAX_SLOTS = 2_000_000

# An example is identified by these columns (a pair has one example per split at most).
EXAMPLE_KEY = (USER_IDX, VIDEO_IDX, EVENT_TS)

_SLOT = "_slot"
_ACCEPT = "_accept"
_CHOSEN = "_chosen"
_ALIAS = "_alias"
_POSITION = "_position"
_POOL_SIZE = "_pool_size"
_SINCE = "_since"
_NEGATIVE = "_negative"
_SOURCE = "_source"
_DRAW = "_draw"
_SPLIT_RANK = "_split_rank"

_TABLE_SCHEMA = T.StructType(
    [
        T.StructField(_SLOT, T.LongType(), False),
        T.StructField(_ACCEPT, T.DoubleType(), False),
        T.StructField(_CHOSEN, T.LongType(), False),
        T.StructField(_ALIAS, T.LongType(), False),
    ]
)


def item_frequencies(train_examples: DataFrame) -> DataFrame:
    """Count training positives per video and turn the counts into probabilities.

    Args:
      train_examples: The training split's examples: ``video_id``, ``video_idx``.

    Returns:
      ``video_id``, ``video_idx``, ``count`` (long, at least 1) and ``probability``
      (``count / total``; in (0, 1] and summing to 1), one row per video with a
      training positive.
    """
    counts = train_examples.groupBy(VIDEO_ID, VIDEO_IDX).agg(F.count(F.lit(1)).alias(COUNT))
    total = counts.agg(F.sum(COUNT).cast("double").alias("_total"))
    return (
        counts.crossJoin(F.broadcast(total))
        .withColumn(PROBABILITY, F.col(COUNT) / F.col("_total"))
        .drop("_total")
    )


def attach_sampling_probability(examples: DataFrame, frequencies: DataFrame) -> DataFrame:
    """Add ``sampling_probability``: the video's item frequency, null if it has none.

    Every training example's video has a training positive (the example itself), so the
    value is non-null for the training split whenever ``frequencies`` were computed
    from that split.
    """
    probabilities = frequencies.select(VIDEO_IDX, F.col(PROBABILITY).alias(SAMPLING_PROBABILITY))
    return examples.join(F.broadcast(probabilities), on=VIDEO_IDX, how="left")


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Build Vose's alias table for sampling index i with probability weights[i] / sum.

    To draw: pick a slot s uniformly, then take s with probability ``accept[s]``, else
    ``alias[s]``. Index i then comes up with probability
    ``(accept[i] + sum(1 - accept[s] for s with alias[s] == i)) / n``.

    Args:
      weights: 1-D, non-negative, finite, with a positive sum.

    Returns:
      ``(accept, alias)``: float64 and int64 arrays of the same length as ``weights``.

    Raises:
      ValueError: The weights are empty, negative, non-finite or all zero.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            "weights must be finite and non-negative with a positive sum; got min "
            f"{weights.min()}, max {weights.max()}, sum {weights.sum()}."
        )
    n = weights.size
    scaled = weights * (n / weights.sum())
    accept = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        below = small.pop()
        above = large.pop()
        accept[below] = scaled[below]
        alias[below] = above
        scaled[above] = (scaled[above] + scaled[below]) - 1.0
        if scaled[above] < 1.0:
            small.append(above)
        else:
            large.append(above)
    # Whatever remains is at 1 up to rounding error and always accepts itself.
    for index in small + large:
        accept[index] = 1.0
    return accept, alias


@dataclass(frozen=True)
class SamplingTable:
    """An alias table as a DataFrame: ``_slot``, ``_accept``, ``_chosen``, ``_alias``."""

    table: DataFrame
    size: int


def _sampling_table(spark, video_idx: np.ndarray, weights: np.ndarray) -> SamplingTable:
    order = np.argsort(video_idx, kind="stable")
    video_idx = video_idx[order]
    accept, alias = alias_table(weights[order])
    frame = pd.DataFrame(
        {
            _SLOT: np.arange(video_idx.size, dtype=np.int64),
            _ACCEPT: accept,
            _CHOSEN: video_idx.astype(np.int64),
            _ALIAS: video_idx[alias].astype(np.int64),
        }
    )
    return SamplingTable(spark.createDataFrame(frame, schema=_TABLE_SCHEMA), int(video_idx.size))


def uniform_table(video_ids: DataFrame) -> Optional[SamplingTable]:
    """Build the alias table of the uniform source (an action: collects ``video_idx``).

    Args:
      video_ids: The video id map: ``video_idx``. Index 0 (unknown) is left out.

    Returns:
      The table, or None when there are no videos.
    """
    ids = (
        video_ids.filter(F.col(VIDEO_IDX) > 0)
        .select(VIDEO_IDX)
        .distinct()
        .toPandas()[VIDEO_IDX]
        .to_numpy(dtype=np.int64)
    )
    if ids.size == 0:
        return None
    return _sampling_table(video_ids.sparkSession, ids, np.ones(ids.size))


def popularity_table(frequencies: DataFrame, exponent: float) -> Optional[SamplingTable]:
    """Build the alias table of the popular source (an action: collects the counts).

    Args:
      frequencies: From :func:`item_frequencies`: ``video_idx``, ``count``.
      exponent: ``training.negatives.popularity_exponent``; 0.75 as in word2vec.

    Returns:
      The table, with weight ``count ** exponent`` per video, or None when empty.
    """
    counts = frequencies.select(VIDEO_IDX, COUNT).toPandas()
    if counts.empty:
        return None
    weights = counts[COUNT].to_numpy(dtype=np.float64) ** exponent
    ids = counts[VIDEO_IDX].to_numpy(dtype=np.int64)
    return _sampling_table(frequencies.sparkSession, ids, weights)


def user_pool(
    candidates: DataFrame, exclude: Optional[DataFrame] = None, since: Optional[str] = None
) -> DataFrame:
    """Number each user's candidate negatives 0..size-1 for positional sampling.

    Args:
      candidates: ``user_idx``, ``video_idx`` (duplicates allowed), and the column
        ``since`` when given.
      exclude: Optional ``user_idx``, ``video_idx`` pairs to leave out.
      since: Name of a timestamp column of ``candidates``. With it, a video enters the
        pool at its earliest time, positions follow that time, and an example draws only
        from the videos that entered before the example's ``event_ts``.

    Returns:
      ``user_idx``, ``_position`` (long), ``_chosen`` (video_idx), ``_pool_size`` (long),
      and ``_since`` (timestamp) with ``since``.
    """
    pairs = candidates.filter(F.col(VIDEO_IDX) > 0)
    if since is None:
        pool = pairs.select(USER_IDX, VIDEO_IDX).distinct()
        order = [F.col(VIDEO_IDX)]
    else:
        pool = pairs.groupBy(USER_IDX, VIDEO_IDX).agg(F.min(since).alias(_SINCE))
        order = [F.col(_SINCE), F.col(VIDEO_IDX)]
    if exclude is not None:
        pool = pool.join(
            exclude.select(USER_IDX, VIDEO_IDX), on=[USER_IDX, VIDEO_IDX], how="left_anti"
        )
    by_user = Window.partitionBy(USER_IDX)
    return pool.select(
        USER_IDX,
        (F.row_number().over(by_user.orderBy(*order)) - 1).cast("long").alias(_POSITION),
        F.col(VIDEO_IDX).alias(_CHOSEN),
        F.count(F.lit(1)).over(by_user).alias(_POOL_SIZE),
        *([] if since is None else [_SINCE]),
    )


def _sizes_before(keys: DataFrame, pool: DataFrame) -> DataFrame:
    """Count, per example, the pool entries of its user that entered before ``event_ts``.

    The examples and the entries are sorted together per user. At equal times the example
    comes first, so an entry at the example's own time is not counted.

    Returns:
      :data:`EXAMPLE_KEY` and ``_pool_size`` for the examples with at least one entry.
    """
    entries = pool.select(
        USER_IDX,
        F.lit(None).cast("long").alias(VIDEO_IDX),
        F.lit(None).cast("timestamp").alias(EVENT_TS),
        F.col(_SINCE).alias("_at"),
        F.lit(1).alias("_entry"),
    )
    examples = keys.select(
        USER_IDX, VIDEO_IDX, EVENT_TS, F.col(EVENT_TS).alias("_at"), F.lit(0).alias("_entry")
    )
    running = (
        Window.partitionBy(USER_IDX)
        .orderBy("_at", "_entry", VIDEO_IDX)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    counted = entries.unionByName(examples).withColumn(
        _POOL_SIZE, F.sum("_entry").over(running).cast("long")
    )
    return counted.where((F.col("_entry") == 0) & (F.col(_POOL_SIZE) > 0)).select(
        *EXAMPLE_KEY, _POOL_SIZE
    )


def _draw_uniform(seed: int, stream: str) -> Column:
    return hashing.uniform(seed, stream, *[F.col(name) for name in EXAMPLE_KEY], F.col(_DRAW))


def _with_draws(keys: DataFrame, draws: int) -> DataFrame:
    return keys.withColumn(_DRAW, F.explode(F.sequence(F.lit(0), F.lit(draws - 1))))


def _from_table(keys: DataFrame, source: str, table: SamplingTable, draws: int, seed: int):
    """Draw ``draws`` candidates per example from an alias table."""
    slot = F.floor(_draw_uniform(seed, f"{source}:slot") * table.size).cast("long")
    accept = _draw_uniform(seed, f"{source}:accept")
    drawn = _with_draws(keys, draws).withColumn(_SLOT, slot).withColumn("_u", accept)
    lookup = table.table
    if table.size <= BROADCAST_MAX_SLOTS:
        lookup = F.broadcast(lookup)
    return drawn.join(lookup, on=_SLOT, how="inner").select(
        *EXAMPLE_KEY,
        _SPLIT_RANK,
        F.lit(source).alias(_SOURCE),
        _DRAW,
        F.when(F.col("_u") < F.col(_ACCEPT), F.col(_CHOSEN))
        .otherwise(F.col(_ALIAS))
        .alias(_NEGATIVE),
    )


def _from_pool(keys: DataFrame, source: str, pool: DataFrame, draws: int, seed: int):
    """Draw ``draws`` candidates per example from the user's pool, with replacement."""
    if _SINCE in pool.columns:
        sizes, on = _sizes_before(keys, pool), list(EXAMPLE_KEY)
    else:
        sizes, on = pool.select(USER_IDX, _POOL_SIZE).distinct(), [USER_IDX]
    position = F.floor(_draw_uniform(seed, f"{source}:position") * F.col(_POOL_SIZE))
    drawn = (
        _with_draws(keys.join(sizes, on=on, how="inner"), draws)
        .withColumn(_POSITION, position.cast("long"))
        .drop(_POOL_SIZE)
    )
    return drawn.join(
        pool.select(USER_IDX, _POSITION, _CHOSEN), on=[USER_IDX, _POSITION], how="inner"
    ).select(
        *EXAMPLE_KEY,
        _SPLIT_RANK,
        F.lit(source).alias(_SOURCE),
        _DRAW,
        F.col(_CHOSEN).alias(_NEGATIVE),
    )


def _split_rank(split: Column) -> Column:
    rank = F.lit(None).cast("int")
    for name, value in SPLIT_RANK.items():
        rank = F.when(split == name, F.lit(value)).otherwise(rank)
    return rank


def sample_negatives(
    examples: DataFrame,
    positives: DataFrame,
    negatives: NegativesConfig,
    seed: int,
    uniform: Optional[SamplingTable] = None,
    popular: Optional[SamplingTable] = None,
    impression_pool: Optional[DataFrame] = None,
    mined_pool: Optional[DataFrame] = None,
) -> DataFrame:
    """Add ``negative_video_idx`` and ``negative_types`` to every example.

    Args:
      examples: ``user_idx``, ``video_idx``, ``event_ts``, ``split``; one row per
        (``user_idx``, ``video_idx``, ``event_ts``).
      positives: Every positive pair with the split of its first positive: ``user_idx``,
        ``video_idx``, ``split``.
      negatives: The ``training.negatives`` config section (counts per source).
      seed: ``config.seed``.
      uniform, popular: Alias tables from :func:`uniform_table` and
        :func:`popularity_table`; a source without its table draws nothing.
      impression_pool, mined_pool: Pools from :func:`user_pool`.

    Returns:
      ``examples`` with ``negative_video_idx`` (array<long>) and ``negative_types``
      (array<string>, the source of each negative), grouped by source in the order
      random, popular, impression, mined, each in draw order. Both arrays are empty,
      never null, when an example has no negatives.
    """
    quotas = {
        "random": (negatives.random, uniform, _from_table),
        "popular": (negatives.popular, popular, _from_table),
        "impression": (negatives.impression, impression_pool, _from_pool),
        "mined": (negatives.mined, mined_pool, _from_pool),
    }
    keys = examples.select(*EXAMPLE_KEY, _split_rank(F.col(SPLIT)).alias(_SPLIT_RANK))
    active = []
    for source in NEGATIVE_SOURCES:
        count, table, draw = quotas[source]
        if count > 0 and table is not None:
            draws = math.ceil(count * negatives.oversampling)
            active.append((source, count, draw(keys, source, table, draws, seed)))
    empty_ids = F.array().cast("array<bigint>")
    empty_types = F.array().cast("array<string>")
    if not active:
        return examples.withColumn(NEGATIVE_VIDEO_IDX, empty_ids).withColumn(
            NEGATIVE_TYPES, empty_types
        )
    drawn = active[0][2]
    for _, _, more in active[1:]:
        drawn = drawn.unionByName(more)

    # Remove the user's positives of this split and earlier ones (the example's own
    # video included).
    seen = positives.select(
        F.col(USER_IDX).alias("_user"),
        F.col(VIDEO_IDX).alias("_video"),
        _split_rank(F.col(SPLIT)).alias("_positive_rank"),
    )
    allowed = drawn.join(
        seen,
        on=(F.col(USER_IDX) == F.col("_user"))
        & (F.col(_NEGATIVE) == F.col("_video"))
        & (F.col("_positive_rank") <= F.col(_SPLIT_RANK)),
        how="left_anti",
    )

    # One row per example with each source's candidates in draw order. The sources then
    # fill their quotas in order, each skipping duplicates and the videos that earlier
    # sources chose: array_except keeps the first array's order and drops repeats.
    per_source = {
        source: F.transform(
            F.sort_array(
                F.collect_list(F.when(F.col(_SOURCE) == source, F.struct(_DRAW, _NEGATIVE)))
            ),
            lambda item: item[_NEGATIVE],
        ).alias(source)
        for source, _, _ in active
    }
    per_example = allowed.groupBy(*EXAMPLE_KEY).agg(*per_source.values())
    chosen_ids = empty_ids
    chosen_types = empty_types
    for source, count, _ in active:
        picked = F.slice(F.array_except(F.col(source), chosen_ids), 1, count)
        chosen_types = F.concat(chosen_types, F.array_repeat(F.lit(source), F.size(picked)))
        chosen_ids = F.concat(chosen_ids, picked)
    per_example = per_example.select(
        *EXAMPLE_KEY,
        chosen_ids.alias(NEGATIVE_VIDEO_IDX),
        chosen_types.alias(NEGATIVE_TYPES),
    )
    return (
        examples.join(per_example, on=list(EXAMPLE_KEY), how="left")
        .withColumn(NEGATIVE_VIDEO_IDX, F.coalesce(F.col(NEGATIVE_VIDEO_IDX), empty_ids))
        .withColumn(NEGATIVE_TYPES, F.coalesce(F.col(NEGATIVE_TYPES), empty_types))
    )
