"""Counting and replacing NaN and infinite values in double columns.

Spark orders NaN above every number, so ``rating >= 4`` is true for a NaN rating and a
NaN duration turns every average it enters into NaN. Inputs are cleaned before use, and
feature tables are checked again before they are written.
"""

from __future__ import annotations

from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def is_non_finite(column: Column | str) -> Column:
    """Return a boolean column: true where the double value is NaN, +inf or -inf."""
    value = F.col(column) if isinstance(column, str) else column
    return F.isnan(value) | value.isin(float("inf"), float("-inf"))


def non_finite_counts(df: DataFrame, columns: Sequence[str]) -> dict[str, int]:
    """Count NaN and infinite values per column (an action: runs one aggregation job).

    Returns:
      ``{column: count}`` for every column in ``columns``, zeros included.
    """
    return count_rows_and_non_finite(df, columns)[1]


def count_rows_and_non_finite(df: DataFrame, columns: Sequence[str]) -> tuple[int, dict[str, int]]:
    """Count the rows and the NaN and infinite values per column in one aggregation job.

    Returns:
      ``(rows, {column: count})`` with every column in ``columns``, zeros included.
    """
    row = df.agg(
        F.count(F.lit(1)).alias("_rows"),
        *[F.sum(is_non_finite(name).cast("long")).alias(name) for name in columns],
    ).first()
    return int(row["_rows"]), {name: int(row[name] or 0) for name in columns}


def replace_non_finite(
    df: DataFrame, columns: Sequence[str], value: Optional[float] = None
) -> DataFrame:
    """Replace NaN and infinite values in ``columns`` by ``value`` (null by default).

    Args:
      df: Any DataFrame whose ``columns`` are doubles.
      columns: The double columns to clean.
      value: The replacement; ``None`` writes null.
    """
    replacement = F.lit(value).cast("double")
    for name in columns:
        df = df.withColumn(name, F.when(is_non_finite(name), replacement).otherwise(F.col(name)))
    return df
