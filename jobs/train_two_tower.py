"""Train the TFRS two-tower retrieval model and export it to models/two_tower/<version>/.

Reads training/{train,validation}, features/videos/<two_tower.snapshot>,
features/item_frequencies, features/vocabularies and features/manifest.json. Writes the
query, candidate and retrieval SavedModels, the corpus embeddings, checkpoints,
TensorBoard logs and metadata.json into a local folder, uploads it as one version
(the run id, or ``<run id>-2`` for a pipeline's second round), then points
models/two_tower/LATEST at it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pyspark.sql import SparkSession

from recsys_spark import columns as C
from recsys_spark import io, tracking
from recsys_spark.cli import job_main
from recsys_spark.models import artifacts, data, export
from recsys_spark.models.inputs import QUERY_INPUTS
from recsys_spark.models.train import TrainingInputs, TrainingResult, train_two_tower
from recsys_spark.runs import Run
from recsys_spark.settings import Config, TwoTowerConfig

logger = logging.getLogger(__name__)

VIDEO_COLUMNS = (
    C.VIDEO_ID,
    C.VIDEO_IDX,
    C.CATEGORY,
    C.LANGUAGE,
    C.DURATION_BUCKET,
    C.TAGS,
    C.TITLE_TOKENS,
    C.AGE_DAYS,
    C.AS_OF,
)
# Validation rows whose queries measure the ScaNN index against exact search.
SCANN_CHECK_QUERIES = 1000
# Metrics copied from metadata.json into the run summary.
SUMMARY_METRICS = (
    "train_rows",
    "validation_rows",
    "corpus_videos",
    "epochs_run",
    "best_epoch",
    "recall_k",
    "best_recall_at_k",
    "untrained_recall_at_k",
    "popularity_recall_at_k",
    "train_examples_per_second",
    "retrieval_recall_vs_exact",
)


def _arrow_path(spark: SparkSession, path: str) -> str:
    """Return a lake path in a form pyarrow opens: a local path, or the URI otherwise."""
    qualified = io.qualified_path(spark, path)
    if qualified.startswith("file:"):
        return urlparse(qualified).path
    return qualified


def _manifest_count(manifest: dict[str, Any], key: str, path: str) -> int:
    value = manifest.get(key)
    if not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"{path} has {key}={value!r}; expected a positive integer (max index + 1). "
            "Rerun build_features."
        )
    return value


def read_manifest(spark: SparkSession, lake: io.Lake) -> dict[str, Any]:
    path = lake.features("manifest.json")
    if not io.exists(spark, path):
        raise FileNotFoundError(f"{path} not found. Run build_features first.")
    return io.read_json(spark, path)


def read_training_inputs(spark: SparkSession, lake: io.Lake, snapshot: str) -> TrainingInputs:
    """Locate the training splits and load the corpus, frequencies and vocabularies."""
    manifest_path = lake.features("manifest.json")
    manifest = read_manifest(spark, lake)
    videos = io.read_table(spark, lake.features("videos", snapshot), f"features/videos/{snapshot}")
    missing = [name for name in VIDEO_COLUMNS if name not in videos.columns]
    if missing:
        raise ValueError(
            f"features/videos/{snapshot} lacks the columns {missing} (docs/lake.md). "
            "Rebuild it with build_features."
        )
    frequencies = io.read_table(spark, lake.features("item_frequencies"), "item_frequencies")
    for split in (C.TRAIN, C.VALIDATION):
        if not io.exists(spark, lake.training(split)):
            raise FileNotFoundError(
                f"training/{split} not found at {lake.training(split)}. Run build_training_set "
                "first."
            )
    return TrainingInputs(
        train_path=_arrow_path(spark, lake.training(C.TRAIN)),
        validation_path=_arrow_path(spark, lake.training(C.VALIDATION)),
        videos=videos.select(*VIDEO_COLUMNS).toPandas(),
        item_frequencies=frequencies.select(C.VIDEO_IDX, C.PROBABILITY).toPandas(),
        vocabularies={
            name: artifacts.read_vocabulary(spark, lake, name)
            for name in artifacts.VOCABULARY_NAMES
        },
        num_users=_manifest_count(manifest, "num_users", manifest_path),
        num_videos=_manifest_count(manifest, "num_videos", manifest_path),
    )


def sample_query_inputs(
    validation_path: str, history_length: int, rows: int, read_batch_rows: int
) -> dict[str, np.ndarray] | None:
    """Return the query inputs of the first ``rows`` validation rows, or None if it is empty."""
    row_format = data.RowFormat(history_length, sampling_probability=False)
    chunks = data.iter_row_chunks(validation_path, row_format, read_batch_rows, max_rows=rows)
    batches = list(chunks)
    if not batches:
        return None
    return {name: np.concatenate([b[name] for b in batches]) for name in QUERY_INPUTS}


def _finite(value: Any) -> Any:
    """Return None for NaN or infinite floats, which JSON cannot hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_metadata(
    version: str,
    run_id: str,
    settings: TwoTowerConfig,
    result: TrainingResult,
    inputs: TrainingInputs,
    export_facts: dict[str, Any],
) -> dict[str, Any]:
    metrics = {key: _finite(value) for key, value in result.metrics.items()}
    metrics["epochs"] = result.epochs
    metrics["retrieval_recall_vs_exact"] = _finite(export_facts["retrieval_recall_vs_exact"])
    return {
        "version": version,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": settings.mode,
        "embedding_dim": settings.embedding_dim,
        "history_length": result.history_length,
        "tags_length": settings.tags_length,
        "title_length": settings.title_length,
        "retrieval_k": export_facts["retrieval_k"],
        "scann": export_facts["scann"],
        "snapshot": settings.snapshot,
        "num_users": result.num_users,
        "num_videos": result.num_videos,
        "num_embeddings": export_facts["num_embeddings"],
        "vocabulary_sizes": {name: len(values) for name, values in inputs.vocabularies.items()},
        "day_of_week": "0 = Monday ... 6 = Sunday (Spark weekday), UTC",
        "metrics": metrics,
        "inputs": {
            artifacts.QUERY_DIR: export.describe_signature(export.QUERY_SPECS),
            artifacts.CANDIDATE_DIR: export.describe_signature(export.CANDIDATE_SPECS),
            artifacts.RETRIEVAL_DIR: export.describe_signature(export.QUERY_SPECS),
        },
        "config": dataclasses.asdict(settings),
    }


def _train_and_export(
    run: Run, inputs: TrainingInputs, history_length: int, version: str, version_dir: str
) -> dict[str, Any]:
    settings = run.config.two_tower
    # Without repeat positives a held-out video is never one the user watched before, so
    # validation ranks like serving: without the watch history.
    result = train_two_tower(
        inputs,
        settings,
        history_length,
        run.config.seed,
        version_dir,
        exclude_history=not run.config.training.repeat_positives,
    )
    sample = sample_query_inputs(
        inputs.validation_path,
        history_length,
        SCANN_CHECK_QUERIES,
        settings.read_batch_rows,
    )
    facts = export.export_model(
        result.query_tower,
        result.candidate_tower,
        inputs.videos,
        version_dir,
        settings.tags_length,
        settings.title_length,
        settings.retrieval_k,
        {
            "num_leaves": settings.scann_num_leaves,
            "leaves_to_search": settings.scann_leaves_to_search,
            "reorder_candidates": settings.scann_reorder_candidates,
        },
        sample_queries=sample,
    )
    metadata = build_metadata(version, run.run_id, settings, result, inputs, facts)
    export.write_metadata(version_dir, metadata)
    return metadata


def resolve_history_length(spark: SparkSession, lake: io.Lake, config: Config) -> int:
    """Return two_tower.history_length, else the width build_features wrote.

    The manifest's width wins over features.history_length, which may have changed
    since the features were built.
    """
    if config.two_tower.history_length:
        return config.two_tower.history_length
    manifest = read_manifest(spark, lake)
    return manifest.get("history_length") or config.features.history_length


def _publish(run: Run, version: str, version_dir: str, metadata: dict[str, Any]) -> None:
    """Upload the version folder, point LATEST at it and log it to MLflow when enabled."""
    destination = artifacts.version_path(run.lake, version)
    io.upload_directory(run.spark, version_dir, destination)
    artifacts.write_latest(run.spark, run.lake, version)
    logger.info("Two-tower model %s written to %s", version, destination)
    tracking.log_training_run(
        run.config,
        run.run_id,
        "train_two_tower",
        params=dataclasses.asdict(run.config.two_tower),
        metrics=_numeric(metadata["metrics"]),
        artifacts={artifacts.METADATA_FILE: os.path.join(version_dir, artifacts.METADATA_FILE)},
    )


def run(run: Run) -> dict[str, Any]:
    settings = run.config.two_tower
    history_length = resolve_history_length(run.spark, run.lake, run.config)
    inputs = read_training_inputs(run.spark, run.lake, settings.snapshot)

    # A pipeline's hard-negative round trains a second model in the same run.
    version = artifacts.new_version(run.spark, run.lake, run.run_id)
    work_dir = settings.work_dir or tempfile.mkdtemp(prefix="two-tower-")
    version_dir = os.path.join(work_dir, version)
    try:
        metadata = _train_and_export(run, inputs, history_length, version, version_dir)
        _publish(run, version, version_dir, metadata)
    finally:
        if not settings.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    metrics = metadata["metrics"]
    return {
        "model_version": version,
        "mode": settings.mode,
        "num_embeddings": metadata["num_embeddings"],
        **{key: metrics[key] for key in SUMMARY_METRICS},
    }


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("train_two_tower", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
