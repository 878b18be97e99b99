"""Second-stage ranking of retrieved candidates.

- :mod:`~recsys_spark.ranking.dataset`: ranking features and the labelled dataset.
- :mod:`~recsys_spark.ranking.pointwise`: logistic regression, rating regression and the
  XGBoost classifier (Spark ML pipelines).
- :mod:`~recsys_spark.ranking.pairwise`: the XGBoost ranker with per-user query groups.
- :mod:`~recsys_spark.ranking.neural`: the TensorFlow RankNet ranker.
- :mod:`~recsys_spark.ranking.selection`: training, comparison and choice of a ranker.
- :mod:`~recsys_spark.ranking.artifacts`: ``models/ranker/<version>`` and LATEST.
- :mod:`~recsys_spark.ranking.scoring`: :func:`score_candidates` for the recommend job.

TensorFlow and XGBoost are imported only when a ranker that needs them is trained or
loaded.
"""

from recsys_spark.ranking.dataset import FEATURE_COLUMNS, build_ranking_features
from recsys_spark.ranking.scoring import score_candidates

__all__ = ["FEATURE_COLUMNS", "build_ranking_features", "score_candidates"]
