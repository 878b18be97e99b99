"""Generate candidates per user for each snapshot: two-tower ANN plus the extra sources.

Ships ``models/index/<version>/`` (``candidates.index_version``, or LATEST) to the
executors, which embed the users of ``features/users/<snapshot>`` with its query
SavedModel and search its ScaNN index. Extra sources (co-visitation, popular in the
user's region, fresh uploads) are computed in Spark from the events that the snapshot
may see. These are the events before its ``as_of`` time, and with the random split only
those of its visible splits (train for ``validation``, train and validation for ``test``).
Already-watched videos and videos not yet uploaded at the snapshot are excluded, and every
candidate gets its ``co_visitation_score``.
Writes ``candidates/<snapshot>`` for every snapshot in ``candidates.snapshots``.
"""

from __future__ import annotations

import logging
import posixpath
import sys
from typing import Any, Optional, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark import io
from recsys_spark.cli import job_main
from recsys_spark.columns import (
    CANDIDATES_SCHEMA,
    HISTORY_VIDEO_IDX,
    INTERACTIONS,
    MODEL_VERSION,
    RETRIEVAL_RANK,
    RUN_ID,
    SOURCE,
    SOURCES,
    SPLIT,
    TWO_TOWER,
    USER_ID,
    VIDEO_IDX,
)
from recsys_spark.retrieval import artifacts, cooccurrence, sources
from recsys_spark.retrieval.candidates import CandidateSpec, candidate_inputs, retrieve_candidates
from recsys_spark.retrieval.serving import TWO_TOWER_KEY, ship_index
from recsys_spark.runs import Run
from recsys_spark.settings import TrainingConfig
from recsys_spark.splits import assign_random_split, visible_splits

logger = logging.getLogger(__name__)


def snapshot_candidates(
    run: Run, snapshot: str, interactions: DataFrame, bundle_name: str, model_version: str, loads
) -> DataFrame:
    """Return the candidates of one snapshot in :data:`CANDIDATES_SCHEMA` (lazy, not written)."""
    spark, lake, config = run.spark, run.lake, run.config.candidates
    users = io.read_table(spark, lake.features("users", snapshot), f"features/users/{snapshot}")
    videos = io.read_table(spark, lake.features("videos", snapshot), f"features/videos/{snapshot}")
    # Both lists are the same for every user and short, so they travel inside the task.
    fresh = sources.fresh_videos(videos, config.fresh_max_age_days, config.fresh + config.overfetch)
    fresh_video_idx = fresh.first()[sources.FRESH_VIDEO_IDX]
    unreleased = [row[VIDEO_IDX] for row in sources.unreleased_videos(videos).collect()]
    spec = CandidateSpec.from_config(config, bundle_name, fresh_video_idx, unreleased)

    extra = config.overfetch
    watched = sources.watched_videos(interactions, users, videos, config.exclude_event_types)
    table = sources.co_visitation_table(
        users, config.co_visitation_history, config.co_visitation_neighbors
    )
    co_visitation = sources.co_visitation_candidates(
        users, table, config.co_visitation_history, config.co_visitation + extra
    )
    popular_arguments = (
        interactions,
        users,
        videos,
        config.popular_window_days,
        config.popular_region + extra,
        config.popular_event_types,
    )
    inputs = candidate_inputs(
        users,
        watched,
        co_visitation,
        sources.popular_by_region(*popular_arguments),
        sources.popular_overall(*popular_arguments),
    )
    partitions = config.partitions or 2 * spark.sparkContext.defaultParallelism
    retrieved = retrieve_candidates(inputs, spec, partitions, loads)
    scores = cooccurrence.co_visitation_scores(users, table, config.co_visitation_history)
    retrieved = cooccurrence.add_co_visitation_score(retrieved, scores, videos)
    return retrieved.select(
        *retrieved.columns,
        F.lit(model_version).alias(MODEL_VERSION),
        F.lit(run.run_id).alias(RUN_ID),
    ).select(*CANDIDATES_SCHEMA.fieldNames())


def visible_interactions(
    interactions: DataFrame, training: TrainingConfig, seed: int, snapshot: str
) -> DataFrame:
    """Keep the interactions of the splits that ``snapshot`` may see.

    The time and leave-last-n splits need nothing here: their snapshots' ``as_of`` times
    already cut every later event. The random split puts every event before the snapshot
    time, so the split itself must keep the validation pairs (the ranker's labels) out
    of the validation snapshot's watched set and popularity counts.
    """
    if training.split != "random":
        return interactions
    split = assign_random_split(
        interactions, training.validation_fraction, training.test_fraction, seed
    )
    return split.where(F.col(SPLIT).isin(list(visible_splits(snapshot)))).drop(SPLIT)


def candidate_counts(candidates: DataFrame, users: DataFrame, num_candidates: int) -> dict:
    """Summarise a written candidates table against the snapshot's users."""
    per_user = candidates.groupBy(USER_ID).agg(
        F.count(F.lit(1)).alias("candidates"),
        F.sum(F.array_contains(SOURCES, TWO_TOWER).cast("int")).alias("two_tower"),
        F.max(RETRIEVAL_RANK).alias("max_rank"),
    )
    stats = per_user.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("candidates").alias("rows"),
        F.min("candidates").alias("min"),
        F.avg("candidates").alias("mean"),
        F.max("candidates").alias("max"),
        F.sum((F.col("two_tower") < num_candidates).cast("int")).alias("short_two_tower"),
        F.max("max_rank").alias("max_rank"),
    ).first()
    by_source = (
        candidates.select(F.explode(SOURCES).alias("found_by"), SOURCE)
        .groupBy("found_by")
        .agg(
            F.count(F.lit(1)).alias("found"),
            F.sum((F.col("found_by") == F.col(SOURCE)).cast("int")).alias("primary"),
        )
        .collect()
    )
    user_stats = users.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum((F.coalesce(F.size(HISTORY_VIDEO_IDX), F.lit(0)) <= 0).cast("int")).alias("cold"),
    ).first()
    return {
        "users": user_stats["users"],
        "users_without_history": user_stats["cold"] or 0,
        "users_with_candidates": stats["users"],
        "rows": stats["rows"] or 0,
        "candidates_per_user": {
            "min": stats["min"],
            "mean": round(stats["mean"] or 0.0, 2),
            "max": stats["max"],
        },
        "users_short_of_two_tower": stats["short_two_tower"] or 0,
        "primary_source": {row["found_by"]: row["primary"] for row in sorted(by_source)},
        "found_by_source": {row["found_by"]: row["found"] for row in sorted(by_source)},
        "max_retrieval_rank": stats["max_rank"],
    }


def run(run: Run) -> dict[str, Any]:
    spark, lake, config = run.spark, run.lake, run.config.candidates
    index_version = artifacts.resolve_version(spark, lake, config.index_version)
    metadata = artifacts.read_metadata(spark, lake, index_version)
    model_version = metadata[TWO_TOWER_KEY]["version"]
    bundle_name = ship_index(spark, artifacts.version_path(lake, index_version))
    raw_interactions = io.read_table(spark, lake.raw(INTERACTIONS), "raw interactions")
    loads = spark.sparkContext.accumulator(0)
    summary: dict[str, Any] = {
        "index_version": index_version,
        "model_version": model_version,
        "snapshots": {},
    }
    for snapshot in config.snapshots:
        path = posixpath.join(lake.candidates(), snapshot)
        logger.info("Generating %s candidates with index %s", snapshot, index_version)
        interactions = visible_interactions(
            raw_interactions, run.config.training, run.config.seed, snapshot
        )
        io.write_table(
            snapshot_candidates(run, snapshot, interactions, bundle_name, model_version, loads),
            path,
        )
        users = io.read_table(spark, lake.features("users", snapshot))
        summary["snapshots"][snapshot] = candidate_counts(
            io.read_table(spark, path), users, config.num_candidates
        )
    # Loads across both snapshots: at most one per Python worker that ran a task.
    summary["index_loads"] = loads.value
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("generate_candidates", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
