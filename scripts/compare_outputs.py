"""Compare the outputs of two runs of the pipeline, for example on a cluster and in local mode.

    python scripts/compare_outputs.py LEFT_LAKE RIGHT_LAKE [--run-date YYYY-MM-DD]
        [--table recommendations | --table raw/interactions ...] [--tolerance 1e-6]

``recommendations`` (the default) is matched row by row on (user_id, rank): the two lakes
must have the same keys, and per key the same video_id and source, with scores at most
``--tolerance`` apart. run_id, model_version and generated_at are ignored, because they
differ between any two runs. Any other ``--table`` (a folder under the lake root) is
compared as a multiset of rows, without those three columns, after rounding floating
columns to ``--decimals`` places. Prints the number of differences and the first ones,
and exits 1 when there is any difference, 2 when an input is missing or invalid.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import io, output
from recsys_spark.columns import (
    GENERATED_AT,
    MODEL_VERSION,
    RANK,
    RUN_ID,
    SCORE,
    SOURCE,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.config import load_config
from recsys_spark.session import get_spark

logger = logging.getLogger("compare_outputs")

IGNORED_COLUMNS = (RUN_ID, MODEL_VERSION, GENERATED_AT)
KEY_COLUMNS = (USER_ID, RANK)
DIFFERENCE = "difference"
SIDE = "side"


def recommendation_differences(
    left: DataFrame, right: DataFrame, tolerance: float = 1e-6
) -> DataFrame:
    """Match two recommendation lists on (user_id, rank) and return the rows that differ.

    Args:
      left: ``user_id``, ``rank``, ``video_id``, ``source``, ``score``.
      right: The same columns.
      tolerance: Largest absolute score difference that counts as equal.

    Returns:
      ``user_id``, ``rank``, ``difference`` (``missing_left``, ``missing_right``, or the
      comma-separated differing columns among ``video_id``, ``source``, ``score``), and
      ``left_``/``right_`` ``video_id``, ``source``, ``score``; one row per differing key.
    """
    compared = (VIDEO_ID, SOURCE, SCORE)

    def side(df: DataFrame, prefix: str) -> DataFrame:
        return df.select(
            *KEY_COLUMNS,
            F.lit(True).alias(f"_{prefix}present"),
            *[F.col(name).alias(f"{prefix}{name}") for name in compared],
        )

    joined = side(left, "left_").join(side(right, "right_"), list(KEY_COLUMNS), "full_outer")
    score_gap = F.abs(F.col("left_score") - F.col("right_score"))
    score_differs = F.when(
        F.col("left_score").isNull() | F.col("right_score").isNull(),
        ~F.col("left_score").eqNullSafe(F.col("right_score")),
    ).otherwise(score_gap > F.lit(tolerance))
    mismatches = F.concat_ws(
        ",",
        F.when(~F.col("left_video_id").eqNullSafe(F.col("right_video_id")), F.lit(VIDEO_ID)),
        F.when(~F.col("left_source").eqNullSafe(F.col("right_source")), F.lit(SOURCE)),
        F.when(score_differs, F.lit(SCORE)),
    )
    difference = (
        F.when(F.col("_left_present").isNull(), F.lit("missing_left"))
        .when(F.col("_right_present").isNull(), F.lit("missing_right"))
        .otherwise(F.when(mismatches != "", mismatches))
    )
    return (
        joined.withColumn(DIFFERENCE, difference)
        .where(F.col(DIFFERENCE).isNotNull())
        .select(
            *KEY_COLUMNS,
            DIFFERENCE,
            *[f"{prefix}{name}" for name in compared for prefix in ("left_", "right_")],
        )
    )


def _comparable(df: DataFrame, decimals: int) -> DataFrame:
    """Drop the per-run columns, round floating columns and turn maps into sorted arrays."""
    columns = []
    for field in df.schema:
        if field.name in IGNORED_COLUMNS:
            continue
        column = F.col(field.name)
        if isinstance(field.dataType, (T.FloatType, T.DoubleType)):
            column = F.round(column, decimals)
        elif isinstance(field.dataType, T.MapType):
            # Maps cannot be compared, and their entry order is not part of their value.
            column = F.array_sort(F.map_entries(column))
        columns.append(column.alias(field.name))
    return df.select(*columns)


def row_differences(left: DataFrame, right: DataFrame, decimals: int = 6) -> DataFrame:
    """Return the rows found more often on one side than on the other.

    Args:
      left: Any table.
      right: A table with the same column names.
      decimals: Floating columns are rounded to this many decimal places first.

    Returns:
      The compared columns plus ``side`` (``left`` or ``right``: where the extra row is).

    Raises:
      ValueError: The two tables have different column names.
    """
    left, right = _comparable(left, decimals), _comparable(right, decimals)
    if sorted(left.columns) != sorted(right.columns):
        raise ValueError(
            f"The tables have different columns: left {sorted(left.columns)}, right "
            f"{sorted(right.columns)}; compare outputs of the same code version."
        )
    right = right.select(*left.columns)
    return (
        left.exceptAll(right)
        .withColumn(SIDE, F.lit("left"))
        .unionByName(right.exceptAll(left).withColumn(SIDE, F.lit("right")))
    )


def _read(spark: SparkSession, lake: io.Lake, table: str, run_date: Optional[str]) -> DataFrame:
    if table == output.RECOMMENDATIONS:
        date = run_date or output.latest_run_date(spark, lake)
        return output.read_partition(spark, lake, output.RECOMMENDATIONS, date)
    return io.read_table(spark, lake.path(table), table)


def compare_table(
    spark: SparkSession,
    left_root: str,
    right_root: str,
    table: str,
    args: argparse.Namespace,
) -> int:
    """Compare one table of the two lakes, log the first differences and return their count."""
    left = _read(spark, io.Lake(left_root), table, args.run_date)
    right = _read(spark, io.Lake(right_root), table, args.run_date)
    if table == output.RECOMMENDATIONS:
        differences = recommendation_differences(left, right, args.tolerance)
        order = list(KEY_COLUMNS)
    else:
        differences = row_differences(left, right, args.decimals)
        order = [SIDE, *[name for name in differences.columns if name != SIDE]]
    differences = differences.persist()
    count = differences.count()
    rows = left.count()
    if count:
        first = differences.orderBy(*order).limit(args.max_rows).toPandas()
        logger.error(
            "%s: %d differences (%d rows on the left); the first %d:\n%s",
            table,
            count,
            rows,
            len(first),
            first.to_string(index=False),
        )
    else:
        logger.info("%s: identical (%d rows)", table, rows)
    differences.unpersist()
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/compare_outputs.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("left", help="Lake root of the first run (lake.root).")
    parser.add_argument("right", help="Lake root of the second run.")
    parser.add_argument(
        "--table",
        action="append",
        default=[],
        help="Table folder under the lake root to compare; repeatable. Default: recommendations.",
    )
    parser.add_argument(
        "--run-date",
        help="Partition of recommendations to compare (YYYY-MM-DD); default: each lake's newest.",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-6,
        help="Largest absolute score difference in recommendations that counts as equal.",
    )
    parser.add_argument(
        "--decimals",
        type=int,
        default=6,
        help="Decimal places floating columns of other tables are rounded to before comparing.",
    )
    parser.add_argument("--max-rows", type=int, default=20, help="Differences printed per table.")
    parser.add_argument(
        "--master", default="local[2]", help="Spark master of the comparison (default local[2])."
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)

    if args.tolerance < 0:
        print(f"error: --tolerance must be >= 0, got {args.tolerance}.", file=sys.stderr)
        return 2
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    config = load_config(
        overrides=[
            f"spark.master={args.master}",
            "spark.driver_memory=2g",
            "spark.log_level=ERROR",
            "spark.conf={spark.ui.enabled: 'false'}",
            f"lake.root={args.left}",
        ]
    )
    spark = get_spark(config)

    tables = args.table or [output.RECOMMENDATIONS]
    try:
        counts = {
            table: compare_table(spark, args.left, args.right, table, args) for table in tables
        }
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    different = [table for table, count in counts.items() if count]
    if different:
        print(f"DIFFERENT: {', '.join(different)} ({args.left} vs {args.right})", file=sys.stderr)
        return 1
    print(f"IDENTICAL: {', '.join(tables)} ({args.left} vs {args.right})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
