"""Spark entry points: the canonical tables and the ground truth of a synthetic dataset."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark.settings import Config
from recsys_spark.synthetic.catalog import Catalog, build_catalog
from recsys_spark.synthetic.events import simulate_events
from recsys_spark.synthetic.spec import SyntheticSpec
from recsys_spark.synthetic.users import tastes_frame, users_frame
from recsys_spark.synthetic.videos import video_truth_frame, videos_frame
from recsys_spark.synthetic.world import World, build_world

logger = logging.getLogger(__name__)

# Without synthetic.partitions, a table gets TASKS_PER_CORE tasks per default-parallelism
# slot, so that blocks of uneven cost (heavy users) balance. It also gets at least one task
# per ROWS_PER_TASK expected rows, because a cluster under dynamic allocation may start with
# few cores. It never gets more tasks than blocks.
TASKS_PER_CORE = 4
ROWS_PER_TASK = 1_000_000

USER_TASTES_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField("topic", T.StringType(), False),
        T.StructField(C.CATEGORY, T.StringType(), False),
        T.StructField("weight", T.DoubleType(), False),
        T.StructField("rank", T.IntegerType(), False),
    ]
)

VIDEO_TRUTH_SCHEMA = T.StructType(
    [
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField("topic", T.StringType(), False),
        T.StructField("popularity", T.DoubleType(), False),
        T.StructField("original_video_id", T.StringType(), True),
    ]
)


def _blocks_frame(
    spark: SparkSession,
    spec: SyntheticSpec,
    num_blocks: int,
    expected_rows: int,
    make_frame: Callable[[int], pd.DataFrame],
    schema: T.StructType,
) -> DataFrame:
    """Return the rows of ``make_frame(block)`` for every block, as one DataFrame.

    Each block's rows depend only on the block index, so the partition count and any
    recomputation of a partition leave the rows unchanged.
    """
    partitions = spec.partitions or max(
        TASKS_PER_CORE * spark.sparkContext.defaultParallelism,
        -(-expected_rows // ROWS_PER_TASK),
    )
    partitions = max(1, min(partitions, num_blocks))

    def generate_blocks(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for block in batch["id"].tolist():
                frame = make_frame(block)
                if len(frame):
                    yield frame

    return spark.range(0, num_blocks, 1, partitions).mapInPandas(generate_blocks, schema)


def _with_catalog(
    make_frame: Callable[..., pd.DataFrame],
    spec: SyntheticSpec,
    world: World,
    catalog_handle: Broadcast,
) -> Callable[[int], pd.DataFrame]:
    """Bind a block function of (spec, world, catalog, block) to the broadcast catalog."""

    def make(block: int) -> pd.DataFrame:
        return make_frame(spec, world, catalog_handle.value, block)

    return make


def _prepare(spark: SparkSession, config: Config) -> tuple[SyntheticSpec, World, Broadcast]:
    """Resolve the spec, build the world and the catalog, and broadcast the catalog."""
    spec = SyntheticSpec.from_config(config)
    world = build_world(spec)
    catalog: Catalog = build_catalog(spec, world)
    logger.info(
        "Synthetic %s (seed %d): %d users, %d videos, target %d events, %d topics, %d creators",
        spec.size,
        spec.seed,
        spec.users,
        spec.videos,
        spec.events,
        spec.topics,
        catalog.num_creators,
    )
    # NOTE: a broadcast needs a classic SparkContext; Spark Connect sessions have none.
    return spec, world, spark.sparkContext.broadcast(catalog)


def generate(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """Generate the users, videos and interactions of the synthetic video platform.

    The size comes from ``config.data.size`` and the ``synthetic`` section, the random
    draws from ``config.seed``. The returned DataFrames are lazy: each action reruns the
    generation and gets the same rows.

    Args:
      spark: The session.
      config: The run's config.

    Returns:
      ``{"users", "videos", "interactions"}`` DataFrames whose schemas equal
      ``columns.USERS_SCHEMA``, ``columns.VIDEOS_SCHEMA`` and
      ``columns.INTERACTIONS_SCHEMA``.

    Raises:
      ValueError: The size tier, seed or a ``synthetic`` setting is invalid.

    Note:
      numpy promises the same random stream for the same seed only on the same numpy
      build (the ``numpy.random`` compatibility policy), so identical tables need the same
      numpy version on the driver and every executor.
    """
    spec, world, catalog_handle = _prepare(spark, config)
    return {
        C.USERS: _blocks_frame(
            spark,
            spec,
            spec.user_blocks,
            spec.users,
            functools.partial(users_frame, spec, world),
            C.USERS_SCHEMA,
        ),
        C.VIDEOS: _blocks_frame(
            spark,
            spec,
            spec.video_blocks,
            spec.videos,
            _with_catalog(videos_frame, spec, world, catalog_handle),
            C.VIDEOS_SCHEMA,
        ),
        C.INTERACTIONS: _blocks_frame(
            spark,
            spec,
            spec.user_blocks,
            spec.events,
            _with_catalog(simulate_events, spec, world, catalog_handle),
            C.INTERACTIONS_SCHEMA,
        ),
    }


def ground_truth(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """Return the latent structure behind :func:`generate` for the same config.

    Returns:
      ``user_tastes``: ``user_id``, ``topic``, ``category``, ``weight`` (the topic's share
        of the user's taste), ``rank`` (1 = largest), one row per favorite topic; every
        topic not listed has the share (1 - sum of the listed weights) / (topics - listed).
      ``videos``: ``video_id``, ``topic``, ``popularity`` (relative chance of being shown,
        before freshness), ``original_video_id`` (null unless a re-upload).
      ``near_duplicates``: ``video_id``, ``original_video_id`` of every re-upload.
    """
    spec, world, catalog_handle = _prepare(spark, config)
    videos = _blocks_frame(
        spark,
        spec,
        spec.video_blocks,
        spec.videos,
        _with_catalog(video_truth_frame, spec, world, catalog_handle),
        VIDEO_TRUTH_SCHEMA,
    )
    return {
        "user_tastes": _blocks_frame(
            spark,
            spec,
            spec.user_blocks,
            spec.users,
            functools.partial(tastes_frame, spec, world),
            USER_TASTES_SCHEMA,
        ),
        "videos": videos,
        "near_duplicates": videos.where(F.col("original_video_id").isNotNull()).select(
            C.VIDEO_ID, "original_video_id"
        ),
    }
