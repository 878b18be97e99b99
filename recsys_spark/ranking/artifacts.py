"""Saved rankers: ``models/ranker/<version>/`` with the model and ``metadata.json``.

Layout of a version folder:

- ``model/``: the chosen ranker (a Spark ML PipelineModel, or a TensorFlow SavedModel
  for RankNet); absent when the retrieval order was chosen.
- ``metadata.json``: ``version``, ``model`` (the ranker's name), ``output`` (for Spark
  ML rankers: ``probability`` or ``prediction``), ``feature_columns``, ``k``,
  ``comparison`` (the comparison table), plus what the caller adds (run id, counts, the
  label period).

``models/ranker/LATEST`` contains the newest version. A version folder is written to a
staging folder and renamed into place before LATEST changes, so LATEST never names a
partial version.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from pyspark.sql import SparkSession

from recsys_spark import io
from recsys_spark.ranking.base import RETRIEVAL_ORDER, Ranker, RetrievalOrder, SparkMLRanker
from recsys_spark.ranking.dataset import FEATURE_COLUMNS
from recsys_spark.ranking.neural import RANKNET, RankNetRanker
from recsys_spark.versions import ModelVersions

logger = logging.getLogger(__name__)

RANKER = "ranker"
VERSIONS = ModelVersions(RANKER, "trained ranker", "train_ranker")
MODEL_FOLDER = "model"
METADATA_FILE = "metadata.json"


def save_ranker(
    spark: SparkSession,
    lake: io.Lake,
    version: str,
    ranker: Ranker,
    metadata: dict[str, Any],
) -> str:
    """Write ``ranker`` and its metadata as ``models/ranker/<version>`` and point LATEST at it.

    Returns:
      The version folder's path.
    """
    destination = VERSIONS.path(lake, version)
    staging = io.new_staging_path(spark, destination)
    record = {
        **metadata,
        "version": version,
        "model": ranker.name,
        "feature_columns": list(FEATURE_COLUMNS),
    }
    if isinstance(ranker, SparkMLRanker):
        record["output"] = ranker.output
    try:
        if ranker.name != RETRIEVAL_ORDER:
            ranker.save(spark, posixpath.join(staging, MODEL_FOLDER))
        io.write_json(spark, posixpath.join(staging, METADATA_FILE), record)
        io.commit_directory(spark, staging, destination)
    except Exception:
        io.delete(spark, staging)
        raise
    VERSIONS.set_latest(spark, lake, version)
    logger.info("Saved ranker %s as version %s at %s", ranker.name, version, destination)
    return destination


def resolve_version(spark: SparkSession, lake: io.Lake, version: str | None = None) -> str:
    """Return ``version``, or the one in ``models/ranker/LATEST`` when it is None."""
    return VERSIONS.resolve(spark, lake, version)


def load_metadata(spark: SparkSession, lake: io.Lake, version: str | None = None) -> dict[str, Any]:
    """Return ``metadata.json`` of the ranker ``version`` (LATEST when None)."""
    version = resolve_version(spark, lake, version)
    path = posixpath.join(VERSIONS.path(lake, version), METADATA_FILE)
    try:
        return io.read_json(spark, path)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Ranker version {version!r} not found: {path} does not exist. List "
            f"{lake.models(RANKER)} for the saved versions."
        ) from error


def load_ranker(
    spark: SparkSession, lake: io.Lake, version: str | None = None
) -> tuple[Ranker, dict[str, Any]]:
    """Load the ranker ``version`` (LATEST when None) and return it with its metadata.

    Raises:
      FileNotFoundError: No such version, or no LATEST.
      ValueError: The ranker was trained on other feature columns than this code builds.
    """
    metadata = load_metadata(spark, lake, version)
    if metadata["feature_columns"] != list(FEATURE_COLUMNS):
        raise ValueError(
            f"Ranker version {metadata['version']!r} was trained on the feature columns "
            f"{metadata['feature_columns']}, but this code builds {list(FEATURE_COLUMNS)}. "
            "Retrain it with the train_ranker job."
        )
    name = metadata["model"]
    model_path = posixpath.join(VERSIONS.path(lake, metadata["version"]), MODEL_FOLDER)
    if name == RETRIEVAL_ORDER:
        ranker: Ranker = RetrievalOrder()
    elif name == RANKNET:
        ranker = RankNetRanker.load(spark, model_path, FEATURE_COLUMNS)
    elif "output" in metadata:
        ranker = SparkMLRanker.load(name, model_path, metadata["output"])
    else:
        raise ValueError(
            f"Ranker version {metadata['version']!r} has model {name!r} without an "
            "'output' entry in its metadata.json; retrain it with the train_ranker job."
        )
    return ranker, metadata
