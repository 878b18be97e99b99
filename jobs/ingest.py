"""Ingest: read the source, validate every row, write raw tables, quarantine and id maps.

Valid rows go to ``lake/raw/<table>`` in the canonical schemas, the others to
``lake/quarantine/<table>`` with one ``reason`` each (see ``recsys_spark.validation``),
and the valid user and video ids get dense indices in ``lake/id_maps/<table>``. For every
table, rows read = rows loaded + rows quarantined; the job fails if that does not hold.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from recsys_spark import columns as C
from recsys_spark import io, validation
from recsys_spark.cli import job_main
from recsys_spark.id_maps import build_id_map
from recsys_spark.runs import Run
from recsys_spark.sources import read_source

logger = logging.getLogger(__name__)

ID_COLUMNS = {C.USERS: (C.USER_ID, C.USER_IDX), C.VIDEOS: (C.VIDEO_ID, C.VIDEO_IDX)}


@dataclass
class ClassifiedTable:
    """One table's rows with their reasons (persisted), and how many there are."""

    name: str
    rows: DataFrame
    read: int
    counts: dict[str | None, int]

    @property
    def loaded(self) -> int:
        return self.counts.get(None, 0)

    @property
    def quarantined(self) -> int:
        return self.read - self.loaded

    def summary(self) -> dict[str, Any]:
        reasons = {reason: n for reason, n in self.counts.items() if reason is not None}
        return {
            "read": self.read,
            "loaded": self.loaded,
            "quarantined": self.quarantined,
            "reasons": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
        }


def classify_table(
    name: str, source: DataFrame, classify: Callable[[DataFrame], DataFrame]
) -> ClassifiedTable:
    """Count the source rows, classify them, and check that no row was lost or repeated.

    The source is persisted while it is counted and classified, so it is read once; the
    classified rows stay persisted for the writes. The caller unpersists ``rows``.

    Raises:
      RuntimeError: The classified rows do not add up to the rows read (a bug).
    """
    source = source.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        read = source.count()
        rows = classify(source).persist(StorageLevel.MEMORY_AND_DISK)
        counts = validation.count_by_reason(rows)
    finally:
        source.unpersist()
    classified = sum(counts.values())
    if classified != read:
        rows.unpersist()
        raise RuntimeError(
            f"Ingest invariant violated for {name}: read {read} rows but validation "
            f"returned {classified} ({counts}). Nothing was written; this is a bug in "
            "recsys_spark.validation or the source reader."
        )
    table = ClassifiedTable(name, rows, read, counts)
    logger.info(
        "%s: read %d, loaded %d, quarantined %d %s",
        name,
        table.read,
        table.loaded,
        table.quarantined,
        table.summary()["reasons"],
    )
    return table


def _written_rows(spark: SparkSession, path: str) -> int:
    # Parquet keeps row counts in its footers, so this count reads no column data.
    return spark.read.parquet(path).count()


def write_table_outputs(run: Run, table: ClassifiedTable) -> int | None:
    """Write a table's valid rows, its quarantine and, for users and videos, its id map.

    Returns:
      The number of ids in the id map, or None for interactions.

    Raises:
      RuntimeError: A written table does not have the row count counted before writing.
    """
    spark, lake, schema = run.spark, run.lake, C.SCHEMAS[table.name]
    valid = validation.valid_rows(table.rows, schema)
    io.write_table(valid, lake.raw(table.name))
    quarantined = validation.quarantined_rows(table.rows, schema, run.run_id)
    io.write_table(quarantined, lake.quarantine(table.name))

    written = {
        lake.raw(table.name): (
            _written_rows(spark, lake.raw(table.name)),
            table.loaded,
        ),
        lake.quarantine(table.name): (
            _written_rows(spark, lake.quarantine(table.name)),
            table.quarantined,
        ),
    }
    id_map_size = None
    if table.name in ID_COLUMNS:
        id_column, index_column = ID_COLUMNS[table.name]
        io.write_table(build_id_map(valid, id_column, index_column), lake.id_map(table.name))
        id_map_size = _written_rows(spark, lake.id_map(table.name))
        written[lake.id_map(table.name)] = (id_map_size, table.loaded)
    for path, (found, expected) in written.items():
        if found != expected:
            raise RuntimeError(
                f"Ingest invariant violated: {path} has {found} rows, expected {expected} "
                f"({table.name}: read {table.read}, reasons {table.counts})."
            )
    return id_map_size


def run(run: Run) -> dict[str, Any]:
    """Ingest the configured source into the lake and return the counts per table."""
    config = run.config
    bounds = validation.Bounds.from_config(config.ingest, now=dt.datetime.now(dt.timezone.utc))
    sources = read_source(run.spark, config)

    tables: list[ClassifiedTable] = []
    try:
        users = classify_table(
            C.USERS, sources[C.USERS], lambda df: validation.classify_users(df, bounds)
        )
        tables.append(users)
        videos = classify_table(
            C.VIDEOS,
            sources[C.VIDEOS],
            lambda df: validation.classify_videos(df, bounds),
        )
        tables.append(videos)
        interactions = classify_table(
            C.INTERACTIONS,
            sources[C.INTERACTIONS],
            lambda df: validation.classify_interactions(df, users.rows, videos.rows, bounds),
        )
        tables.append(interactions)
        id_maps = {table.name: write_table_outputs(run, table) for table in tables}
    finally:
        for table in tables:
            table.rows.unpersist()

    summary = {
        "source": config.data.source,
        "path": config.data.path if config.data.source != "synthetic" else None,
        "size": config.data.size if config.data.source == "synthetic" else None,
        "tables": {table.name: table.summary() for table in tables},
        "id_maps": {name: size for name, size in id_maps.items() if size is not None},
    }
    if interactions.loaded == 0:
        raise ValueError(
            f"No valid interactions in the {config.data.source} source "
            f"({config.data.path or config.data.size}): all {interactions.read} rows were "
            f"quarantined, reasons {interactions.summary()['reasons']}. Inspect "
            f"{run.lake.quarantine(C.INTERACTIONS)}."
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("ingest", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
