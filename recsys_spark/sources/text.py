"""Read delimited text files line by line and parse fields, keeping unparseable text.

The parse helpers return two columns for each field: the typed value (null when the text
could not be parsed) and ``_raw_<name>``, the source text where parsing failed (null where
it succeeded or the text was blank). Validation turns a non-null ``_raw_<name>`` into the
quarantine reason ``unparseable_<name>``.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.sources import raw_column

LINE = "_line"
_CORRUPT = "_corrupt_line"

# timestamp_seconds() raises under ANSI mode when the value overflows a long of
# microseconds (Spark 4.3, for example at 10**13 s). Values outside the years 1 to 9999
# are unparseable instead, which stays clear of that limit.
_MIN_UNIX_SECONDS = -62135596800
_MAX_UNIX_SECONDS = 253402300799

_BLANK = r"^\s*$"
_DIGITS = r"^[0-9]+$"


def read_lines(spark: SparkSession, path: str, encoding: str) -> DataFrame:
    """Read a text file as one ``_line`` string per line, decoded with ``encoding``.

    Spark's text reader always decodes UTF-8, so this uses the CSV reader with quoting off
    and the NUL character as separator, which returns each line whole. A line that
    contains NUL bytes is returned whole as well, through the corrupt-record column.
    Lines that are empty or contain only whitespace are skipped: they are not records.
    """
    schema = T.StructType(
        [T.StructField(LINE, T.StringType()), T.StructField(_CORRUPT, T.StringType())]
    )
    lines = (
        spark.read.schema(schema)
        .option("encoding", encoding)
        .option("sep", "\u0000")
        .option("quote", "")
        .option("escape", "")
        .option("header", "false")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", _CORRUPT)
        .csv(path)
    )
    return lines.select(F.coalesce(F.col(_CORRUPT), F.col(LINE)).alias(LINE))


def is_blank(text: Column) -> Column:
    """Return true where ``text`` is null, empty or whitespace only."""
    return text.isNull() | text.rlike(_BLANK)


def nonblank(text: Column) -> Column:
    """Return ``text``, or null where it is blank."""
    return F.when(~is_blank(text), text)


def with_raw(text: Column, value: Column, name: str) -> list[Column]:
    """Return ``value`` as ``name`` and the text that failed to parse as ``_raw_<name>``."""
    failed = value.isNull() & ~is_blank(text)
    return [value.alias(name), F.when(failed, text).alias(raw_column(name))]


def integer_id(text: Column, name: str) -> list[Column]:
    """Parse an id written as decimal digits, keeping the text unchanged.

    The id stays a string, so integers beyond 64 bits and leading zeros survive.
    """
    return with_raw(text, F.when(text.rlike(_DIGITS), text), name)


def double(text: Column, name: str) -> list[Column]:
    """Parse a decimal number into a double."""
    return with_raw(text, F.trim(text).try_cast(T.DoubleType()), name)


def unix_seconds(text: Column, name: str) -> list[Column]:
    """Parse a Unix time in whole seconds into a UTC timestamp."""
    seconds = F.trim(text).try_cast(T.LongType())
    in_range = seconds.between(_MIN_UNIX_SECONDS, _MAX_UNIX_SECONDS)
    return with_raw(text, F.when(in_range, F.timestamp_seconds(seconds)), name)


def split_exact(line: Column, separator: str, count: int) -> Column:
    """Split ``line`` on the literal ``separator`` into at most ``count`` fields.

    Extra separators stay in the last field. Use :func:`field` to read one field.
    """
    return F.split(line, re.escape(separator), count)


def field(parts: Column, index: int) -> Column:
    """Return the 1-based ``index`` field of a split line, or null when it is absent."""
    return F.try_element_at(parts, F.lit(index))
