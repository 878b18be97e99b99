"""The steps build_features and build_training_set share, and the training-row assembly.

Both jobs label and split the raw interactions with the same deterministic functions, so
the training rows agree with the snapshots and item frequencies that build_features
wrote. build_training_set reuses the cut-offs recorded in ``features/manifest.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark import io
from recsys_spark.columns import (
    AGE_BUCKET,
    CATEGORY,
    DAY_OF_WEEK,
    EVENT_TS,
    EVENT_TYPE,
    GENDER,
    HISTORY_VIDEO_IDX,
    HOUR_OF_DAY,
    INTERACTIONS,
    LANGUAGE,
    NEGATIVE_TYPES,
    NEGATIVE_VIDEO_IDX,
    REGION,
    SAMPLING_PROBABILITY,
    SPLIT,
    SPLITS,
    TRAIN,
    USER_ID,
    USER_IDX,
    USERS,
    VIDEO_ID,
    VIDEO_IDX,
    VIDEOS,
)
from recsys_spark.history import example_histories
from recsys_spark.positives import (
    clean_interactions,
    clean_videos,
    first_positives,
    label_events,
    select_examples,
)
from recsys_spark.sampling import (
    SamplingTable,
    attach_sampling_probability,
    sample_negatives,
    user_pool,
)
from recsys_spark.settings import Config
from recsys_spark.splits import (
    SPLIT_RANK,
    Cutoffs,
    InteractionProfile,
    assign_splits,
    leave_last_n_cutoffs,
    profile_interactions,
    resolve_cutoffs,
)

logger = logging.getLogger(__name__)

# Columns of training/{train,validation,test}, in order (docs/lake.md).
TRAINING_COLUMNS = (
    USER_ID,
    USER_IDX,
    VIDEO_ID,
    VIDEO_IDX,
    EVENT_TS,
    HOUR_OF_DAY,
    DAY_OF_WEEK,
    AGE_BUCKET,
    GENDER,
    REGION,
    LANGUAGE,
    HISTORY_VIDEO_IDX,
    SAMPLING_PROBABILITY,
    NEGATIVE_VIDEO_IDX,
    NEGATIVE_TYPES,
)


@dataclass(frozen=True)
class RawTables:
    """The canonical tables and id maps that ingest writes."""

    users: DataFrame
    videos: DataFrame
    interactions: DataFrame
    user_ids: DataFrame
    video_ids: DataFrame


def read_raw_tables(spark: SparkSession, lake: io.Lake) -> RawTables:
    """Read ``raw/{users,videos,interactions}`` and ``id_maps/{users,videos}``.

    Raises:
      FileNotFoundError: A table is missing. The message names it and the ingest job.
    """

    def read(path: str, description: str) -> DataFrame:
        return io.read_table(spark, path, f"{description} (written by the ingest job)")

    return RawTables(
        users=read(lake.raw(USERS), "raw users table"),
        videos=read(lake.raw(VIDEOS), "raw videos table"),
        interactions=read(lake.raw(INTERACTIONS), "raw interactions table"),
        user_ids=read(lake.id_map(USERS), "user id map"),
        video_ids=read(lake.id_map(VIDEOS), "video id map"),
    )


@dataclass(frozen=True)
class SplitEvents:
    """Labeled interactions with their split.

    Attributes:
      events: The interactions with ``watch_fraction``, ``is_positive`` and ``split``,
        persisted; call :meth:`unpersist` when done.
      cutoffs: The split's time boundaries.
      profile: Row count, time range and non-finite input counts.
      user_cutoffs: Per-user validation and test starts (leave_last_n only), persisted.
    """

    events: DataFrame
    cutoffs: Cutoffs
    profile: InteractionProfile
    user_cutoffs: Optional[DataFrame] = None

    def unpersist(self) -> None:
        self.events.unpersist()
        if self.user_cutoffs is not None:
            self.user_cutoffs.unpersist()


def label_and_split(
    tables: RawTables, config: Config, cutoffs: Optional[Cutoffs] = None
) -> SplitEvents:
    """Clean, label and split the interactions (runs the profiling action).

    Args:
      tables: From :func:`read_raw_tables`.
      config: The run's config (``training`` section and ``seed``).
      cutoffs: Cut-offs to reuse (from ``features/manifest.json``); computed from the
        data and ``training`` when None.
    """
    profile = profile_interactions(tables.interactions)
    if cutoffs is None:
        cutoffs = resolve_cutoffs(config.training, profile.t0, profile.t_end)
    events = label_events(
        clean_interactions(tables.interactions),
        clean_videos(tables.videos),
        config.training.positives,
    )
    user_cutoffs = None
    if config.training.split == "leave_last_n":
        user_cutoffs = leave_last_n_cutoffs(events, config.training.leave_last_n).persist(
            StorageLevel.MEMORY_AND_DISK
        )
    events = assign_splits(events, config.training, cutoffs, config.seed, user_cutoffs)
    return SplitEvents(
        events=events.persist(StorageLevel.MEMORY_AND_DISK),
        cutoffs=cutoffs,
        profile=profile,
        user_cutoffs=user_cutoffs,
    )


def attach_indices(df: DataFrame, user_ids: DataFrame, video_ids: DataFrame) -> DataFrame:
    """Add ``user_idx`` and ``video_idx`` from the id maps; null where an id is unknown."""
    return df.join(user_ids.select(USER_ID, USER_IDX), on=USER_ID, how="left").join(
        video_ids.select(VIDEO_ID, VIDEO_IDX), on=VIDEO_ID, how="left"
    )


def indexed_first_positives(events: DataFrame, tables: RawTables) -> DataFrame:
    """Return first positives with ``user_idx``, ``video_idx`` and the video's ``category``.

    Pairs whose user or video is missing from the id maps are dropped.

    Returns:
      ``user_id``, ``video_id``, ``event_ts``, ``split``, ``user_idx``, ``video_idx``,
      ``category`` (null when the catalog has none).
    """
    categories = tables.videos.select(VIDEO_ID, CATEGORY)
    return (
        attach_indices(first_positives(events), tables.user_ids, tables.video_ids)
        .filter(F.col(USER_IDX).isNotNull() & F.col(VIDEO_IDX).isNotNull())
        .join(categories, on=VIDEO_ID, how="left")
    )


def train_examples(firsts: DataFrame) -> DataFrame:
    """Return the training split's examples from :func:`indexed_first_positives`.

    A training example is always its pair's first positive, because train is the
    earliest split of every pair whatever the value of ``training.repeat_positives``.
    """
    return firsts.filter(F.col(SPLIT) == TRAIN)


def impression_pool(events: DataFrame, firsts: DataFrame, tables: RawTables) -> DataFrame:
    """Return each user's impressed videos in time order, without the training positives.

    Each example later draws only from the impressions before its own time. Positives of
    the validation and test splits stay in the pool, because leaving them out would show
    training their labels; :func:`recsys_spark.sampling.sample_negatives` removes them
    from the examples of those splits.

    Args:
      events: Labeled interactions: ``user_id``, ``video_id``, ``event_ts``,
        ``event_type``.
      firsts: From :func:`indexed_first_positives` (every positive pair, with its split).
      tables: For the id maps.
    """
    impressions = attach_indices(
        events.filter(F.col(EVENT_TYPE) == "impression").select(USER_ID, VIDEO_ID, EVENT_TS),
        tables.user_ids,
        tables.video_ids,
    ).filter(F.col(USER_IDX).isNotNull() & F.col(VIDEO_IDX).isNotNull())
    return user_pool(impressions, firsts.filter(F.col(SPLIT) == TRAIN), since=EVENT_TS)


def split_histories(examples: DataFrame, firsts: DataFrame, method: str, length: int) -> DataFrame:
    """Add ``history_video_idx`` from the positives each example's split may see.

    Under the time and leave-last-n splits every positive before an example belongs to
    its split or an earlier one, so one pass suffices. The random split ignores time,
    so each split's histories read only the first positives of that split and the
    earlier ones.
    """
    if method != "random":
        return example_histories(examples, firsts, length)
    parts = []
    for split in SPLITS:
        visible = firsts.filter(F.col(SPLIT).isin(*SPLITS[: SPLIT_RANK[split] + 1]))
        parts.append(example_histories(examples.filter(F.col(SPLIT) == split), visible, length))
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def build_training_rows(
    split_events: SplitEvents,
    firsts: DataFrame,
    tables: RawTables,
    config: Config,
    frequencies: DataFrame,
    uniform: Optional[SamplingTable],
    popular: Optional[SamplingTable],
    mined: Optional[DataFrame] = None,
) -> DataFrame:
    """Assemble the rows of every split: one per positive example.

    Args:
      split_events: From :func:`label_and_split`.
      firsts: From :func:`indexed_first_positives`; read several times, so persist it.
      tables: From :func:`read_raw_tables`.
      config: The run's config.
      frequencies: ``features/item_frequencies``: ``video_idx``, ``probability``.
      uniform, popular: Alias tables (:func:`recsys_spark.sampling.uniform_table`,
        :func:`recsys_spark.sampling.popularity_table`).
      mined: Optional ``training/mined_negatives`` rows: ``user_idx``, ``video_idx``.

    Returns:
      ``TRAINING_COLUMNS`` plus ``split``. Examples whose user or video is missing from
      the id maps keep a null ``user_idx`` or ``video_idx`` and no history or negatives,
      so the caller can count them before dropping them.
    """
    training = config.training
    events = split_events.events
    examples = attach_indices(
        select_examples(events, training.repeat_positives), tables.user_ids, tables.video_ids
    )
    known = examples.filter(F.col(USER_IDX).isNotNull() & F.col(VIDEO_IDX).isNotNull())
    unknown = examples.filter(F.col(USER_IDX).isNull() | F.col(VIDEO_IDX).isNull())

    rows = split_histories(
        known, firsts, split_events.cutoffs.method, config.features.history_length
    )
    mined_pool = None
    if mined is not None:
        mined_pool = user_pool(mined)
    rows = sample_negatives(
        rows,
        positives=firsts,
        negatives=training.negatives,
        seed=config.seed,
        uniform=uniform,
        popular=popular,
        impression_pool=impression_pool(events, firsts, tables),
        mined_pool=mined_pool,
    )
    rows = rows.unionByName(unknown, allowMissingColumns=True)

    attributes = tables.users.select(
        USER_ID, *[F.col(name) for name in (AGE_BUCKET, GENDER, REGION, LANGUAGE)]
    )
    rows = attach_sampling_probability(rows, frequencies).join(attributes, on=USER_ID, how="left")
    return rows.select(
        USER_ID,
        USER_IDX,
        VIDEO_ID,
        VIDEO_IDX,
        EVENT_TS,
        F.hour(EVENT_TS).alias(HOUR_OF_DAY),
        F.weekday(EVENT_TS).alias(DAY_OF_WEEK),
        *[
            F.coalesce(F.col(name), F.lit("")).alias(name)
            for name in (AGE_BUCKET, GENDER, REGION, LANGUAGE)
        ],
        HISTORY_VIDEO_IDX,
        SAMPLING_PROBABILITY,
        NEGATIVE_VIDEO_IDX,
        NEGATIVE_TYPES,
        SPLIT,
    )


def layout_for_streaming(df: DataFrame, rows: int, rows_per_file: int, seed: int) -> DataFrame:
    """Spread rows over ``ceil(rows / rows_per_file)`` partitions in a seeded hash order.

    tf.data reads files in order and shuffles only within a buffer. Rows are therefore
    placed by a hash of (user, video, time) rather than by user or time, so each file is
    a well-mixed sample. A rerun with the same data and seed writes the same files.

    Args:
      df: ``user_idx``, ``video_idx``, ``event_ts`` and any other columns.
      rows: The row count of ``df`` (the caller has counted it).
      rows_per_file: Target rows per file; also pass it as ``maxRecordsPerFile``.
      seed: ``config.seed``.
    """
    files = max(1, math.ceil(rows / rows_per_file))
    key = F.xxhash64(F.lit(seed), F.lit("layout"), F.col(USER_IDX), F.col(VIDEO_IDX), EVENT_TS)
    return (
        df.withColumn("_layout", key)
        .repartition(files, "_layout")
        .sortWithinPartitions("_layout")
        .drop("_layout")
    )
