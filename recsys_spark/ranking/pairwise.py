"""The XGBoost pairwise ranker, and query groups laid out as xgboost.spark needs them.

XGBoost builds each worker's query groups from the rows of one Spark partition, in
order, and requires the query id to be non-decreasing within it. xgboost.spark 3.2
(``xgboost/spark/core.py``, ``_prepare_input``) always sorts within partitions. It
repartitions by query id only when the partition count differs from ``num_workers`` or
``force_repartition`` is set. Otherwise a user whose rows sit in two partitions becomes
two partial groups on two workers. :func:`group_by_query` puts each user in one
partition whatever the input partitioning, with exactly ``num_workers`` partitions, so
the estimator keeps that layout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.ml import Pipeline
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import DEFAULT_SEED, LABEL, USER_ID, USER_IDX, VIDEO_ID
from recsys_spark.ranking.base import (
    FEATURES_VECTOR,
    PREDICTION,
    RankerNotApplicable,
    SparkMLRanker,
)
from recsys_spark.ranking.dataset import FEATURE_COLUMNS, require_columns
from recsys_spark.ranking.pointwise import (
    early_stopping_holdout,
    feature_assembler,
    xgboost_params,
)
from recsys_spark.settings import XGBoostRankerConfig

logger = logging.getLogger(__name__)

XGBOOST_RANKER = "xgboost_ranker"
QID = "_qid"


def group_by_query(
    df: DataFrame, qid_col: str, num_partitions: int, order_col: str = VIDEO_ID
) -> DataFrame:
    """Put each query's rows in one partition, contiguous and sorted by query id.

    Hash partitioning on ``qid_col`` sends all rows of a query to the same partition.
    Sorting within partitions by (``qid_col``, ``order_col``) then makes them contiguous
    and fixes their order.

    Args:
      df: Rows with an integer ``qid_col``.
      qid_col: The query id column (one query group per value).
      num_partitions: The partition count of the result; set it to XGBoost's
        ``num_workers``.
      order_col: Tie-breaker that fixes the row order within a query.
    """
    require_columns(df, (qid_col, order_col), "query rows")
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}.")
    return df.repartition(num_partitions, F.col(qid_col)).sortWithinPartitions(qid_col, order_col)


def _queries_with_positives(train: DataFrame) -> DataFrame:
    """Keep users with a positive and a negative candidate: other groups make no pairs."""
    by_user = Window.partitionBy(USER_ID)
    return (
        train.withColumn("_positives", F.sum(F.col(LABEL)).over(by_user))
        .withColumn("_rows", F.count(F.lit(1)).over(by_user))
        .where((F.col("_positives") > 0) & (F.col("_positives") < F.col("_rows")))
        .drop("_positives", "_rows")
    )


def fit_xgboost_ranker(
    train: DataFrame,
    config: XGBoostRankerConfig,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    seed: int = DEFAULT_SEED,
    metric_k: int = 10,
) -> SparkMLRanker:
    """Fit xgboost.spark.SparkXGBRanker with one query group per user (qid = user_idx).

    Rows of users without features (null ``user_idx``) and users whose candidates are
    all positive or all negative are left out, because they contribute no pairs.
    Boosting stops early on the nDCG@``metric_k`` of the held-out users of
    :func:`~recsys_spark.ranking.pointwise.early_stopping_holdout`. Their rows share
    the partition layout of the training rows, so their query groups stay whole too.

    Required columns: the feature columns, ``user_id``, ``user_idx``, ``video_id`` and
    ``label`` (0/1).

    Raises:
      RankerNotApplicable: No user has both a positive and a negative candidate.
    """
    from xgboost.spark import SparkXGBRanker

    require_columns(
        train, (*feature_columns, USER_ID, USER_IDX, VIDEO_ID, LABEL), "ranker-train rows"
    )
    queries = _queries_with_positives(train.where(F.col(USER_IDX).isNotNull()))
    if queries.isEmpty():
        raise RankerNotApplicable(
            "no ranker-train user with features has both a positive and a negative candidate"
        )
    rows, early_stopping = early_stopping_holdout(queries, config, seed)
    grouped = group_by_query(
        rows.withColumn(QID, F.col(USER_IDX).cast("long")), QID, config.num_workers
    )
    estimator = SparkXGBRanker(
        features_col=FEATURES_VECTOR,
        label_col=LABEL,
        prediction_col=PREDICTION,
        qid_col=QID,
        objective=config.objective,
        eval_metric=f"ndcg@{metric_k}",
        force_repartition=False,
        **early_stopping,
        **xgboost_params(config, seed),
    )
    model = Pipeline(stages=[feature_assembler(feature_columns), estimator]).fit(grouped)
    return SparkMLRanker(XGBOOST_RANKER, model, "prediction")
