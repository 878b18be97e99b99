"""Train every configured ranker, compare them on the ranker-validation users, choose one.

Each ranker trains on the ``train`` users of the ranking dataset and is scored on the
``validation`` users, which no ranker has seen. The comparison table has one row per
configured ranker plus the retrieval order as the baseline. The chosen ranker has the
highest nDCG@k; AUC breaks ties, then the order of ``ranker.models``. When no ranker
beats the retrieval order, the retrieval order is chosen, so a worse ranker never ships.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import (
    DEFAULT_SEED,
    LABEL,
    SCORE,
    TRAIN,
    USER_ID,
    VALIDATION,
    VIDEO_ID,
)
from recsys_spark.ranking import metrics
from recsys_spark.ranking.base import RETRIEVAL_ORDER, Ranker, RankerNotApplicable, RetrievalOrder
from recsys_spark.ranking.dataset import (
    FEATURE_COLUMNS,
    RANKER_SPLIT,
    limit_negatives,
    require_columns,
)
from recsys_spark.ranking.neural import RANKNET, fit_ranknet
from recsys_spark.ranking.pairwise import XGBOOST_RANKER, fit_xgboost_ranker
from recsys_spark.ranking.pointwise import (
    LOGISTIC_REGRESSION,
    RATING_REGRESSION,
    XGBOOST_CLASSIFIER,
    fit_logistic_regression,
    fit_rating_regression,
    fit_xgboost_classifier,
)
from recsys_spark.settings import RankerConfig

logger = logging.getLogger(__name__)

Trainer = Callable[[DataFrame, RankerConfig, int], Ranker]

TRAINERS: dict[str, Trainer] = {
    LOGISTIC_REGRESSION: lambda train, config, seed: fit_logistic_regression(
        train, config.logistic_regression, FEATURE_COLUMNS
    ),
    RATING_REGRESSION: lambda train, config, seed: fit_rating_regression(
        train, config.rating_regression, FEATURE_COLUMNS, seed
    ),
    XGBOOST_CLASSIFIER: lambda train, config, seed: fit_xgboost_classifier(
        train, config.xgboost_classifier, FEATURE_COLUMNS, seed
    ),
    XGBOOST_RANKER: lambda train, config, seed: fit_xgboost_ranker(
        train, config.xgboost_ranker, FEATURE_COLUMNS, seed, config.k
    ),
    RANKNET: lambda train, config, seed: fit_ranknet(train, config.ranknet, FEATURE_COLUMNS, seed),
}

TRAINED = "trained"
SKIPPED = "skipped"


@dataclass
class Selection:
    """The outcome of :func:`train_and_select`.

    Attributes:
      chosen: The chosen ranker (possibly the retrieval-order baseline).
      comparison: One dict per row of the comparison table: ``model``, ``status``
        (``trained`` or ``skipped``), ``ndcg_at_k``, ``auc``, ``train_seconds``,
        ``reason`` (why a ranker was skipped), ``chosen`` (bool).
      k: The nDCG cut-off.
      rankers: Every trained ranker by name, the baseline included.
    """

    chosen: Ranker
    comparison: list[dict[str, Any]]
    k: int
    rankers: dict[str, Ranker]


def evaluate_ranker(ranker: Ranker, validation: DataFrame, k: int) -> dict[str, float | None]:
    """Return ``ndcg_at_k`` and ``auc`` of ``ranker`` on the ``validation`` rows.

    ``ndcg_at_k`` is the mean over users with a positive candidate. ``auc`` is one ROC
    AUC over all rows, so it also rewards scores that are comparable across users.
    """
    # The scores are cached because the metrics read them three times.
    scored = (
        ranker.score(validation)
        .select(USER_ID, VIDEO_ID, LABEL, SCORE)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        return {"ndcg_at_k": metrics.mean_ndcg_at_k(scored, k), "auc": metrics.auc(scored)}
    finally:
        scored.unpersist()


def _selection_key(row: dict[str, Any]) -> tuple[float, float]:
    auc = row["auc"] if row["auc"] is not None else float("-inf")
    return (row["ndcg_at_k"], auc)


def choose(comparison: list[dict[str, Any]]) -> str:
    """Return the name of the best trained row of the comparison table.

    Highest ``ndcg_at_k`` wins, then the highest ``auc``, then the earlier row. The
    retrieval-order row should come last, so a ranker that ties it is kept.

    Raises:
      ValueError: No trained row has an nDCG (no ranker-validation user has a positive).
    """
    candidates = [
        row for row in comparison if row["status"] == TRAINED and row["ndcg_at_k"] is not None
    ]
    if not candidates:
        raise ValueError(
            "No ranker could be evaluated: no ranker-validation user has a positive "
            "candidate. Use a longer validation period (training.validation_fraction), "
            "more users, or a larger ranker.validation_fraction."
        )
    best = candidates[0]
    for row in candidates[1:]:
        if _selection_key(row) > _selection_key(best):
            best = row
    return best["model"]


def train_and_select(
    dataset: DataFrame, config: RankerConfig, seed: int = DEFAULT_SEED
) -> Selection:
    """Train each ranker of ``config.models``, evaluate all on validation users, choose one.

    The dataset is read several times per ranker, so persist it first.

    Args:
      dataset: Output of :func:`~recsys_spark.ranking.dataset.build_ranking_dataset`:
        the feature columns, ``user_id``, ``user_idx``, ``video_id``, ``label``,
        ``rating`` and ``ranker_split``.
      config: The ``ranker`` config section.
      seed: Seed of every random step.

    Returns:
      The chosen ranker and the comparison table.
    """
    require_columns(dataset, (*FEATURE_COLUMNS, USER_ID, LABEL, RANKER_SPLIT), "ranking dataset")
    train = dataset.where(F.col(RANKER_SPLIT) == TRAIN)
    validation = dataset.where(F.col(RANKER_SPLIT) == VALIDATION)
    if config.max_negatives_per_user is not None:
        train = limit_negatives(train, config.max_negatives_per_user, seed).persist(
            StorageLevel.MEMORY_AND_DISK
        )
    try:
        rankers, comparison = _train_each(train, validation, config, seed)
    finally:
        if config.max_negatives_per_user is not None:
            train.unpersist()

    baseline = RetrievalOrder()
    rankers[RETRIEVAL_ORDER] = baseline
    comparison.append(
        _row(RETRIEVAL_ORDER, TRAINED, **evaluate_ranker(baseline, validation, config.k))
    )
    logger.info("Retrieval order: nDCG@%d %s", config.k, comparison[-1]["ndcg_at_k"])

    chosen = choose(comparison)
    for row in comparison:
        row["chosen"] = row["model"] == chosen
    if chosen == RETRIEVAL_ORDER:
        logger.warning(
            "No ranker beat the retrieval order on nDCG@%d; the retrieval order is chosen.",
            config.k,
        )
    return Selection(chosen=rankers[chosen], comparison=comparison, k=config.k, rankers=rankers)


def _train_each(
    train: DataFrame, validation: DataFrame, config: RankerConfig, seed: int
) -> tuple[dict[str, Ranker], list[dict[str, Any]]]:
    """Train and evaluate each ranker of ``config.models``, skipping those not applicable."""
    rankers: dict[str, Ranker] = {}
    comparison = []
    for name in config.models:
        started = time.perf_counter()
        try:
            ranker = TRAINERS[name](train, config, seed)
        except RankerNotApplicable as reason:
            logger.warning("Ranker %s skipped: %s", name, reason)
            comparison.append(_row(name, SKIPPED, reason=str(reason)))
            continue
        train_seconds = round(time.perf_counter() - started, 2)
        row = _row(name, TRAINED, **evaluate_ranker(ranker, validation, config.k))
        row["train_seconds"] = train_seconds
        logger.info(
            "Ranker %s: nDCG@%d %s, AUC %s, trained in %.1fs",
            name,
            config.k,
            row["ndcg_at_k"],
            row["auc"],
            train_seconds,
        )
        rankers[name] = ranker
        comparison.append(row)
    return rankers, comparison


def _row(model: str, status: str, **values: Any) -> dict[str, Any]:
    row = {
        "model": model,
        "status": status,
        "ndcg_at_k": None,
        "auc": None,
        "train_seconds": None,
        "reason": None,
    }
    row.update(values)
    return row
