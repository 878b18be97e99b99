"""Ship a folder (a SavedModel, an index) from the lake or the driver to every executor.

``SparkContext.addFile(folder, recursive=True)`` works only in local mode: Spark 4.3
rejects a driver-local folder on any other master (UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY).
So the driver zips the folder into one file and adds that file, which every master
accepts. A task calls :func:`local_folder` with the returned name. The first call in a
Python worker unpacks the zip into a temporary folder of that worker, and later calls
reuse that folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

from pyspark.sql import SparkSession

from recsys_spark import io

# Unpacked folders of this Python worker, keyed by the local path of their zip.
_UNPACKED: dict[str, str] = {}


def temporary_folder(prefix: str = "recsys-") -> str:
    """Return a new temporary folder that is removed when this Python process exits."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def zip_folder(local_dir: str, stem: str) -> str:
    """Zip ``local_dir`` into a file named ``<stem>-<random>.zip`` and return its path.

    The random part keeps names unique within a session: addFile ships files by base
    name and rejects a second, different file with a name it has already seen.
    """
    base = os.path.join(temporary_folder(), f"{stem}-{uuid.uuid4().hex[:12]}")
    return shutil.make_archive(base, "zip", root_dir=local_dir)


def ship_zip(spark: SparkSession, archive: str) -> str:
    """Add the zip at the driver-local path ``archive`` to the session and return its name."""
    spark.sparkContext.addFile(archive)
    return os.path.basename(archive)


def ship_lake_folder(spark: SparkSession, path: str, stem: str) -> str:
    """Copy the lake folder ``path`` to the driver, zip it, ship it and return its name.

    The lake may be remote (HDFS, S3, DBFS); executors never read driver-local paths.
    """
    local_dir = io.download_directory(spark, path, os.path.join(temporary_folder(), stem))
    return ship_zip(spark, zip_folder(local_dir, stem))


def local_folder(name: str) -> str:
    """Return the local folder of the zip shipped as ``name``, unpacking it once per worker."""
    from pyspark import SparkFiles

    archive = SparkFiles.get(name)
    folder = _UNPACKED.get(archive)
    if folder is None:
        folder = temporary_folder()
        shutil.unpack_archive(archive, folder, format="zip")
        _UNPACKED[archive] = folder
    return folder
