"""Ranking accuracy on Spark: precision, recall, nDCG, MAP, MRR and hit rate at K.

Every metric is computed per user in one pass over the recommended rows joined with the
held-out relevant items, so the job gets per-user values and all cut-offs at once. The
definitions are those of Spark's ``RankingMetrics`` and of the Microsoft Recommenders
benchmark (relevance is binary, nDCG uses a log2 discount and its ideal DCG counts
``min(|relevant|, K)`` hits); :func:`evaluate_with_ranking_evaluator` recomputes four of
them with ``pyspark.ml.evaluation.RankingEvaluator`` as an independent check.

Users without any relevant item are excluded and counted, never scored as 0 or 1. Users
with relevant items but no recommendation are scored 0 and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import RANK, SCORE, USER_ID, VIDEO_ID

logger = logging.getLogger(__name__)

# Per-user metric names; the output columns are f"{name}_at_{k}".
METRICS = ("precision", "recall", "ndcg", "map", "map_capped", "mrr", "hit_rate")

NUM_RELEVANT = "num_relevant"
LIST_LENGTH = "list_length"

_POSITION = "_position"
_HIT = "_hit"
_CUMULATIVE_HITS = "_cumulative_hits"


def metric_column(name: str, k: int) -> str:
    """Return the column (and metrics.json key) of metric ``name`` at cut-off ``k``."""
    return f"{name}_at_{k}"


def validate_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Return the cut-offs sorted and de-duplicated, raising ValueError for a bad one."""
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in ks):
        raise ValueError(f"Cut-offs ks must be positive integers, got {list(ks)}.")
    return tuple(sorted(set(ks)))


def require_columns(df: DataFrame, columns: Sequence[str], table_name: str) -> None:
    """Raise ValueError naming ``table_name`` and the missing columns unless ``df`` has them."""
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise ValueError(
            f"{table_name} is missing columns {missing}; it has {df.columns}. "
            f"Expected at least {list(columns)}."
        )


def rank_by_score(
    df: DataFrame,
    score_col: str = SCORE,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
    k: int | None = None,
) -> DataFrame:
    """Number each user's rows 1, 2, ... by descending score.

    Equal scores are ordered by item id, so the ranking does not depend on partitioning.

    Args:
      df: Rows with ``user_col``, ``item_col`` and ``score_col``.
      k: Keep only the first ``k`` rows of each user; None keeps all.

    Returns:
      ``df`` with ``rank_col`` (int, 1-based) added or replaced.
    """
    require_columns(df, [user_col, item_col, score_col], "rank_by_score input")
    window = Window.partitionBy(user_col).orderBy(F.col(score_col).desc(), F.col(item_col))
    ranked = df.withColumn(rank_col, F.row_number().over(window).cast("int"))
    if k is not None:
        ranked = ranked.where(F.col(rank_col) <= k)
    return ranked


def _positions(
    recommendations: DataFrame, max_k: int, user_col: str, item_col: str, rank_col: str
) -> DataFrame:
    """Return (user, item, position) for the first ``max_k`` distinct items of each list.

    A repeated item keeps its best rank. Positions are 1, 2, ... in rank order (ties by
    item id), so gaps in the ranks do not create empty slots.
    """
    distinct = recommendations.groupBy(user_col, item_col).agg(F.min(rank_col).alias(rank_col))
    window = Window.partitionBy(user_col).orderBy(F.col(rank_col), F.col(item_col))
    return (
        distinct.withColumn(_POSITION, F.row_number().over(window))
        .where(F.col(_POSITION) <= max_k)
        .select(user_col, item_col, _POSITION)
    )


def _ideal_dcg(num_relevant: F.Column, k: int) -> F.Column:
    """Return the DCG of a list whose first ``min(num_relevant, k)`` items are all hits."""
    hits = F.least(num_relevant, F.lit(k))
    return F.aggregate(
        F.sequence(F.lit(1), hits),
        F.lit(0.0).cast("double"),
        lambda total, position: total + 1.0 / F.log2(position + 1),
    )


def _user_rows(
    recommendations: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int],
    user_col: str,
    item_col: str,
    rank_col: str,
) -> DataFrame:
    """Return one row per user found in either input, with the metric columns.

    ``num_relevant`` is null for users without relevant items (to be excluded), and
    ``list_length`` is 0 for users without recommendations.
    """
    ks = validate_ks(ks)
    require_columns(recommendations, [user_col, item_col, rank_col], "recommendations")
    require_columns(relevant, [user_col, item_col], "relevant items")

    positions = _positions(recommendations, max(ks), user_col, item_col, rank_col)
    relevant_pairs = relevant.select(user_col, item_col).distinct()
    hits = positions.join(
        relevant_pairs.withColumn(_HIT, F.lit(1)), [user_col, item_col], "left"
    ).withColumn(_HIT, F.coalesce(F.col(_HIT), F.lit(0)))
    running = (
        Window.partitionBy(user_col)
        .orderBy(_POSITION)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    hits = hits.withColumn(_CUMULATIVE_HITS, F.sum(_HIT).over(running))

    is_hit = F.col(_HIT) == 1
    aggregates = [
        F.count(F.lit(1)).alias(LIST_LENGTH),
        F.min(F.when(is_hit, F.col(_POSITION))).alias("_first_hit"),
    ]
    for k in ks:
        in_k = F.col(_POSITION) <= k
        aggregates += [
            F.sum(F.when(in_k, F.col(_HIT)).otherwise(0)).alias(f"_hits_{k}"),
            F.sum(F.when(in_k & is_hit, 1.0 / F.log2(F.col(_POSITION) + 1)).otherwise(0.0)).alias(
                f"_dcg_{k}"
            ),
            # Precision at the position of each hit, summed: the numerator of average precision.
            F.sum(
                F.when(in_k & is_hit, F.col(_CUMULATIVE_HITS) / F.col(_POSITION)).otherwise(0.0)
            ).alias(f"_precision_sum_{k}"),
        ]
    per_list = hits.groupBy(user_col).agg(*aggregates)

    relevant_counts = relevant_pairs.groupBy(user_col).agg(F.count(F.lit(1)).alias(NUM_RELEVANT))
    rows = relevant_counts.join(per_list, user_col, "full")

    num_relevant = F.col(NUM_RELEVANT)
    first_hit = F.col("_first_hit")
    columns = [
        F.col(user_col),
        num_relevant,
        F.coalesce(F.col(LIST_LENGTH), F.lit(0)).alias(LIST_LENGTH),
    ]
    for k in ks:
        hit_count = F.coalesce(F.col(f"_hits_{k}"), F.lit(0))
        dcg = F.coalesce(F.col(f"_dcg_{k}"), F.lit(0.0))
        precision_sum = F.coalesce(F.col(f"_precision_sum_{k}"), F.lit(0.0))
        found = first_hit.isNotNull() & (first_hit <= k)
        values = {
            "precision": hit_count / F.lit(float(k)),
            "recall": hit_count / num_relevant,
            "ndcg": dcg / _ideal_dcg(num_relevant, k),
            "map": precision_sum / num_relevant,
            "map_capped": precision_sum / F.least(num_relevant, F.lit(k)),
            "mrr": F.when(found, 1.0 / first_hit).otherwise(0.0),
            "hit_rate": F.when(found, 1.0).otherwise(0.0),
        }
        for name in METRICS:
            value = F.when(num_relevant.isNotNull(), values[name].cast("double"))
            columns.append(value.alias(metric_column(name, k)))
    return rows.select(*columns)


def per_user_ranking_metrics(
    recommendations: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int] = (10, 50, 100),
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Compute every ranking metric at every cut-off for each user with a relevant item.

    Metrics, all with binary relevance and per user (then averaged over users):

    - ``precision``: hits in the first K / K, also when the list is shorter than K.
    - ``recall``: hits in the first K / number of relevant items.
    - ``ndcg``: DCG with gain 1/log2(position + 1), over the DCG of a list whose first
      ``min(relevant, K)`` items are hits.
    - ``map``: sum of the precision at each hit's position in the first K, divided by the
      number of relevant items (the Microsoft Recommenders benchmark's MAP, and Spark's
      ``meanAveragePrecision`` on the list cut at K).
    - ``map_capped``: the same sum divided by ``min(relevant, K)`` (Spark's
      ``meanAveragePrecisionAtK``).
    - ``mrr``: 1 / position of the first hit in the first K, else 0.
    - ``hit_rate``: 1 when the first K contain a hit, else 0.

    Args:
      recommendations: One row per recommended item: ``user_col``, ``item_col``,
        ``rank_col`` (smaller is better; gaps and ties are allowed, ties are ordered by
        item id). A repeated (user, item) pair counts once, at its best rank.
      relevant: Held-out relevant pairs: ``user_col``, ``item_col``; duplicates count once.
      ks: Cut-offs.

    Returns:
      One row per user with at least one relevant item: ``user_col``, ``num_relevant``,
      ``list_length`` (distinct items recommended, at most max(ks)) and one double
      column per metric and cut-off, named by :func:`metric_column`. Users without
      recommendations are included with every metric 0.
    """
    rows = _user_rows(recommendations, relevant, ks, user_col, item_col, rank_col)
    return rows.where(F.col(NUM_RELEVANT).isNotNull())


def ranking_summary(
    recommendations: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int] = (10, 50, 100),
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Average the per-user metrics of :func:`per_user_ranking_metrics` and count users.

    Returns:
      One row with these columns:

      - ``users_evaluated``: users with a relevant item.
      - ``users_without_relevant``: users with recommendations but no relevant item,
        excluded from every mean.
      - ``users_without_recommendations``: evaluated users scored 0 because they have no
        list.
      - ``mean_list_length``: over evaluated users.
      - the mean of every metric column, null when no user is evaluated.
    """
    ks = validate_ks(ks)
    rows = _user_rows(recommendations, relevant, ks, user_col, item_col, rank_col)
    evaluated = F.col(NUM_RELEVANT).isNotNull()
    aggregates = [
        F.count(F.when(evaluated, 1)).alias("users_evaluated"),
        F.count(F.when(~evaluated, 1)).alias("users_without_relevant"),
        F.count(F.when(evaluated & (F.col(LIST_LENGTH) == 0), 1)).alias(
            "users_without_recommendations"
        ),
        F.avg(F.when(evaluated, F.col(LIST_LENGTH))).alias("mean_list_length"),
    ]
    for k in ks:
        for name in METRICS:
            column = metric_column(name, k)
            aggregates.append(F.avg(column).alias(column))
    return rows.agg(*aggregates)


# RankingEvaluator's metric names for the metrics it shares with per_user_ranking_metrics.
# "map" is meanAveragePrecision applied to the prediction list cut at K.
_RANKING_EVALUATOR_METRICS = {
    "precision": "precisionAtK",
    "recall": "recallAtK",
    "ndcg": "ndcgAtK",
    "map": "meanAveragePrecision",
    "map_capped": "meanAveragePrecisionAtK",
}


def evaluate_with_ranking_evaluator(
    recommendations: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int] = (10, 50, 100),
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> dict[str, float]:
    """Recompute precision, recall, nDCG and both MAPs with Spark's RankingEvaluator.

    Items are encoded as doubles with a StringIndexer fitted on both inputs, because the
    evaluator takes arrays of doubles. The user population is the one
    :func:`ranking_summary` evaluates: every user with a relevant item, with an empty
    prediction list where there is no recommendation.

    Note:
      This runs one Spark job per metric and cut-off; use it as a check, not as the
      main computation.

    Returns:
      ``{metric_column(name, k): mean}`` for precision, recall, ndcg, map and map_capped.
      An empty dict when no user has a relevant item (the evaluator would divide by 0).
    """
    from pyspark.ml.evaluation import RankingEvaluator
    from pyspark.ml.feature import StringIndexer

    ks = validate_ks(ks)
    positions = _positions(recommendations, max(ks), user_col, item_col, rank_col)
    relevant_pairs = relevant.select(user_col, item_col).distinct()
    items = positions.select(item_col).union(relevant_pairs.select(item_col)).distinct()
    indexer = StringIndexer(inputCol=item_col, outputCol="_item_index").fit(items)

    predictions = (
        indexer.transform(positions)
        .groupBy(user_col)
        .agg(F.sort_array(F.collect_list(F.struct(_POSITION, "_item_index"))).alias("_ranked"))
        .select(
            user_col, F.transform("_ranked", lambda entry: entry["_item_index"]).alias("prediction")
        )
    )
    labels = (
        indexer.transform(relevant_pairs)
        .groupBy(user_col)
        .agg(F.collect_list("_item_index").alias("label"))
    )
    lists = (
        labels.join(predictions, user_col, "left")
        .select(
            F.coalesce(F.col("prediction"), F.array().cast("array<double>")).alias("prediction"),
            F.col("label"),
        )
        .cache()
    )
    try:
        if lists.isEmpty():
            return {}
        results = {}
        for k in ks:
            cut = lists.withColumn("prediction", F.slice("prediction", 1, k))
            for name, spark_name in _RANKING_EVALUATOR_METRICS.items():
                evaluator = RankingEvaluator(metricName=spark_name, k=k)
                results[metric_column(name, k)] = float(evaluator.evaluate(cut))
        return results
    finally:
        lists.unpersist()
