"""Lake paths of two-tower model versions, their metadata and the LATEST pointer.

Versions follow :mod:`recsys_spark.versions`.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pyspark.sql import SparkSession

from recsys_spark import io
from recsys_spark.versions import ModelVersions

MODEL_KIND = "two_tower"
METADATA_FILE = "metadata.json"

# Folders inside models/two_tower/<version>/.
QUERY_DIR = "query"
CANDIDATE_DIR = "candidate"
RETRIEVAL_DIR = "retrieval"
EMBEDDINGS_DIR = "embeddings"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"

# Vocabulary files under features/vocabularies/, one value a line.
VOCABULARY_NAMES = (
    "category",
    "tag",
    "title_token",
    "language",
    "region",
    "age_bucket",
    "gender",
    "duration_bucket",
)


VERSIONS = ModelVersions(MODEL_KIND, "two-tower model", "train_two_tower")
version_path = VERSIONS.path
latest_path = VERSIONS.latest_path
latest_version = VERSIONS.latest
write_latest = VERSIONS.set_latest
new_version = VERSIONS.new_version


def read_metadata(spark: SparkSession, lake: io.Lake, version: str | None = None) -> dict[str, Any]:
    """Read ``metadata.json`` of ``version``, or of the latest version when it is None."""
    version = version or latest_version(spark, lake)
    path = posixpath.join(version_path(lake, version), METADATA_FILE)
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"Two-tower model version {version!r} has no {METADATA_FILE} at {path}. "
            "Pick another version or rerun train_two_tower."
        )
    return io.read_json(spark, path)


def read_vocabulary(spark: SparkSession, lake: io.Lake, name: str) -> list[str]:
    """Read ``features/vocabularies/<name>.txt``: line i is the value with index i + 1.

    Raises:
      FileNotFoundError: build_features has not written the vocabulary.
      ValueError: The file repeats a value or contains an empty line, which
        ``StringLookup`` rejects and which would shift every later index.
    """
    path = lake.features("vocabularies", f"{name}.txt")
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"Vocabulary {name!r} not found at {path}. Run build_features first."
        )
    text = io.read_text(spark, path)
    values = text.split("\n") if text else []
    # A trailing newline leaves one empty last entry; any other empty line is an error.
    if values and values[-1] == "":
        values.pop()
    if "" in values:
        raise ValueError(
            f"Vocabulary {path} has an empty line at line {values.index('') + 1}; every "
            "line must hold one value. Rebuild it with build_features."
        )
    if len(set(values)) != len(values):
        seen: set[str] = set()
        duplicate = next(value for value in values if value in seen or seen.add(value))
        raise ValueError(
            f"Vocabulary {path} lists {duplicate!r} twice; indices must be unique. Rebuild "
            "it with build_features."
        )
    return values
