"""Versioned model folders, ``models/<kind>/<version>/``, and the ``LATEST`` file naming one.

The two-tower model, the index and the ranker are each saved this way. A version is the
id of the run that wrote it, with ``-2``, ``-3``... added when that run writes a second
one (the pipeline's hard-negative round). Paths go through :mod:`recsys_spark.io`,
because the lake may be on HDFS or S3.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import SparkSession

from recsys_spark import io

LATEST_FILE = "LATEST"


@dataclass(frozen=True)
class ModelVersions:
    """The versions of one kind of model in a lake.

    Attributes:
      kind: The folder under ``models/``.
      label: What a version holds, for error messages ("two-tower model").
      job: The job that writes new versions, named in error messages.
    """

    kind: str
    label: str
    job: str

    def path(self, lake: io.Lake, version: str) -> str:
        """Return the folder of one version: ``<lake.root>/models/<kind>/<version>``."""
        return lake.models(self.kind, version)

    def latest_path(self, lake: io.Lake) -> str:
        return posixpath.join(lake.models(self.kind), LATEST_FILE)

    def latest(self, spark: SparkSession, lake: io.Lake) -> str:
        """Return the version named in ``LATEST``.

        Raises:
          FileNotFoundError: No version was written into this lake, or LATEST is empty.
        """
        path = self.latest_path(lake)
        if not io.exists(spark, path):
            raise FileNotFoundError(
                f"No {self.label} found: {path} does not exist. Run the {self.job} job "
                "first, or check lake.root."
            )
        version = io.read_text(spark, path).strip()
        if not version:
            raise FileNotFoundError(f"{path} is empty; rerun {self.job} to rewrite it.")
        return version

    def resolve(self, spark: SparkSession, lake: io.Lake, version: Optional[str]) -> str:
        """Return ``version``, or the latest one when it is None."""
        return version or self.latest(spark, lake)

    def set_latest(self, spark: SparkSession, lake: io.Lake, version: str) -> None:
        io.write_text(spark, self.latest_path(lake), version + "\n")

    def new_version(self, spark: SparkSession, lake: io.Lake, run_id: str) -> str:
        """Return ``run_id``, or ``<run_id>-2``, ``-3``... when this run wrote one already.

        Each version needs its own folder: ``SparkContext.addFile`` ignores a path it has
        shipped before, so executors would keep the first version's files.
        """
        version, attempt = run_id, 1
        while io.exists(spark, self.path(lake, version)):
            attempt += 1
            version = f"{run_id}-{attempt}"
        return version
