"""Lake paths of the index versions: ``models/index/<version>/`` and ``LATEST``.

Versions follow :mod:`recsys_spark.versions`.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pyspark.sql import SparkSession

from recsys_spark import io
from recsys_spark.retrieval.index import METADATA_FILE
from recsys_spark.versions import ModelVersions

INDEX_KIND = "index"
VERSIONS = ModelVersions(INDEX_KIND, "index", "build_index")
version_path = VERSIONS.path
latest_path = VERSIONS.latest_path
latest_version = VERSIONS.latest
write_latest = VERSIONS.set_latest
resolve_version = VERSIONS.resolve
new_version = VERSIONS.new_version


def read_metadata(spark: SparkSession, lake: io.Lake, version: str) -> dict[str, Any]:
    """Read ``metadata.json`` of an index version from the lake."""
    path = posixpath.join(version_path(lake, version), METADATA_FILE)
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"Index version {version!r} has no {METADATA_FILE} at {path}. Pick another "
            "version with candidates.index_version, or rerun build_index."
        )
    return io.read_json(spark, path)
