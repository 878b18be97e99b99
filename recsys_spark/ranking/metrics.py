"""Ranking metrics over scored candidate lists: nDCG@K per user and its mean, and AUC.

nDCG here re-ranks each user's candidate list: the ideal list orders the user's labelled
candidates, so positives that retrieval missed do not count. That makes rankers of the
same candidates comparable, but it is not the end-to-end nDCG that the evaluate job
reports.
"""

from __future__ import annotations

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import LABEL, SCORE, USER_ID, VIDEO_ID

NDCG = "ndcg"


def user_ndcg_at_k(
    scored: DataFrame,
    k: int,
    score_col: str = SCORE,
    label_col: str = LABEL,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
) -> DataFrame:
    """Compute binary-relevance nDCG@k of each user's candidates ordered by score.

    Equal scores are ordered by ``item_col`` ascending, so the result is deterministic.
    Users without a positive candidate have no ideal list and are left out.

    Args:
      scored: One row per (user, candidate) with ``score_col`` (higher is better) and
        ``label_col`` (positive when > 0).
      k: The cut-off.

    Returns:
      ``user_col`` and ``ndcg`` (double in [0, 1]), one row per user with a positive.
    """
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}.")
    relevant = (F.col(label_col) > 0).cast("double")
    by_score = Window.partitionBy(user_col).orderBy(F.col(score_col).desc(), F.col(item_col))
    ranked = scored.select(
        user_col, relevant.alias("_relevant"), F.row_number().over(by_score).alias("_rank")
    )
    discount = F.lit(1.0) / F.log2(F.col("_rank") + F.lit(1.0))
    per_user = ranked.groupBy(user_col).agg(
        F.sum(F.when(F.col("_rank") <= k, F.col("_relevant") * discount)).alias("_dcg"),
        F.sum("_relevant").cast("int").alias("_positives"),
    )
    # The ideal list puts min(positives, k) relevant items first.
    ideal = F.aggregate(
        F.sequence(F.lit(1), F.least(F.col("_positives"), F.lit(k))),
        F.lit(0.0),
        lambda total, rank: total + F.lit(1.0) / F.log2(rank.cast("double") + F.lit(1.0)),
    )
    return per_user.where(F.col("_positives") > 0).select(
        user_col, (F.coalesce(F.col("_dcg"), F.lit(0.0)) / ideal).alias(NDCG)
    )


def mean_ndcg_at_k(
    scored: DataFrame,
    k: int,
    score_col: str = SCORE,
    label_col: str = LABEL,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
) -> float | None:
    """Return the mean of :func:`user_ndcg_at_k` over users, or None without positives."""
    per_user = user_ndcg_at_k(scored, k, score_col, label_col, user_col, item_col)
    (row,) = per_user.agg(F.avg(NDCG).alias("mean")).collect()
    return row["mean"]


def auc(scored: DataFrame, score_col: str = SCORE, label_col: str = LABEL) -> float | None:
    """Return the area under the ROC curve of ``score_col`` for ``label_col``.

    Returns None when the rows hold a single class, where AUC is undefined.
    """
    counts = scored.agg(
        F.sum((F.col(label_col) > 0).cast("long")).alias("positives"),
        F.sum((F.col(label_col) <= 0).cast("long")).alias("negatives"),
    ).first()
    if not counts["positives"] or not counts["negatives"]:
        return None
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="_auc_score", labelCol="_auc_label", metricName="areaUnderROC"
    )
    return evaluator.evaluate(
        scored.select(
            F.col(score_col).cast("double").alias("_auc_score"),
            (F.col(label_col) > 0).cast("double").alias("_auc_label"),
        )
    )
