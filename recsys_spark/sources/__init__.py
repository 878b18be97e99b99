"""Data sources: read users, videos and interactions from the source ``data.source`` selects.

Every source returns one DataFrame per canonical table (``users``, ``videos``,
``interactions``) with this contract, which the ingest job relies on:

- The canonical columns of ``columns.SCHEMAS[table]``, in that order and of those types.
- Optionally ``_raw_<column>`` (string) for a column the source parses from text: the
  source text where it could not be parsed, in which case ``<column>`` is null. It is
  null where parsing succeeded or the text was blank.
- Optionally ``_raw`` (string): the whole source record where it could not be split into
  fields; the canonical columns of that row are then unreliable.

A source never drops or repeats a record it read, so validation receives every row and
``rows loaded + rows quarantined = rows read`` holds per table. The exception is a blank
line in a text file, which is not a record.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark.settings import Config

logger = logging.getLogger(__name__)

RAW_PREFIX = "_raw_"
RAW_LINE = "_raw"


def raw_column(name: str) -> str:
    """Return the name of the column holding ``name``'s unparseable source text."""
    return f"{RAW_PREFIX}{name}"


def source_columns(df: DataFrame, schema: T.StructType) -> DataFrame:
    """Select the canonical columns of ``schema`` in order, then the ``_raw`` columns.

    Args:
      df: Contains every column of ``schema`` and any ``_raw_<column>`` or ``_raw``
        columns.
      schema: The canonical table schema.

    Returns:
      ``schema``'s columns cast to their canonical types, followed by the ``_raw``
      columns of ``df`` that belong to a canonical column or to the whole record.
    """
    names = [f.name for f in schema.fields]
    raw = [raw_column(name) for name in names if raw_column(name) in df.columns]
    if RAW_LINE in df.columns:
        raw.append(RAW_LINE)
    present = {f.name: f.dataType for f in df.schema.fields}
    canonical = []
    for field in schema.fields:
        column = F.col(field.name)
        # Casting array<string> to the schema's array of non-null strings fails, so a
        # column is cast only when its type differs beyond nullability.
        if present[field.name].simpleString() != field.dataType.simpleString():
            column = column.cast(field.dataType)
        canonical.append(column.alias(field.name))
    return df.select(*canonical, *[F.col(name).cast(T.StringType()) for name in raw])


def read_source(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """Read the configured source's users, videos and interactions.

    ``data.source`` selects the source: ``synthetic`` (the generator of
    ``recsys_spark.synthetic`` at ``data.size``), ``movielens`` (a release folder at
    ``data.path``) or ``parquet`` (canonical tables at ``data.path/<table>``).

    Returns:
      ``{"users": ..., "videos": ..., "interactions": ...}``, each in the contract of
      this module's docstring.

    Raises:
      FileNotFoundError: ``data.path`` or a file the source needs does not exist.
      ValueError: The folder is not a known layout, or a file has the wrong columns.
    """
    source = config.data.source
    logger.info("Reading the %s source (path %s)", source, config.data.path)
    if source == "movielens":
        from recsys_spark.sources import movielens

        tables = movielens.read_movielens(
            spark, config.data.path, max_user_tags=config.ingest.max_user_tags
        )
    elif source == "parquet":
        from recsys_spark.sources import parquet

        tables = parquet.read_parquet_tables(spark, config.data.path)
    elif source == "synthetic":
        from recsys_spark import synthetic
        from recsys_spark.sources import parquet

        generated = synthetic.generate(spark, config)
        tables = {
            table: parquet.conform(generated[table], C.SCHEMAS[table], f"synthetic {table}")
            for table in C.TABLES
        }
    else:
        raise ValueError(
            f"Unknown data.source {source!r}; expected one of synthetic, movielens, parquet."
        )
    return {table: source_columns(tables[table], C.SCHEMAS[table]) for table in C.TABLES}
