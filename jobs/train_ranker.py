"""Train the configured rankers on the validation period, compare them, save the best one.

Reads candidates/validation, features/{users,videos}/validation, features/manifest.json
and raw/{users,videos,interactions} with id_maps (for the positive labels). Writes
models/ranker/<version>/ (the chosen ranker and metadata.json with the comparison table)
and models/ranker/LATEST, as described in docs/lake.md. The version is the run id
(see recsys_spark.versions).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import posixpath
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark import io, tracking
from recsys_spark.cli import job_main
from recsys_spark.columns import LABEL, SPLIT, TRAIN, USER_ID, VALIDATION
from recsys_spark.ranking.artifacts import VERSIONS, save_ranker
from recsys_spark.ranking.dataset import FEATURE_COLUMNS, RANKER_SPLIT, build_ranking_dataset
from recsys_spark.ranking.selection import train_and_select
from recsys_spark.runs import Run
from recsys_spark.splits import Cutoffs
from recsys_spark.training_set import label_and_split, read_raw_tables

logger = logging.getLogger(__name__)


def _read_snapshot(run: Run, snapshot: str) -> dict[str, DataFrame]:
    spark, lake = run.spark, run.lake
    return {
        "candidates": io.read_table(
            spark,
            posixpath.join(lake.candidates(), snapshot),
            f"candidates/{snapshot} (written by generate_candidates)",
        ),
        "user_features": io.read_table(
            spark, lake.features("users", snapshot), f"features/users/{snapshot}"
        ),
        "video_features": io.read_table(
            spark, lake.features("videos", snapshot), f"features/videos/{snapshot}"
        ),
    }


def _read_cutoffs(run: Run) -> Cutoffs:
    manifest = io.read_json(run.spark, run.lake.features("manifest.json"))
    if manifest.get("split") != run.config.training.split:
        raise ValueError(
            f"features/manifest.json was built with training.split={manifest.get('split')!r} "
            f"but this run uses {run.config.training.split!r}. Rerun build_features and "
            "generate_candidates with the same config first."
        )
    return Cutoffs.from_json(manifest)


def dataset_counts(dataset: DataFrame) -> dict[str, dict[str, int]]:
    """Return rows, users and positives of each ranker split (one Spark action)."""
    rows = dataset.groupBy(RANKER_SPLIT).agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct(USER_ID).alias("users"),
        F.sum(LABEL).alias("positives"),
    )
    counts = {name: {"rows": 0, "users": 0, "positives": 0} for name in (TRAIN, VALIDATION)}
    for row in rows.collect():
        counts[row[RANKER_SPLIT]] = {
            "rows": int(row["rows"]),
            "users": int(row["users"]),
            "positives": int(row["positives"] or 0),
        }
    return counts


def run(run: Run) -> dict[str, Any]:
    spark, config, lake = run.spark, run.config, run.lake
    cutoffs = _read_cutoffs(run)
    snapshot = _read_snapshot(run, VALIDATION)
    split_events = label_and_split(read_raw_tables(spark, lake), config, cutoffs)
    dataset = None
    try:
        label_events = split_events.events.where(F.col(SPLIT) == VALIDATION)
        dataset = build_ranking_dataset(
            snapshot["candidates"],
            snapshot["user_features"],
            snapshot["video_features"],
            label_events,
            config.ranker.validation_fraction,
            config.seed,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        counts = dataset_counts(dataset)
        logger.info("Ranking dataset: %s", counts)
        if counts[TRAIN]["positives"] == 0:
            raise ValueError(
                "The ranking dataset has no positive label for ranker-train users: no user "
                "active in the validation period had a positive among their candidates "
                f"(counts {counts}). Check that candidates/validation exists for the "
                "validation period's users, or lengthen it (training.validation_fraction)."
            )
        selection = train_and_select(dataset, config.ranker, config.seed)
    finally:
        if dataset is not None:
            dataset.unpersist()
        split_events.unpersist()

    version = VERSIONS.new_version(run.spark, run.lake, run.run_id)
    period = cutoffs.to_json()
    metadata = {
        "run_id": run.run_id,
        "k": selection.k,
        "selection_metric": f"ndcg@{selection.k}",
        "comparison": selection.comparison,
        # Null start and end for the leave_last_n and random splits, which have no
        # global validation period.
        "label_period": {"split": period["split"], "start": period["t1"], "end": period["t2"]},
        "dataset": counts,
        "ranker_config": dataclasses.asdict(config.ranker),
    }
    path = save_ranker(spark, lake, version, selection.chosen, metadata)
    _track(run, metadata)
    return {
        "model_version": version,
        "chosen": selection.chosen.name,
        "k": selection.k,
        "comparison": selection.comparison,
        "dataset": counts,
        "features": len(FEATURE_COLUMNS),
        "path": path,
    }


def _track(run: Run, metadata: dict[str, Any]) -> None:
    """Log the comparison to MLflow when ``mlflow.enabled`` is true."""
    metrics = {}
    for row in metadata["comparison"]:
        for name in ("ndcg_at_k", "auc", "train_seconds"):
            if row[name] is not None:
                metrics[f"{row['model']}.{name}"] = row[name]
    with tempfile.TemporaryDirectory(prefix="ranker-metadata-") as folder:
        metadata_file = os.path.join(folder, "metadata.json")
        with open(metadata_file, "w", encoding="utf-8") as handle:
            json.dump(metadata, handle, indent=2, default=str)
        tracking.log_training_run(
            run.config,
            run.run_id,
            "train_ranker",
            params=metadata["ranker_config"],
            metrics=metrics,
            artifacts={"metadata.json": metadata_file},
        )


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("train_ranker", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
