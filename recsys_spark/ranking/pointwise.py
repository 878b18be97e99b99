"""Pointwise rankers: logistic regression, rating regression and the XGBoost classifier.

Each fit function takes the ranker-train rows of the ranking dataset and returns a
:class:`~recsys_spark.ranking.base.SparkMLRanker` wrapping a two-stage Spark ML pipeline:
a VectorAssembler of the feature columns, then the estimator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import DEFAULT_SEED, LABEL, RATING, USER_ID
from recsys_spark.ranking.base import (
    FEATURES_VECTOR,
    PREDICTION,
    PROBABILITY,
    RAW_PREDICTION,
    RankerNotApplicable,
    SparkMLRanker,
)
from recsys_spark.ranking.dataset import FEATURE_COLUMNS, require_columns
from recsys_spark.settings import (
    LogisticRegressionConfig,
    RatingRegressionConfig,
    XGBoostClassifierConfig,
)

logger = logging.getLogger(__name__)

LOGISTIC_REGRESSION = "logistic_regression"
RATING_REGRESSION = "rating_regression"
XGBOOST_CLASSIFIER = "xgboost_classifier"
# Marks the rows of XGBoost's early-stopping holdout.
XGBOOST_HOLDOUT = "_xgboost_holdout"


def feature_assembler(feature_columns: Sequence[str] = FEATURE_COLUMNS) -> VectorAssembler:
    """Return the VectorAssembler of ``feature_columns`` into ``_features``.

    It raises on a null feature (handleInvalid="error") because
    :func:`~recsys_spark.ranking.dataset.build_ranking_features` never writes one.
    """
    return VectorAssembler(
        inputCols=list(feature_columns), outputCol=FEATURES_VECTOR, handleInvalid="error"
    )


def fit_logistic_regression(
    train: DataFrame,
    config: LogisticRegressionConfig,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
) -> SparkMLRanker:
    """Fit an MLlib logistic regression of ``label`` on the features.

    ``standardization=True`` scales each feature to unit variance inside the optimiser,
    so the regularisation treats features of different units alike. The coefficients
    come back on the original scale.

    Required columns: the feature columns and ``label`` (0/1).
    """
    require_columns(train, (*feature_columns, LABEL), "ranker-train rows")
    estimator = LogisticRegression(
        featuresCol=FEATURES_VECTOR,
        labelCol=LABEL,
        predictionCol=PREDICTION,
        probabilityCol=PROBABILITY,
        rawPredictionCol=RAW_PREDICTION,
        standardization=True,
        regParam=config.reg_param,
        elasticNetParam=config.elastic_net_param,
        maxIter=config.max_iter,
    )
    model = Pipeline(stages=[feature_assembler(feature_columns), estimator]).fit(train)
    return SparkMLRanker(LOGISTIC_REGRESSION, model, "probability")


def fit_rating_regression(
    train: DataFrame,
    config: RatingRegressionConfig,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    seed: int = DEFAULT_SEED,
) -> SparkMLRanker:
    """Fit a regression of the explicit ``rating`` on the rows that have one.

    The score of a candidate is its predicted rating. Sources without ratings (watch and
    like events only) cannot train it.

    Required columns: the feature columns and ``rating`` (double, null when unrated).

    Raises:
      RankerNotApplicable: No ranker-train row has a rating.
    """
    require_columns(train, (*feature_columns, RATING), "ranker-train rows")
    rated = train.where(F.col(RATING).isNotNull())
    if rated.isEmpty():
        raise RankerNotApplicable(
            "no ranker-train candidate has a rating in the validation period "
            "(the source has no explicit ratings)"
        )
    if config.algorithm == "gbt":
        estimator = GBTRegressor(
            featuresCol=FEATURES_VECTOR,
            labelCol=RATING,
            predictionCol=PREDICTION,
            maxIter=config.max_iter,
            maxDepth=config.max_depth,
            seed=seed,
        )
    else:
        estimator = LinearRegression(
            featuresCol=FEATURES_VECTOR,
            labelCol=RATING,
            predictionCol=PREDICTION,
            maxIter=config.max_iter,
            regParam=config.reg_param,
            standardization=True,
        )
    model = Pipeline(stages=[feature_assembler(feature_columns), estimator]).fit(rated)
    return SparkMLRanker(RATING_REGRESSION, model, "prediction")


def early_stopping_holdout(
    train: DataFrame, config: XGBoostClassifierConfig, seed: int
) -> tuple[DataFrame, dict]:
    """Mark a seeded share of users as XGBoost's early-stopping holdout.

    Required columns: ``user_id`` and ``label``.

    Returns:
      The rows with the boolean column ``_xgboost_holdout`` and the estimator keyword
      arguments that enable early stopping on it. Without early stopping
      (``early_stopping_rounds`` null, or no positive among the held-out users), the
      rows unchanged and no arguments.
    """
    if config.early_stopping_rounds is None:
        return train, {}
    # The salt keeps this hash independent of the ranker split, which hashes the same
    # user ids with the same seed.
    bucket = F.pmod(
        F.xxhash64(F.lit(seed), F.lit("xgboost-holdout"), F.col(USER_ID)), F.lit(10_000)
    )
    threshold = round(config.holdout_fraction * 10_000)
    marked = train.withColumn(XGBOOST_HOLDOUT, bucket < F.lit(threshold))
    if marked.where(F.col(XGBOOST_HOLDOUT) & (F.col(LABEL) > 0)).isEmpty():
        logger.warning(
            "No positive among the users held out for XGBoost early stopping; training "
            "all %d rounds",
            config.n_estimators,
        )
        return train, {}
    arguments = {
        "validation_indicator_col": XGBOOST_HOLDOUT,
        "early_stopping_rounds": config.early_stopping_rounds,
    }
    return marked, arguments


def xgboost_params(config: XGBoostClassifierConfig, seed: int) -> dict:
    """Return the xgboost.spark keyword arguments shared by the classifier and the ranker."""
    return {
        "n_estimators": config.n_estimators,
        "max_depth": config.max_depth,
        "learning_rate": config.learning_rate,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "min_child_weight": config.min_child_weight,
        "reg_lambda": config.reg_lambda,
        "num_workers": config.num_workers,
        "random_state": seed,
        # No training-loss line per boosting round in the log.
        "verbose": False,
    }


def fit_xgboost_classifier(
    train: DataFrame,
    config: XGBoostClassifierConfig,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    seed: int = DEFAULT_SEED,
) -> SparkMLRanker:
    """Fit a gradient-boosted tree classifier (xgboost.spark) of ``label``.

    SparkXGBClassifier picks ``binary:logistic`` itself for two classes and rejects an
    explicit objective. Boosting stops early on the held-out log loss of
    :func:`early_stopping_holdout`.

    Required columns: the feature columns, ``user_id`` and ``label`` (0/1).
    """
    from xgboost.spark import SparkXGBClassifier

    require_columns(train, (*feature_columns, USER_ID, LABEL), "ranker-train rows")
    rows, early_stopping = early_stopping_holdout(train, config, seed)
    estimator = SparkXGBClassifier(
        features_col=FEATURES_VECTOR,
        label_col=LABEL,
        prediction_col=PREDICTION,
        probability_col=PROBABILITY,
        raw_prediction_col=RAW_PREDICTION,
        eval_metric="logloss",
        **early_stopping,
        **xgboost_params(config, seed),
    )
    model = Pipeline(stages=[feature_assembler(feature_columns), estimator]).fit(rows)
    return SparkMLRanker(XGBOOST_CLASSIFIER, model, "probability")
