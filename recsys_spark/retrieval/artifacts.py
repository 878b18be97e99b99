"""Lake paths of the index versions: ``models/index/<version>/`` and ``LATEST``.

Paths go through :mod:`recsys_spark.io`, because the lake may be on HDFS or S3.
"""

from __future__ import annotations

import posixpath
from typing import Any, Optional

from pyspark.sql import SparkSession

from recsys_spark import io
from recsys_spark.retrieval.index import METADATA_FILE

INDEX_KIND = "index"
LATEST_FILE = "LATEST"


def version_path(lake: io.Lake, version: str) -> str:
    """Return the folder of one index version: ``<lake.root>/models/index/<version>``."""
    return lake.models(INDEX_KIND, version)


def latest_path(lake: io.Lake) -> str:
    return posixpath.join(lake.models(INDEX_KIND), LATEST_FILE)


def latest_version(spark: SparkSession, lake: io.Lake) -> str:
    """Return the newest version named in ``models/index/LATEST``.

    Raises:
      FileNotFoundError: No index has been built into this lake.
    """
    path = latest_path(lake)
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"No index found: {path} does not exist. Run the build_index job first, or "
            "check lake.root."
        )
    version = io.read_text(spark, path).strip()
    if not version:
        raise FileNotFoundError(f"{path} is empty; rerun build_index to rewrite it.")
    return version


def new_version(spark: SparkSession, lake: io.Lake, run_id: str) -> str:
    """Return ``run_id``, or ``<run_id>-2``, ``-3``... when a build of this run exists.

    A pipeline with a second training round builds two indexes in one run. They need
    distinct folder names, because ``SparkContext.addFile`` ignores a path that it has
    already shipped, so executors would keep searching the first index.
    """
    version, attempt = run_id, 1
    while io.exists(spark, version_path(lake, version)):
        attempt += 1
        version = f"{run_id}-{attempt}"
    return version


def write_latest(spark: SparkSession, lake: io.Lake, version: str) -> None:
    io.write_text(spark, latest_path(lake), version + "\n")


def resolve_version(spark: SparkSession, lake: io.Lake, version: Optional[str]) -> str:
    """Return ``version``, or the latest one when it is None."""
    return version or latest_version(spark, lake)


def read_metadata(spark: SparkSession, lake: io.Lake, version: str) -> dict[str, Any]:
    """Read ``metadata.json`` of an index version from the lake."""
    path = posixpath.join(version_path(lake, version), METADATA_FILE)
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"Index version {version!r} has no {METADATA_FILE} at {path}. Pick another "
            "version with candidates.index_version, or rerun build_index."
        )
    return io.read_json(spark, path)
