"""Canonical Parquet tables as a source, and the schema check every typed source passes.

``data.path`` contains one Parquet table per canonical table: ``users/``, ``videos/`` and
``interactions/``, with the columns of ``recsys_spark.columns.SCHEMAS``. A column may have
a compatible type, which is cast: an integer id becomes its decimal string, any number a
double, and a date a midnight UTC timestamp. Any other difference stops the read before
Spark runs a job.
"""

from __future__ import annotations

import logging
import posixpath

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark import io

logger = logging.getLogger(__name__)

# Columns a table may leave out; they are filled with nulls.
OPTIONAL_COLUMNS = frozenset({C.EXTRAS})

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = (*_INTEGRAL, T.FloatType, T.DoubleType, T.DecimalType)


def _castable(actual: T.DataType, expected: T.DataType) -> bool:
    """Return whether a cast from ``actual`` to ``expected`` keeps the value's meaning."""
    if isinstance(actual, T.NullType):
        return True
    if isinstance(expected, T.StringType):
        whole_decimal = isinstance(actual, T.DecimalType) and actual.scale == 0
        return isinstance(actual, (T.StringType, *_INTEGRAL)) or whole_decimal
    if isinstance(expected, T.DoubleType):
        return isinstance(actual, _NUMERIC)
    if isinstance(expected, T.TimestampType):
        return isinstance(actual, (T.TimestampType, T.TimestampNTZType, T.DateType))
    # Arrays and maps: the same element types, whatever their nullability.
    return actual.simpleString() == expected.simpleString()


def conform(df: DataFrame, schema: T.StructType, where: str) -> DataFrame:
    """Select ``schema``'s columns from ``df``, casting compatible types to the schema's.

    Only the schema is inspected, so no Spark job runs. Columns ``df`` has beyond the
    schema are dropped.

    Args:
      df: The table as read.
      schema: Its canonical schema.
      where: The table's name or path, for error messages.

    Returns:
      ``schema``'s columns in order, each of its canonical type.

    Raises:
      ValueError: A required column is missing, or a column has a type that is not
        compatible with the canonical one. The message names ``where``, the column and the
        expected type.
    """
    present = {f.name: f.dataType for f in df.schema.fields}
    selected: list[Column] = []
    for field in schema.fields:
        expected = field.dataType.simpleString()
        if field.name not in present:
            if field.name in OPTIONAL_COLUMNS:
                selected.append(F.lit(None).cast(field.dataType).alias(field.name))
                continue
            raise ValueError(
                f"{where}: missing column {field.name!r} of type {expected}. Found columns: "
                f"{', '.join(present) or 'none'}. Add it (all null is fine for nullable "
                "columns) or rename the column that holds it."
            )
        actual = present[field.name]
        if actual.simpleString() == expected:
            selected.append(F.col(field.name))
        elif _castable(actual, field.dataType):
            selected.append(F.col(field.name).cast(field.dataType).alias(field.name))
        else:
            raise ValueError(
                f"{where}: column {field.name!r} has type {actual.simpleString()}, expected "
                f"{expected}, and a cast from {actual.simpleString()} would change its "
                f"meaning. Write {field.name} as {expected}."
            )
    extra = [name for name in present if name not in schema.fieldNames()]
    if extra:
        logger.info("%s: ignoring columns outside the canonical schema: %s", where, extra)
    return df.select(*selected)


def read_parquet_tables(spark: SparkSession, path: str) -> dict[str, DataFrame]:
    """Read and check the canonical tables under ``path`` (``path/users`` and so on).

    Raises:
      FileNotFoundError: ``path`` or one of its three tables does not exist.
      ValueError: A table is not readable as Parquet or fails :func:`conform`.
    """
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"Parquet source folder {path} not found. Set data.path to a folder containing "
            f"{', '.join(C.TABLES)} Parquet tables."
        )
    tables = {}
    for table in C.TABLES:
        table_path = posixpath.join(path, table)
        if not io.exists(spark, table_path):
            raise FileNotFoundError(
                f"Parquet table {table_path} not found: data.path must contain "
                f"{', '.join(C.TABLES)} folders with the canonical columns."
            )
        try:
            df = spark.read.parquet(table_path)
        except AnalysisException as error:
            raise ValueError(f"{table_path} is not a readable Parquet table: {error}") from error
        tables[table] = conform(df, C.SCHEMAS[table], table_path)
    return tables
