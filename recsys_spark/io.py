"""Storage access: lake paths, Parquet tables with atomic replacement, small JSON files.

All reads and writes of the lake go through here so that they work the same on a local
disk, HDFS, S3 or DBFS: file operations use Hadoop's FileSystem API through the session's
JVM rather than Python's ``os``.

A table is written to a staging folder next to its destination and then renamed into
place, so a failed or killed write leaves the previous version complete. A commit first
writes a journal. When a kill interrupts the renames, the next write of the table reads
that journal and finishes or undoes the commit before making its own.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import uuid
from typing import Any, Callable, Mapping, Optional, Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

STAGING_PREFIX = "_staging-"
PREVIOUS_PREFIX = "_previous-"
JOURNAL_PREFIX = "_commit-"


class Lake:
    """Paths of every table, model and run artifact under ``lake.root``."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def raw(self, table: str) -> str:
        return self.path("raw", table)

    def quarantine(self, table: str) -> str:
        return self.path("quarantine", table)

    def id_map(self, table: str) -> str:
        return self.path("id_maps", table)

    def features(self, *parts: str) -> str:
        return self.path("features", *parts)

    def training(self, split: str) -> str:
        return self.path("training", split)

    def candidates(self) -> str:
        return self.path("candidates")

    def recommendations(self) -> str:
        return self.path("recommendations")

    def models(self, kind: str, version: Optional[str] = None) -> str:
        return self.path("models", kind, *([version] if version else []))

    def run(self, run_id: str) -> str:
        return self.path("runs", run_id)

    def evaluation(self, run_id: str) -> str:
        return self.path("evaluation", run_id)


def _jvm_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _jvm_path(spark, path)
    return fs.exists(hadoop_path)


def qualified_path(spark: SparkSession, path: str) -> str:
    """Return ``path`` as a full URI (``file:/abs/path``, ``hdfs://nn/...``).

    Executors resolve a relative lake root against their own working folder, so a path
    handed to ``SparkContext.addFile`` must be qualified first.
    """
    fs, hadoop_path = _jvm_path(spark, path)
    return fs.makeQualified(hadoop_path).toString()


def delete(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _jvm_path(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def list_dir(spark: SparkSession, path: str) -> list[str]:
    """Return the names of the entries directly inside ``path`` (empty if it is missing)."""
    fs, hadoop_path = _jvm_path(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hadoop_path))


def _rename(spark: SparkSession, source: str, destination: str) -> None:
    fs, source_path = _jvm_path(spark, source)
    _, destination_path = _jvm_path(spark, destination)
    parent = destination_path.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    if not fs.rename(source_path, destination_path):
        raise OSError(f"Failed to rename {source} to {destination}.")


def commit_directory(spark: SparkSession, staging: str, destination: str) -> None:
    """Replace ``destination`` with the finished folder ``staging``.

    The old version is renamed aside before the new one is renamed in and is deleted only
    afterwards, so at every moment one complete version exists at one of the two names.

    Note:
      Between the two renames ``destination`` is briefly absent. On object stores without
      atomic rename (S3) each rename is a copy, and readers may see a partial state.
    """
    commit_directories(spark, {destination: staging})


def commit_directories(spark: SparkSession, staged: Mapping[str, str]) -> None:
    """Replace each destination with its finished staging folder, all of them or none.

    Each destination is replaced as in :func:`commit_directory`. Before the first rename a
    journal beside every destination (``_commit-<name>-<id>.json``) records the whole
    commit. The previous versions are deleted only after the last rename succeeded. When a
    rename fails, the destinations already replaced get their previous versions back before
    the error is raised.

    A process killed during the renames leaves its journals behind. The next commit to any
    of those destinations first settles the interrupted one (:func:`recover`), so a kill
    costs at most a short absence of the tables, never their previous versions.

    Args:
      spark: The session, for Hadoop file system access.
      staged: ``{destination: staging folder}``.
    """
    for destination in staged:
        recover(spark, destination, delete_abandoned_staging=False)
    commit_id = uuid.uuid4().hex[:8]
    entries = []
    for destination, staging in staged.items():
        parent, name = posixpath.split(destination.rstrip("/"))
        previous = posixpath.join(parent, f"{PREVIOUS_PREFIX}{name}-{commit_id}")
        entries.append(
            {
                "destination": destination,
                "staging": staging,
                "previous": previous if exists(spark, destination) else None,
            }
        )
    journals = [_journal_path(destination, commit_id) for destination in staged]
    for journal in journals:
        write_json(spark, journal, {"commit": commit_id, "entries": entries})
    try:
        for entry in entries:
            if entry["previous"]:
                _rename(spark, entry["destination"], entry["previous"])
            _rename(spark, entry["staging"], entry["destination"])
    except Exception:
        _undo(spark, entries)
        _delete_all(spark, journals)
        raise
    _delete_all(spark, [entry["previous"] for entry in entries if entry["previous"]])
    _delete_all(spark, journals)


def recover(
    spark: SparkSession, destination: str, delete_abandoned_staging: bool = True
) -> list[str]:
    """Settle every interrupted commit of ``destination`` or of a folder inside it.

    A commit whose staging folders were all renamed into place is completed: its previous
    versions are deleted. Any other is undone: each destination it replaced gets its
    previous version back, and its staging folders are deleted. With
    ``delete_abandoned_staging``, staging folders of ``destination`` that no journal
    mentions (left by a write killed before its commit) are deleted too.

    Call this only while no other process writes ``destination``: the lake has one writer
    per table.

    Returns:
      One line per commit or folder settled, also logged as a warning.
    """
    parent, name = posixpath.split(destination.rstrip("/"))
    own_journal = re.compile(rf"{re.escape(JOURNAL_PREFIX + name)}-[0-9a-f]{{8}}\.json")
    inner_journal = re.compile(rf"{re.escape(JOURNAL_PREFIX)}.+-[0-9a-f]{{8}}\.json")
    journals = [
        posixpath.join(parent, entry)
        for entry in list_dir(spark, parent)
        if own_journal.fullmatch(entry)
    ] + [
        posixpath.join(destination, entry)
        for entry in list_dir(spark, destination)
        if inner_journal.fullmatch(entry)
    ]
    settled = []
    for journal in journals:
        # Settling one journal deletes the other journals of its commit.
        if exists(spark, journal):
            settled.append(_settle(spark, read_json(spark, journal)))
    if delete_abandoned_staging:
        staging_name = re.compile(rf"{re.escape(STAGING_PREFIX + name)}-[0-9a-f]{{8}}")
        for entry in list_dir(spark, parent):
            if staging_name.fullmatch(entry):
                delete(spark, posixpath.join(parent, entry))
                settled.append(f"deleted the abandoned staging folder {entry} of {destination}")
    for line in settled:
        logger.warning("Recovered: %s", line)
    return settled


def _settle(spark: SparkSession, journal: Mapping[str, Any]) -> str:
    """Complete or undo the commit that ``journal`` records, and describe the outcome."""
    entries = journal["entries"]
    renamed_in = all(
        not exists(spark, entry["staging"]) and exists(spark, entry["destination"])
        for entry in entries
    )
    if renamed_in:
        _delete_all(spark, [entry["previous"] for entry in entries if entry["previous"]])
    else:
        _undo(spark, entries)
    _delete_all(
        spark, [_journal_path(entry["destination"], journal["commit"]) for entry in entries]
    )
    return (
        f"{'completed' if renamed_in else 'undid'} the interrupted commit {journal['commit']} "
        f"of {', '.join(entry['destination'] for entry in entries)}"
    )


def _journal_path(destination: str, commit_id: str) -> str:
    parent, name = posixpath.split(destination.rstrip("/"))
    return posixpath.join(parent, f"{JOURNAL_PREFIX}{name}-{commit_id}.json")


def _undo(spark: SparkSession, entries: Sequence[Mapping[str, Optional[str]]]) -> None:
    """Put back what a commit of ``entries`` changed, whichever renames it made."""
    for entry in entries:
        destination, staging, previous = (
            entry["destination"],
            entry["staging"],
            entry["previous"],
        )
        if previous and exists(spark, previous):
            delete(spark, destination)
            _rename(spark, previous, destination)
        elif not previous and not exists(spark, staging):
            # The destination did not exist before this commit, and its staging folder was
            # renamed in (or never existed, in which case the destination is absent too).
            delete(spark, destination)
        delete(spark, staging)


def _delete_all(spark: SparkSession, paths: Sequence[str]) -> None:
    for path in paths:
        delete(spark, path)


def new_staging_path(spark: SparkSession, destination: str) -> str:
    """Settle interrupted writes of ``destination``, then name a fresh staging folder."""
    recover(spark, destination)
    parent, name = posixpath.split(destination.rstrip("/"))
    return posixpath.join(parent, f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}")


def write_table(
    df: DataFrame,
    path: str,
    partition_by: Sequence[str] = (),
    replace_partitions: bool = False,
    max_records_per_file: Optional[int] = None,
) -> None:
    """Write ``df`` as Parquet at ``path``, replacing the previous version atomically.

    Args:
      df: The rows to write.
      path: The table's folder.
      partition_by: Partition columns.
      replace_partitions: With ``partition_by``, replace only the partitions present in
        ``df`` and keep the others; each partition folder is committed on its own.
      max_records_per_file: Caps rows per Parquet file (streaming readers prefer files of
        bounded size).
    """
    spark = df.sparkSession
    staging = new_staging_path(spark, path)
    writer = df.write.mode("overwrite")
    if max_records_per_file:
        writer = writer.option("maxRecordsPerFile", max_records_per_file)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        writer.parquet(staging)
    except Exception:
        delete(spark, staging)
        raise
    if replace_partitions and partition_by and exists(spark, path):
        _commit_partitions(spark, staging, path, partition_by[0])
    else:
        commit_directory(spark, staging, path)
    logger.info("Wrote %s", path)


def write_tables(
    tables: Mapping[str, DataFrame],
    check: Optional[Callable[[Mapping[str, str]], None]] = None,
) -> None:
    """Write several Parquet tables so that either all of them are replaced or none is.

    Every table is first written to a staging folder beside its destination. ``check`` then
    receives ``{destination: staging folder}`` and may raise to abandon the write. Only
    after that are the destinations replaced, by :func:`commit_directories`.

    Args:
      tables: ``{destination folder: rows}``.
      check: Optional verification of the staged tables, for example of their row counts.

    Raises:
      Whatever a write, ``check`` or a rename raises, after the staging folders are
      deleted. The destinations then keep their previous versions.
    """
    if not tables:
        return
    spark = next(iter(tables.values())).sparkSession
    staged: dict[str, str] = {}
    try:
        for destination, df in tables.items():
            staged[destination] = new_staging_path(spark, destination)
            df.write.mode("overwrite").parquet(staged[destination])
        if check is not None:
            check(staged)
        commit_directories(spark, staged)
    except Exception:
        for staging in staged.values():
            delete(spark, staging)
        raise
    logger.info("Wrote %s", ", ".join(tables))


def _commit_partitions(spark: SparkSession, staging: str, path: str, column: str) -> None:
    for name in list_dir(spark, staging):
        if name.startswith(f"{column}="):
            commit_directory(spark, posixpath.join(staging, name), posixpath.join(path, name))
    delete(spark, staging)


def interrupted_commits(spark: SparkSession, path: str) -> list[str]:
    """Return the journals of unsettled commits of ``path``, found beside it."""
    parent, name = posixpath.split(path.rstrip("/"))
    journal_name = re.compile(rf"{re.escape(JOURNAL_PREFIX + name)}-[0-9a-f]{{8}}\.json")
    return [
        posixpath.join(parent, entry)
        for entry in list_dir(spark, parent)
        if journal_name.fullmatch(entry)
    ]


def interrupted_commit_message(what: str, path: str, journal: str) -> str:
    """Explain that a killed commit left ``path`` missing or out of step, and the fix."""
    return (
        f"{what} at {path} is in a commit that a killed run left unfinished ({journal}), so "
        "it may be missing or out of step with the tables written with it. Rerun the job "
        "that writes it: its write first finishes or undoes that commit."
    )


def read_table(spark: SparkSession, path: str, what: str = "table") -> DataFrame:
    """Read a Parquet table, raising a clear error when it is missing, empty or unsettled.

    Raises:
      FileNotFoundError: ``path`` does not exist, or a killed commit of it is unsettled
        (see :func:`recover`).
      ValueError: ``path`` contains no Parquet file.
    """
    journals = interrupted_commits(spark, path)
    if journals:
        raise FileNotFoundError(interrupted_commit_message(what, path, journals[0]))
    if not exists(spark, path):
        raise FileNotFoundError(
            f"{what} not found at {path}. Run the job that writes it first, or check lake.root."
        )
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        if error.getCondition() != "UNABLE_TO_INFER_SCHEMA":
            raise
        raise ValueError(
            f"{what} at {path} contains no Parquet file. Delete the empty folder, or rerun "
            "the job that writes it."
        ) from error


def write_json(spark: SparkSession, path: str, data: Any) -> None:
    """Write ``data`` as pretty JSON to a single file, replacing it atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    write_text(spark, path, text + "\n")


def write_text(spark: SparkSession, path: str, text: str) -> None:
    fs, hadoop_path = _jvm_path(spark, path)
    parent = hadoop_path.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    temporary = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
        parent, f".{hadoop_path.getName()}.{uuid.uuid4().hex[:8]}.tmp"
    )
    stream = fs.create(temporary, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, False)
    if not fs.rename(temporary, hadoop_path):
        raise OSError(f"Failed to move {temporary} to {path}.")


def read_text(spark: SparkSession, path: str) -> str:
    fs, hadoop_path = _jvm_path(spark, path)
    if not fs.exists(hadoop_path):
        raise FileNotFoundError(f"{path} not found.")
    stream = fs.open(hadoop_path)
    try:
        reader = spark.sparkContext._jvm.java.io.BufferedReader(
            spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8")
        )
        lines = []
        line = reader.readLine()
        while line is not None:
            lines.append(line)
            line = reader.readLine()
        return "\n".join(lines)
    finally:
        stream.close()


def read_json(spark: SparkSession, path: str) -> Any:
    return json.loads(read_text(spark, path))


def upload_directory(spark: SparkSession, local_dir: str, destination: str) -> None:
    """Copy a local folder (a SavedModel, an index) into the lake, replacing atomically."""
    jvm = spark.sparkContext._jvm
    staging = new_staging_path(spark, destination)
    fs, staging_hadoop = _jvm_path(spark, staging)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(local_dir), staging_hadoop)
    commit_directory(spark, staging, destination)


def download_directory(spark: SparkSession, source: str, local_dir: str) -> str:
    """Copy a lake folder to a local folder on the driver and return the local path."""
    jvm = spark.sparkContext._jvm
    fs, source_path = _jvm_path(spark, source)
    if not fs.exists(source_path):
        raise FileNotFoundError(f"{source} not found. Run the job that writes it first.")
    fs.copyToLocalFile(False, source_path, jvm.org.apache.hadoop.fs.Path(local_dir), True)
    return local_dir
