"""The trained-ranker interface shared by every model family, and the retrieval baseline.

A trained ranker adds a ``score`` column (double, higher is better) to rows that carry
the feature columns of :data:`recsys_spark.ranking.dataset.FEATURE_COLUMNS`, and saves
itself to a folder of the lake that the matching loader in
:mod:`recsys_spark.ranking.scoring` reads back.
"""

from __future__ import annotations

import abc

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark.columns import RETRIEVAL_SCORE, SCORE

# Column names used inside the Spark ML pipelines; dropped before a score is returned.
FEATURES_VECTOR = "_features"
PREDICTION = "_prediction"
PROBABILITY = "_probability"
RAW_PREDICTION = "_raw_prediction"
PIPELINE_OUTPUTS = (FEATURES_VECTOR, PREDICTION, PROBABILITY, RAW_PREDICTION)

RETRIEVAL_ORDER = "retrieval_order"


class RankerNotApplicable(ValueError):
    """A ranker cannot be trained on this data (for example, no ratings for a rating model)."""


class Ranker(abc.ABC):
    """A trained ranker."""

    name: str

    @abc.abstractmethod
    def score(self, df: DataFrame) -> DataFrame:
        """Return ``df`` with ``score`` (double, higher is better) added."""

    @abc.abstractmethod
    def save(self, spark: SparkSession, path: str) -> None:
        """Write the model into the (new, empty) lake folder ``path``."""


class SparkMLRanker(Ranker):
    """A fitted Spark ML pipeline whose probability of class 1 or prediction is the score.

    Args:
      name: The ranker's name in ``ranker.models``.
      model: A pipeline of a VectorAssembler into ``_features`` and an estimator writing
        ``_probability`` (classifiers) or ``_prediction`` (regressors and rankers).
      output: ``probability`` or ``prediction``: the column that becomes the score.
    """

    def __init__(self, name: str, model: PipelineModel, output: str):
        if output not in ("probability", "prediction"):
            raise ValueError(f"output must be 'probability' or 'prediction', got {output!r}.")
        self.name = name
        self.model = model
        self.output = output

    def score(self, df: DataFrame) -> DataFrame:
        if SCORE in df.columns:
            df = df.drop(SCORE)
        transformed = self.model.transform(df)
        if self.output == "probability":
            value = vector_to_array(F.col(PROBABILITY)).getItem(1)
        else:
            value = F.col(PREDICTION)
        dropped = [name for name in PIPELINE_OUTPUTS if name in transformed.columns]
        return transformed.withColumn(SCORE, value.cast("double")).drop(*dropped)

    def save(self, spark: SparkSession, path: str) -> None:
        self.model.write().overwrite().save(path)

    @classmethod
    def load(cls, name: str, path: str, output: str) -> SparkMLRanker:
        return cls(name, PipelineModel.load(path), output)


class RetrievalOrder(Ranker):
    """The baseline: the retrieval score, so the list keeps the retrieval order."""

    name = RETRIEVAL_ORDER

    def score(self, df: DataFrame) -> DataFrame:
        return df.withColumn(SCORE, F.col(RETRIEVAL_SCORE).cast("double"))

    def save(self, spark: SparkSession, path: str) -> None:
        """Write nothing: the baseline has no parameters."""
