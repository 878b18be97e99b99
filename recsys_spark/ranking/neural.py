"""RankNet: a TensorFlow MLP scorer trained with the pairwise logistic loss.

Training runs on the driver from a bounded sample of whole users
(``ranker.ranknet.max_train_rows``), because pairs are drawn within a user and the
sample must keep each user's candidates together. Scoring runs on the executors with
``mapInPandas``. The SavedModel is shipped as a zip file with ``SparkContext.addFile``
and loaded once per Python worker.

The model takes the raw feature matrix (float32, shape ``[batch, len(FEATURE_COLUMNS)]``)
and normalises it with the mean and variance of the training sample, so no scaler has
to be saved beside it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import io, shipping
from recsys_spark.columns import DEFAULT_SEED, LABEL, SCORE, USER_ID, VIDEO_ID
from recsys_spark.ranking.base import Ranker, RankerNotApplicable
from recsys_spark.ranking.dataset import FEATURE_COLUMNS, limit_negatives, require_columns
from recsys_spark.settings import RankNetConfig

logger = logging.getLogger(__name__)

RANKNET = "ranknet"

# SavedModels loaded by this Python worker, keyed by their unpacked local folder.
_WORKER_MODELS: dict[str, Any] = {}


def ranknet_loss(positive_scores, negative_scores):
    """Return the mean RankNet loss of pairs whose first item is the preferred one.

    For a pair with score difference ``d = s_positive - s_negative``, RankNet models the
    probability that the positive ranks first as ``sigmoid(d)``. With target
    probability 1, the cross-entropy is ``-log(sigmoid(d)) = softplus(-d)``, which is
    ``log(1 + exp(-d))``.

    Args:
      positive_scores: float tensor of shape ``[pairs]`` (or ``[pairs, 1]``).
      negative_scores: float tensor of the same shape.

    Returns:
      A scalar float tensor.
    """
    from recsys_spark.tf_env import tf

    difference = tf.reshape(positive_scores, [-1]) - tf.reshape(negative_scores, [-1])
    return tf.reduce_mean(tf.nn.softplus(-difference))


def sample_pairs(
    labels: np.ndarray, groups: np.ndarray, max_pairs_per_group: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (positive, negative) row pairs within each group.

    A group with at most ``max_pairs_per_group`` pairs contributes all of them; a larger
    one contributes that many pairs drawn uniformly with replacement.

    Args:
      labels: Shape ``[rows]``; a row is positive when its label is > 0.
      groups: Shape ``[rows]``; the group (user) of each row, in any order.
      max_pairs_per_group: Upper bound of pairs per group.
      rng: The source of randomness.

    Returns:
      Two int arrays of equal length: row indices of the positives and of the negatives.
    """
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(groups[order])) + 1
    positive_rows, negative_rows = [], []
    for members in np.split(order, boundaries):
        positives = members[labels[members] > 0]
        negatives = members[labels[members] <= 0]
        if len(positives) == 0 or len(negatives) == 0:
            continue
        if len(positives) * len(negatives) <= max_pairs_per_group:
            first, second = np.meshgrid(positives, negatives, indexing="ij")
            positive_rows.append(first.ravel())
            negative_rows.append(second.ravel())
        else:
            positive_rows.append(rng.choice(positives, size=max_pairs_per_group))
            negative_rows.append(rng.choice(negatives, size=max_pairs_per_group))
    if not positive_rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return (
        np.concatenate(positive_rows).astype(np.int64),
        np.concatenate(negative_rows).astype(np.int64),
    )


def driver_sample(train: DataFrame, negatives_per_user: int, max_rows: int, seed: int) -> DataFrame:
    """Select the rows RankNet trains on: users with a positive, few negatives, few users.

    Users without a positive make no pairs and are dropped. Each remaining user keeps
    every positive and ``negatives_per_user`` seeded-random negatives. When that is
    still more than ``max_rows`` rows, a seeded hash sample of whole users of about
    ``max_rows`` rows is kept.

    Required columns: ``user_id``, ``video_id`` and ``label``.
    """
    with_positive = train.withColumn(
        "_user_positives", F.sum(F.col(LABEL)).over(Window.partitionBy(USER_ID))
    )
    rows = limit_negatives(
        with_positive.where(F.col("_user_positives") > 0).drop("_user_positives"),
        negatives_per_user,
        seed,
    )
    count = rows.count()
    if count <= max_rows:
        return rows
    fraction = max_rows / count
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col(USER_ID)), F.lit(1_000_000))
    logger.info("RankNet trains on about %d of %d rows (whole users, seeded)", max_rows, count)
    return rows.where(bucket < F.lit(int(fraction * 1_000_000)))


def _build_scorer(features: np.ndarray, config: RankNetConfig):
    from recsys_spark.tf_env import tf

    normalization = tf.keras.layers.Normalization(axis=-1)
    normalization.adapt(features)
    layers = [tf.keras.Input(shape=(features.shape[1],), dtype=tf.float32), normalization]
    layers += [tf.keras.layers.Dense(units, activation="relu") for units in config.hidden_units]
    layers.append(tf.keras.layers.Dense(1))
    return tf.keras.Sequential(layers)


def _pairs_among(
    rows: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    max_pairs_per_group: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Return :func:`sample_pairs` of the subset ``rows``, as indices of all rows."""
    positive_rows, negative_rows = sample_pairs(
        labels[rows], groups[rows], max_pairs_per_group, rng
    )
    return rows[positive_rows], rows[negative_rows]


def _train_scorer(
    scorer,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    fit_rows: np.ndarray,
    holdout: tuple[np.ndarray, np.ndarray],
    config: RankNetConfig,
    rng: np.random.Generator,
) -> None:
    """Train ``scorer`` in place on pairs of ``fit_rows``, stopping early on ``holdout``."""
    from recsys_spark.tf_env import tf

    optimizer = tf.keras.optimizers.Adam(learning_rate=config.learning_rate)
    feature_tensor = tf.constant(features)
    rows = tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[rows, rows])
    def train_step(positive_rows, negative_rows):
        with tf.GradientTape() as tape:
            positive_scores = scorer(tf.gather(feature_tensor, positive_rows), training=True)
            negative_scores = scorer(tf.gather(feature_tensor, negative_rows), training=True)
            loss = ranknet_loss(positive_scores, negative_scores)
        gradients = tape.gradient(loss, scorer.trainable_variables)
        optimizer.apply_gradients(zip(gradients, scorer.trainable_variables, strict=True))
        return loss

    @tf.function(input_signature=[rows, rows])
    def holdout_loss(positive_rows, negative_rows):
        positive_scores = scorer(tf.gather(feature_tensor, positive_rows), training=False)
        negative_scores = scorer(tf.gather(feature_tensor, negative_rows), training=False)
        return ranknet_loss(positive_scores, negative_scores)

    # Too few sampled users can leave no held-out pairs: then all epochs run.
    early_stopping = len(holdout[0]) > 0
    best_loss, best_weights, stale_epochs = float("inf"), scorer.get_weights(), 0
    for epoch in range(config.epochs):
        positive_rows, negative_rows = _pairs_among(
            fit_rows, labels, groups, config.max_pairs_per_user, rng
        )
        shuffled = rng.permutation(len(positive_rows))
        losses = []
        for start in range(0, len(shuffled), config.batch_size):
            batch = shuffled[start : start + config.batch_size]
            losses.append(float(train_step(positive_rows[batch], negative_rows[batch])))
        held_out_loss = float(holdout_loss(*holdout)) if early_stopping else float("nan")
        logger.info(
            "RankNet epoch %d/%d: %d pairs, loss %.4f, held-out loss %.4f",
            epoch + 1,
            config.epochs,
            len(shuffled),
            float(np.mean(losses)),
            held_out_loss,
        )
        if not early_stopping:
            continue
        if held_out_loss < best_loss:
            best_loss, best_weights, stale_epochs = held_out_loss, scorer.get_weights(), 0
            continue
        stale_epochs += 1
        if stale_epochs >= config.early_stopping_patience:
            break
    if early_stopping:
        logger.info("RankNet keeps the weights of its best held-out loss, %.4f", best_loss)
        scorer.set_weights(best_weights)


def fit_ranknet(
    train: DataFrame,
    config: RankNetConfig,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    seed: int = DEFAULT_SEED,
) -> RankNetRanker:
    """Train the RankNet MLP on (positive, negative) pairs of the same user.

    The rows of :func:`driver_sample` are collected to the driver. A seeded
    ``config.holdout_fraction`` of their users is held out: training stops when the
    RankNet loss on the held-out users' pairs has not improved for
    ``config.early_stopping_patience`` epochs, and the weights of the best epoch are
    kept. Each epoch draws fresh training pairs with :func:`sample_pairs`.

    Required columns: the feature columns, ``user_id``, ``video_id`` and ``label`` (0/1).

    Raises:
      RankerNotApplicable: The sample has no user with a positive and a negative.
    """
    from recsys_spark.tf_env import tf

    require_columns(train, (*feature_columns, USER_ID, VIDEO_ID, LABEL), "ranker-train rows")
    sample = driver_sample(train, config.negatives_per_user, config.max_train_rows, seed)
    # Sorted, so the pairs and the held-out users do not depend on the partitioning.
    frame = (
        sample.select(USER_ID, VIDEO_ID, LABEL, *feature_columns)
        .toPandas()
        .sort_values([USER_ID, VIDEO_ID], kind="stable", ignore_index=True)
    )
    features = frame[list(feature_columns)].to_numpy(dtype=np.float32)
    labels = frame[LABEL].to_numpy()
    groups = pd.factorize(frame[USER_ID], sort=True)[0]

    no_pairs = RankerNotApplicable(
        "no sampled ranker-train user has both a positive and a negative candidate"
    )
    if frame.empty:
        raise no_pairs
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    held_out_groups = rng.random(groups.max() + 1) < config.holdout_fraction
    fit_rows = np.flatnonzero(~held_out_groups[groups])
    holdout = _pairs_among(
        np.flatnonzero(held_out_groups[groups]), labels, groups, config.max_pairs_per_user, rng
    )
    if len(_pairs_among(fit_rows, labels, groups, config.max_pairs_per_user, rng)[0]) == 0:
        raise no_pairs

    scorer = _build_scorer(features[fit_rows], config)
    _train_scorer(scorer, features, labels, groups, fit_rows, holdout, config, rng)
    return RankNetRanker(export_scorer(scorer, len(feature_columns)), tuple(feature_columns))


def export_scorer(scorer, num_features: int) -> str:
    """Save ``scorer`` as a SavedModel with a ``score`` function and return its local path.

    The SavedModel is written to a new temporary folder that is removed when Python
    exits.
    """
    from recsys_spark.tf_env import tf

    class _Module(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, num_features], tf.float32)])
        def score(self, features):
            return tf.reshape(self.model(features, training=False), [-1])

    path = os.path.join(shipping.temporary_folder("recsys-ranknet-"), "saved_model")
    tf.saved_model.save(_Module(scorer), path)
    return path


def _worker_model(archive_name: str):
    """Return the SavedModel shipped as ``archive_name``, loaded once per Python worker.

    The first call in a worker unpacks the archive into a temporary folder of the worker.
    """
    folder = shipping.local_folder(archive_name)
    if folder not in _WORKER_MODELS:
        from recsys_spark.tf_env import tf

        _WORKER_MODELS[folder] = tf.saved_model.load(folder)
    return _WORKER_MODELS[folder]


def _score_batches(
    batches: Iterator[pd.DataFrame], archive_name: str, feature_columns: Sequence[str]
) -> Iterator[pd.DataFrame]:
    model = _worker_model(archive_name)
    for batch in batches:
        features = batch[list(feature_columns)].to_numpy(dtype=np.float32)
        scores = model.score(features).numpy() if len(batch) else np.zeros(0)
        yield batch.assign(**{SCORE: scores.astype(np.float64)})


class RankNetRanker(Ranker):
    """A trained RankNet scorer, held as a SavedModel folder on the driver.

    Scoring ships the model to the executors as one zip file through
    ``SparkContext.addFile``. A plain file works with every master, whereas addFile
    accepts a driver-local folder only in local mode (Spark 4.3 raises
    UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY otherwise).

    Args:
      local_path: Local folder of the SavedModel written by :func:`export_scorer`.
      feature_columns: The feature columns, in the order the model reads them.
    """

    name = RANKNET

    def __init__(self, local_path: str, feature_columns: Sequence[str] = FEATURE_COLUMNS):
        self.local_path = local_path
        self.feature_columns = tuple(feature_columns)
        self._archive: str | None = None

    def _shipped_archive(self, spark: SparkSession) -> str:
        """Zip the SavedModel once, add it to the session's files and return its name.

        The name is unique, because addFile ships files by base name and rejects a second,
        different file of the same name in one session.
        """
        if self._archive is None:
            self._archive = shipping.zip_folder(self.local_path, "ranknet")
        return shipping.ship_zip(spark, self._archive)

    def score(self, df: DataFrame) -> DataFrame:
        """Score on the executors, loading the model once per Python worker."""
        require_columns(df, self.feature_columns, "rows to score")
        archive_name = self._shipped_archive(df.sparkSession)
        if SCORE in df.columns:
            df = df.drop(SCORE)
        schema = T.StructType([*df.schema.fields, T.StructField(SCORE, T.DoubleType(), True)])
        score = functools.partial(
            _score_batches, archive_name=archive_name, feature_columns=self.feature_columns
        )
        return df.mapInPandas(score, schema)

    def save(self, spark: SparkSession, path: str) -> None:
        io.upload_directory(spark, self.local_path, path)

    @classmethod
    def load(cls, spark: SparkSession, path: str, feature_columns: Sequence[str]) -> RankNetRanker:
        """Copy the SavedModel at lake ``path`` to a local folder of the driver."""
        local_path = os.path.join(shipping.temporary_folder("recsys-ranknet-"), "saved_model")
        io.download_directory(spark, path, local_path)
        return cls(local_path, feature_columns)
