"""Dense integer indices for string ids, as the models' embedding tables need them.

Index 0 is reserved for ids a model has not seen (``columns.OOV_INDEX``); the known ids
get 1, 2, ... in Spark's string order (by UTF-8 bytes, so ``"10"`` sorts before ``"9"``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def build_id_map(ids: DataFrame, id_column: str, index_column: str) -> DataFrame:
    """Number the distinct ids of ``ids`` densely from 1 in id order.

    The ids are sorted with a range shuffle and numbered with ``RDD.zipWithIndex``, which
    counts the rows of each sorted partition in one job and numbers them in a second. Both
    jobs read the same shuffle output, so the numbering is consistent. Two DataFrame
    queries (sizes, then positions) can each plan their own range shuffle and partition
    the same ids differently. Only the ids pass through Python, never other columns.

    Args:
      ids: Contains ``id_column`` (string); nulls and repeated ids are dropped.
      id_column: The id column, for example ``user_id``.
      index_column: The output index column, for example ``user_idx``.

    Returns:
      ``id_column`` and ``index_column`` (long, 1 to the number of distinct ids).
    """
    spark = ids.sparkSession
    ordered = (
        ids.select(F.col(id_column).cast(T.StringType()))
        .where(F.col(id_column).isNotNull())
        .distinct()
        .orderBy(id_column)
    )
    numbered = ordered.rdd.zipWithIndex().map(lambda pair: (pair[0][0], pair[1] + 1))
    schema = T.StructType(
        [
            T.StructField(id_column, T.StringType(), False),
            T.StructField(index_column, T.LongType(), False),
        ]
    )
    return spark.createDataFrame(numbered, schema)
