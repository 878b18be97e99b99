"""Mine hard negatives for a second two-tower training round.

Ships ``models/index/<version>/`` (``candidates.index_version``, or LATEST) to the
executors, which embed every training user of ``features/users/<mining.snapshot>`` and
search the index. The user's training positives are removed from the neighbours, the
first ``mining.skip_top`` are skipped and the next ``mining.num_negatives`` are written
to ``training/mined_negatives`` (``user_id``, ``user_idx``, ``video_idx``).
build_training_set reads that table when ``training.negatives.mined`` is above 0.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional, Sequence

from pyspark.sql import functions as F

from recsys_spark import io
from recsys_spark.cli import job_main
from recsys_spark.columns import USER_ID
from recsys_spark.retrieval import artifacts
from recsys_spark.retrieval.mining import MiningSpec, mine_hard_negatives, mining_inputs
from recsys_spark.retrieval.serving import TWO_TOWER_KEY, ship_index
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)

MINED_NEGATIVES = "mined_negatives"


def run(run: Run) -> dict[str, Any]:
    spark, lake, config = run.spark, run.lake, run.config
    index_version = artifacts.resolve_version(spark, lake, config.candidates.index_version)
    metadata = artifacts.read_metadata(spark, lake, index_version)
    bundle_name = ship_index(spark, artifacts.version_path(lake, index_version))
    snapshot = config.mining.snapshot
    users = io.read_table(spark, lake.features("users", snapshot), f"features/users/{snapshot}")
    train = io.read_table(spark, lake.training("train"), "training/train")
    spec = MiningSpec.from_config(
        config.mining,
        bundle_name,
        overfetch=config.candidates.overfetch,
        batch_size=config.candidates.batch_size,
        tf_threads=config.candidates.tf_threads,
    )
    partitions = config.candidates.partitions or 2 * spark.sparkContext.defaultParallelism
    loads = spark.sparkContext.accumulator(0)
    path = lake.training(MINED_NEGATIVES)
    logger.info("Mining hard negatives with index %s into %s", index_version, path)
    io.write_table(mine_hard_negatives(mining_inputs(users, train), spec, partitions, loads), path)

    per_user = io.read_table(spark, path).groupBy(USER_ID).count()
    stats = per_user.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("count").alias("rows"),
        F.min("count").alias("min"),
        F.max("count").alias("max"),
    ).first()
    return {
        "index_version": index_version,
        "model_version": metadata[TWO_TOWER_KEY]["version"],
        "snapshot": snapshot,
        "users": stats["users"],
        "rows": stats["rows"] or 0,
        "negatives_per_user": {"min": stats["min"], "max": stats["max"]},
        "skip_top": config.mining.skip_top,
        "index_loads": loads.value,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("mine_hard_negatives", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
