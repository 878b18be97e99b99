"""Ingest: read the source, validate every row, write raw tables, quarantine and id maps.

Valid rows go to ``lake/raw/<table>`` in the canonical schemas, the others to
``lake/quarantine/<table>`` with one ``reason`` each (see ``recsys_spark.validation``),
and the valid user and video ids get dense indices in ``lake/id_maps/<table>``. For every
table, rows read = rows loaded + rows quarantined; the job fails if that does not hold.

Every check runs before the lake changes: the eight tables are written to staging folders,
their row counts are checked there, and only then do they replace the previous versions
together. A failed ingest therefore leaves the previous raw, quarantine and id map tables
as they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from recsys_spark import columns as C
from recsys_spark import io, validation
from recsys_spark.cli import job_main
from recsys_spark.id_maps import build_id_map
from recsys_spark.runs import Run
from recsys_spark.settings import Config
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


def table_outputs(run: Run, table: ClassifiedTable) -> dict[str, tuple[DataFrame, int]]:
    """Return the lake tables built from one classified table, with their row counts.

    Returns:
      ``{path: (rows, expected row count)}`` for the table's valid rows, its quarantine
      and, for users and videos, its id map. Valid ids are unique, so an id map has one
      row per loaded row.
    """
    lake, schema = run.lake, C.SCHEMAS[table.name]
    valid = validation.valid_rows(table.rows, schema)
    quarantined = validation.quarantined_rows(table.rows, schema, run.run_id)
    outputs = {
        lake.raw(table.name): (valid, table.loaded),
        lake.quarantine(table.name): (quarantined, table.quarantined),
    }
    if table.name in ID_COLUMNS:
        id_column, index_column = ID_COLUMNS[table.name]
        id_map = build_id_map(valid, id_column, index_column)
        outputs[lake.id_map(table.name)] = (id_map, table.loaded)
    return outputs


def check_row_counts(
    spark: SparkSession, staged: Mapping[str, str], expected: Mapping[str, int]
) -> None:
    """Compare each staged table's row count with the count made before writing.

    Args:
      spark: The session.
      staged: ``{destination: staging folder}``, as :func:`recsys_spark.io.write_tables`
        passes it.
      expected: ``{destination: row count}``.

    Raises:
      RuntimeError: A staged table has another row count (a bug).
    """
    for destination, staging in staged.items():
        # Parquet keeps row counts in its footers, so this count reads no column data. The
        # glob names the files: Spark warns when given a folder whose name starts with "_".
        found = spark.read.parquet(posixpath.join(staging, "*.parquet")).count()
        if found != expected[destination]:
            raise RuntimeError(
                f"Ingest invariant violated: {destination} would get {found} rows, expected "
                f"{expected[destination]}. Nothing was replaced. This is a bug in jobs/ingest.py."
            )


def check_interactions_loaded(config: Config, interactions: ClassifiedTable) -> None:
    """Raise ValueError when no interaction is valid, naming the quarantine reasons."""
    if interactions.loaded > 0:
        return
    raise ValueError(
        f"No valid interactions in the {config.data.source} source "
        f"({config.data.path or config.data.size}): all {interactions.read} rows are "
        f"invalid, reasons {interactions.summary()['reasons']}. Nothing was written, so "
        "the lake keeps its previous tables. Fix the source or the ingest bounds "
        "(ingest.min_event_ts, ingest.max_future_skew_s, ingest.min_rating, "
        "ingest.max_rating, ingest.max_watch_ratio)."
    )


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
        check_interactions_loaded(config, interactions)

        outputs: dict[str, tuple[DataFrame, int]] = {}
        for table in tables:
            outputs.update(table_outputs(run, table))
        expected = {path: count for path, (_, count) in outputs.items()}
        io.write_tables(
            {path: rows for path, (rows, _) in outputs.items()},
            check=lambda staged: check_row_counts(run.spark, staged, expected),
        )
    finally:
        for table in tables:
            table.rows.unpersist()

    return {
        "source": config.data.source,
        "path": config.data.path if config.data.source != "synthetic" else None,
        "size": config.data.size if config.data.source == "synthetic" else None,
        "tables": {table.name: table.summary() for table in tables},
        "id_maps": {C.USERS: users.loaded, C.VIDEOS: videos.loaded},
    }


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("ingest", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
