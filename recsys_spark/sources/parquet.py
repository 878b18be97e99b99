"""Canonical Parquet tables as a source, and the schema check every typed source passes.

``data.path`` contains one Parquet table per canonical table: ``users/``, ``videos/`` and
``interactions/``, with the columns of ``recsys_spark.columns.SCHEMAS``. A column may have
a compatible type, which is cast: an integer id becomes its decimal string, any number a
double, and a date a midnight UTC timestamp. Any other difference stops the read before
Spark runs a job.
"""

from __future__ import annotations

import logging
import math
import posixpath
from typing import Optional
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark import io

logger = logging.getLogger(__name__)

# Columns a table may leave out; they are filled with nulls.
OPTIONAL_COLUMNS = frozenset({C.EXTRAS})

# Maximum footers read per table on a remote file system (HDFS, object stores), spread
# evenly over its files in name order. Reading every footer there would cost one request
# per file. Local tables have every footer read.
MAX_FOOTERS_CHECKED = 8

SPARK_SCHEMA_KEY = "org.apache.spark.sql.parquet.row.metadata"

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


def stored_columns(spark: SparkSession, file: str) -> list[str]:
    """Return the top-level column names in the Parquet schema of one file's footer.

    See :func:`stored_fields` for the arguments and errors.
    """
    return list(stored_fields(spark, file))


def stored_fields(spark: SparkSession, file: str) -> dict[str, Optional[pa.DataType]]:
    """Read the top-level columns of the Parquet schema in one file's footer.

    Local files are read with pyarrow, which also gives each column's type. Files on other
    file systems (HDFS, S3A, ABFS) are read through the JVM's Hadoop FileSystem and Spark's
    bundled parquet-mr reader, as Spark reads them. Their types are None, so they are not
    checked.

    Args:
      spark: The session.
      file: The file's URI as ``DataFrame.inputFiles`` returns it (``file:///...``,
        ``s3a://...``), percent-encoded.

    Returns:
      ``{column: Arrow type or None}`` in the file's order.

    Raises:
      ValueError: The file has no readable Parquet footer.
    """
    uri = urlparse(file)
    if uri.scheme not in ("", "file"):
        return dict.fromkeys(_hadoop_stored_columns(spark, file))
    try:
        schema = pq.read_schema(unquote(uri.path))
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"{file} is not a readable Parquet file: {error}") from error
    return {field.name: field.type for field in schema}


def _hadoop_stored_columns(spark: SparkSession, file: str) -> list[str]:
    # NOTE: the tests run this reader on local files only.
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(file))
    hadoop_file = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(
        path, spark.sparkContext._jsc.hadoopConfiguration()
    )
    try:
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(hadoop_file)
    except Py4JJavaError as error:
        raise ValueError(f"{file} is not a readable Parquet file: {error}") from error
    try:
        schema = reader.getFooter().getFileMetaData().getSchema()
        return [field.getName() for field in schema.getFields()]
    finally:
        reader.close()


# Type families that Spark's Parquet reader maps onto each other, with bit widths where a
# narrower listed type cannot hold a wider stored one.
_ARROW_FAMILIES = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_floating, "floating point"),
    (pa.types.is_decimal, "decimal"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
    (pa.types.is_timestamp, "timestamp"),
    (pa.types.is_date, "date"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "array"),
    (pa.types.is_map, "map"),
    (pa.types.is_struct, "struct"),
)
_SPARK_FAMILIES = (
    (T.BooleanType, "boolean", None),
    (T.ByteType, "integer", 8),
    (T.ShortType, "integer", 16),
    (T.IntegerType, "integer", 32),
    (T.LongType, "integer", 64),
    (T.FloatType, "floating point", 32),
    (T.DoubleType, "floating point", 64),
    (T.DecimalType, "decimal", None),
    (T.StringType, "string", None),
    (T.BinaryType, "binary", None),
    ((T.TimestampType, T.TimestampNTZType), "timestamp", None),
    (T.DateType, "date", None),
    (T.ArrayType, "array", None),
    (T.MapType, "map", None),
    (T.StructType, "struct", None),
)


def _readable_as(stored: pa.DataType, listed: T.DataType) -> bool:
    """Return whether Spark can read a column stored as ``stored`` as the ``listed`` type.

    Only the type family and the width of numbers are compared; unknown types pass.
    """
    stored_family = next((name for test, name in _ARROW_FAMILIES if test(stored)), None)
    listed_family, width = next(
        ((name, bits) for kind, name, bits in _SPARK_FAMILIES if isinstance(listed, kind)),
        (None, None),
    )
    if stored_family is None or listed_family is None:
        return True
    if stored_family != listed_family:
        return False
    return width is None or stored.bit_width <= width


def check_stored_columns(
    spark: SparkSession, df: DataFrame, schema: T.StructType, where: str
) -> None:
    """Check that the files of a Parquet table store the required columns Spark lists.

    Without ``mergeSchema``, Spark (4.3) takes a table's schema from one file's footer, and
    from the Spark schema in its ``org.apache.spark.sql.parquet.row.metadata`` key where
    the footer has one. A file rewritten without a column (by pyarrow, for example) can
    keep that key, and Spark then lists the column and reads it as all nulls. This check
    reads the Parquet schema itself from the footer of every local file, or of up to
    ``MAX_FOOTERS_CHECKED`` files on another file system. A column a file lacks is
    accepted when it is a partition column of the file's folders (``column=value``).

    Args:
      spark: The session.
      df: The table as ``spark.read.parquet`` returned it.
      schema: Its canonical schema; the columns outside ``OPTIONAL_COLUMNS`` are checked.
      where: The table's path, for error messages.

    Raises:
      ValueError: A checked file lacks a required column. The message names the table,
        the file, the column and the fix.
    """
    required = [
        field
        for field in schema.fields
        if field.name not in OPTIONAL_COLUMNS and field.name in df.columns
    ]
    files = sorted(df.inputFiles())
    remote = any(urlparse(file).scheme not in ("", "file") for file in files)
    # NOTE: on a remote file system, a file outside this sample that lacks a column still
    # reads as nulls.
    step = max(1, math.ceil(len(files) / MAX_FOOTERS_CHECKED)) if remote else 1
    for file in files[::step]:
        stored = stored_fields(spark, file)
        folders = file.split("/")[:-1]
        for field in required:
            partitioned = any(folder.startswith(f"{field.name}=") for folder in folders)
            if partitioned:
                continue
            stale = (
                f"Spark takes that schema from one file's footer, where a rewrite by another "
                f"tool (pyarrow, for example) can leave a stale {SPARK_SCHEMA_KEY} key."
            )
            if field.name not in stored:
                raise ValueError(
                    f"{where}: file {file} does not store column {field.name!r} "
                    f"({field.dataType.simpleString()}), but Spark's schema of the table "
                    f"lists it, so Spark would read it as all nulls. {stale} Columns stored "
                    f"in the file: {', '.join(sorted(stored)) or 'none'}. Rewrite the file "
                    f"with the {field.name} column."
                )
            stored_type, listed = stored[field.name], df.schema[field.name].dataType
            if stored_type is not None and not _readable_as(stored_type, listed):
                raise ValueError(
                    f"{where}: file {file} stores column {field.name!r} as {stored_type}, "
                    f"but Spark's schema of the table lists it as {listed.simpleString()}, "
                    f"so Spark would fail to read it. {stale} Rewrite the file with "
                    f"{field.name} as {listed.simpleString()}, or every file of the table "
                    "with one type."
                )


def read_parquet_tables(spark: SparkSession, path: str) -> dict[str, DataFrame]:
    """Read and check the canonical tables under ``path`` (``path/users`` and so on).

    Raises:
      FileNotFoundError: ``path`` or one of its three tables does not exist.
      ValueError: A table is not readable as Parquet, fails :func:`conform`, or has a
        file that lacks a required column (:func:`check_stored_columns`).
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
        check_stored_columns(spark, df, C.SCHEMAS[table], table_path)
    return tables
