"""Peer recommenders for the benchmark, from real libraries: popularity and Spark MLlib
ALS on Spark, EASE and BPR from cornac on the driver.

Each peer has ``fit(train)`` and ``recommend(k)``. ``recommend`` returns the top ``k``
items for every user of the training data. As in the Microsoft Recommenders benchmark,
only training items are recommended, and each user's own training items are removed.

Note:
  The cornac peers collect the training interactions to the driver and score every
  (user, item) pair there in numpy, which suits MovieLens 100K and 1M but not a
  catalog of millions. EASE also keeps a dense items x items matrix in memory.
"""

from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import DEFAULT_SEED, RANK, RATING, SCORE, USER_ID, VIDEO_ID
from recsys_spark.evaluation.metrics import rank_by_score, require_columns
from recsys_spark.id_maps import build_id_map
from recsys_spark.settings import AlsPeerConfig, BprPeerConfig, EasePeerConfig

logger = logging.getLogger(__name__)

RECOMMENDATION_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(SCORE, T.DoubleType(), False),
    ]
)

_USER_INDEX = "_user_index"
_ITEM_INDEX = "_item_index"


def _pairs(train: DataFrame) -> DataFrame:
    require_columns(train, [USER_ID, VIDEO_ID], "training interactions")
    return train.select(USER_ID, VIDEO_ID).distinct()


def _max_items_per_user(pairs: DataFrame) -> int:
    row = pairs.groupBy(USER_ID).count().agg(F.max("count").alias("most")).collect()[0]
    return int(row["most"] or 0)


def _finish(scored: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """Drop seen pairs, keep each user's top ``k`` by score and add the 1-based rank."""
    unseen = scored.join(seen, [USER_ID, VIDEO_ID], "left_anti")
    return rank_by_score(unseen, k=k).select(USER_ID, VIDEO_ID, RANK, SCORE)


class PopularityPeer:
    """Recommend the items most users interacted with in training, unseen ones first."""

    name = "popularity"

    def __init__(self):
        self._pairs: DataFrame | None = None
        self._counts: DataFrame | None = None
        self._max_seen = 0

    def fit(self, train: DataFrame) -> None:
        self._pairs = _pairs(train).cache()
        self._counts = (
            self._pairs.groupBy(VIDEO_ID).agg(F.count(F.lit(1)).cast("double").alias(SCORE)).cache()
        )
        self._max_seen = _max_items_per_user(self._pairs)

    def recommend(self, k: int) -> DataFrame:
        if self._pairs is None:
            raise ValueError("PopularityPeer.recommend called before fit.")
        # Every user has at most _max_seen training items, so the k + _max_seen most
        # popular items always contain k unseen ones (when the catalog has them).
        ranked = rank_by_score(
            self._counts.withColumn(USER_ID, F.lit("")), user_col=USER_ID, k=k + self._max_seen
        ).drop(USER_ID, RANK)
        users = self._pairs.select(USER_ID).distinct()
        return _finish(users.crossJoin(F.broadcast(ranked)), self._pairs, k)


class AlsPeer:
    """Spark MLlib ALS, explicit (ratings) or implicit (every interaction has value 1).

    ALS checkpoints its factors every 10 iterations when the SparkContext has a checkpoint
    folder. Without one, the lineage of 15 iterations overflowed the stack when a task was
    serialized (pyspark 4.3, local mode), so ``fit`` sets ``checkpoint_dir`` when the
    context has none.
    """

    def __init__(
        self,
        name: str,
        settings: AlsPeerConfig,
        seed: int = DEFAULT_SEED,
        checkpoint_dir: str | None = None,
    ):
        self.name = name
        self.settings = settings
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self._model = None

    def fit(self, train: DataFrame) -> None:
        from pyspark.ml.recommendation import ALS

        context = train.sparkSession.sparkContext
        if context.getCheckpointDir() is None:
            if self.checkpoint_dir is None:
                raise ValueError(
                    f"{self.name} needs a checkpoint folder: pass checkpoint_dir (a path all "
                    "executors can reach) or call SparkContext.setCheckpointDir first."
                )
            context.setCheckpointDir(self.checkpoint_dir)
        pairs = _pairs(train)
        if self.settings.implicit_prefs:
            values = pairs.withColumn(RATING, F.lit(1.0))
        else:
            require_columns(train, [RATING], "training interactions for explicit ALS")
            values = train.groupBy(USER_ID, VIDEO_ID).agg(F.avg(RATING).alias(RATING))
            values = values.where(F.col(RATING).isNotNull())
        self._users = build_id_map(pairs, USER_ID, _USER_INDEX).cache()
        self._items = build_id_map(pairs, VIDEO_ID, _ITEM_INDEX).cache()
        self._pairs = pairs.cache()
        indexed = (
            values.join(self._users, USER_ID)
            .join(self._items, VIDEO_ID)
            .select(F.col(_USER_INDEX).cast("int"), F.col(_ITEM_INDEX).cast("int"), F.col(RATING))
        )
        als = ALS(
            rank=self.settings.rank,
            maxIter=self.settings.max_iter,
            regParam=self.settings.reg_param,
            alpha=self.settings.alpha,
            implicitPrefs=self.settings.implicit_prefs,
            userCol=_USER_INDEX,
            itemCol=_ITEM_INDEX,
            ratingCol=RATING,
            coldStartStrategy="drop",
            nonnegative=False,
            seed=self.seed,
        )
        self._model = als.fit(indexed)
        self._max_seen = _max_items_per_user(self._pairs)
        self._num_items = self._items.count()

    def recommend(self, k: int) -> DataFrame:
        if self._model is None:
            raise ValueError(f"{self.name}.recommend called before fit.")
        fetch = min(k + self._max_seen, self._num_items)
        exploded = self._model.recommendForAllUsers(fetch).select(
            _USER_INDEX, F.explode("recommendations").alias("_entry")
        )
        scored = (
            exploded.select(
                F.col(_USER_INDEX).cast("long"),
                F.col("_entry").getField(_ITEM_INDEX).cast("long").alias(_ITEM_INDEX),
                F.col("_entry").getField("rating").cast("double").alias(SCORE),
            )
            .join(self._users, _USER_INDEX)
            .join(F.broadcast(self._items), _ITEM_INDEX)
            .select(USER_ID, VIDEO_ID, SCORE)
        )
        return _finish(scored, self._pairs, k)


def _import_cornac():
    try:
        import cornac
    except ImportError as error:
        raise ImportError(
            "cornac is not installed, so the EASE and BPR peers cannot run. Install the "
            "benchmark extra: pip install -e '.[bench]'."
        ) from error
    return cornac


class CornacPeer:
    """EASE or BPR from cornac, trained and scored on the driver."""

    def __init__(
        self, name: str, settings: EasePeerConfig | BprPeerConfig, seed: int = DEFAULT_SEED
    ):
        if not isinstance(settings, (EasePeerConfig, BprPeerConfig)):
            raise TypeError(
                f"settings must be EasePeerConfig or BprPeerConfig, got {type(settings).__name__}."
            )
        self.name = name
        self.settings = settings
        self.seed = seed
        self._model = None

    def _build_model(self, cornac):
        if isinstance(self.settings, EasePeerConfig):
            return cornac.models.EASE(
                lamb=self.settings.lamb,
                posB=self.settings.positive_weights,
                verbose=False,
                seed=self.seed,
            )
        return cornac.models.BPR(
            k=self.settings.k,
            max_iter=self.settings.max_iter,
            learning_rate=self.settings.learning_rate,
            lambda_reg=self.settings.lambda_reg,
            verbose=False,
            seed=self.seed,
        )

    def fit(self, train: DataFrame) -> None:
        cornac = _import_cornac()
        binary = isinstance(self.settings, BprPeerConfig) or self.settings.binary
        if binary or RATING not in train.columns:
            values = _pairs(train).withColumn(RATING, F.lit(1.0))
        else:
            values = train.groupBy(USER_ID, VIDEO_ID).agg(F.avg(RATING).alias(RATING))
            values = values.fillna(1.0, [RATING])
        frame = values.select(USER_ID, VIDEO_ID, F.col(RATING).cast("double")).toPandas()
        triples = list(frame.itertuples(index=False, name=None))
        self._dataset = cornac.data.Dataset.from_uir(triples, seed=self.seed)
        self._model = self._build_model(cornac)
        self._model.fit(self._dataset)
        self._spark = train.sparkSession

    def _scores(self, user_indices: np.ndarray) -> np.ndarray:
        """Return scores of shape (users, items) for a batch of cornac user indices."""
        model = self._model
        if isinstance(self.settings, EasePeerConfig):
            return np.asarray(model.U[user_indices].dot(model.B))
        scores = model.u_factors[user_indices] @ model.i_factors.T
        if getattr(model, "i_biases", None) is not None:
            scores = scores + model.i_biases
        return scores

    def recommend(self, k: int, batch_size: int = 1024) -> DataFrame:
        if self._model is None:
            raise ValueError(f"{self.name}.recommend called before fit.")
        dataset = self._dataset
        user_ids = np.array(list(dataset.user_ids), dtype=object)
        item_ids = np.array(list(dataset.item_ids), dtype=object)
        seen = dataset.csr_matrix
        take = min(k, len(item_ids))
        rows = []
        for start in range(0, len(user_ids), batch_size):
            batch = np.arange(start, min(start + batch_size, len(user_ids)))
            scores = np.array(self._scores(batch), dtype=np.float64)
            seen_rows, seen_cols = seen[batch].nonzero()
            scores[seen_rows, seen_cols] = -np.inf
            # argpartition finds the top `take`; the final order comes from rank_by_score.
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            for row, user in enumerate(batch):
                for column in top[row]:
                    score = scores[row, column]
                    if np.isfinite(score):
                        rows.append((user_ids[user], item_ids[column], float(score)))
        scored = self._spark.createDataFrame(rows, RECOMMENDATION_SCHEMA)
        return rank_by_score(scored, k=k).select(USER_ID, VIDEO_ID, RANK, SCORE)
