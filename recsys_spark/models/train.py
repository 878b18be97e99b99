"""Train the two-tower model: epochs, exact validation recall, early stopping, checkpoints.

Each epoch streams ``training/train`` once (see :mod:`recsys_spark.models.data`), then
scores validation rows against the whole corpus by brute force and records recall@K.
The best epoch's weights are checkpointed and restored at the end. Checkpoints
(``tf.train.CheckpointManager``) and TensorBoard logs go under a local model folder,
which the job uploads to the lake with the exports.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from recsys_spark import columns as C
from recsys_spark.models import data as model_data
from recsys_spark.models import evaluation
from recsys_spark.models.artifacts import CHECKPOINTS_DIR, LOGS_DIR
from recsys_spark.models.loss import RetrievalLoss
from recsys_spark.models.towers import CandidateTower, QueryTower, build_towers
from recsys_spark.models.two_tower import Corpus, TwoTowerModel, build_corpus
from recsys_spark.settings import TwoTowerConfig
from recsys_spark.tf_env import tf

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    """Everything training reads, already located or loaded by the caller.

    Attributes:
      train_path: ``training/train`` (a local path or a URI pyarrow can open).
      validation_path: ``training/validation``.
      videos: ``features/videos/<snapshot>`` rows (columns: see ``build_corpus``).
      item_frequencies: ``features/item_frequencies`` rows: ``video_idx``, ``probability``.
      vocabularies: Vocabulary name → values in index order (features/vocabularies).
      num_users: Rows for the user-id table, from the features manifest (max idx + 1).
      num_videos: Rows for the video-id table, from the features manifest.
    """

    train_path: str
    validation_path: str
    videos: pd.DataFrame
    item_frequencies: pd.DataFrame
    vocabularies: Mapping[str, Sequence[str]]
    num_users: int
    num_videos: int


@dataclass
class TrainingResult:
    """The trained towers (best epoch restored), the corpus and the training record."""

    query_tower: QueryTower
    candidate_tower: CandidateTower
    corpus: Corpus
    history_length: int
    num_users: int
    num_videos: int
    # Days since the epoch at which validation measured candidate ages (end of training data).
    reference_day: float
    metrics: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)


def _optimizer(settings: TwoTowerConfig) -> tf.keras.optimizers.Optimizer:
    if settings.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=settings.learning_rate)
    return tf.keras.optimizers.Adam(learning_rate=settings.learning_rate)


class Validator:
    """Score validation rows against the whole corpus by brute force, each epoch.

    Args:
      path: ``training/validation``.
      history_length: H, the width of the watch history.
      settings: The ``two_tower`` config section (recall_k, validation_max_rows, ...).
      reference_day: Days since the epoch at which candidate ages are measured.
      exclude_history: Leave each row's watch history out of its ranking, as serving
        does. Right when the held-out split has no repeat positives.
    """

    def __init__(
        self,
        path: str,
        history_length: int,
        settings: TwoTowerConfig,
        reference_day: float,
        exclude_history: bool = True,
    ):
        self.row_format = model_data.RowFormat(history_length, sampling_probability=False)
        self.path = path
        self.settings = settings
        self.reference_day = reference_day
        self.exclude_history = exclude_history

    def batches(self):
        return model_data.evaluation_dataset(
            self.path,
            self.row_format,
            batch_size=4096,
            read_batch_rows=self.settings.read_batch_rows,
            max_rows=self.settings.validation_max_rows,
        )

    def recall(self, query_tower: QueryTower, candidate_tower: CandidateTower, corpus: Corpus):
        """Return the recall@K, and the scored rows' positives and histories."""
        queries, positives, histories = evaluation.query_embeddings(query_tower, self.batches())
        candidates = evaluation.corpus_embeddings(candidate_tower, corpus, self.reference_day)
        recall = evaluation.recall_at_k(
            queries,
            positives,
            candidates,
            corpus.members.numpy(),
            self.settings.recall_k,
            exclude=histories if self.exclude_history else None,
        )
        return recall, positives, histories


def _checkpoint_managers(
    checkpoint: tf.train.Checkpoint, model_dir: str
) -> tuple[tf.train.CheckpointManager, tf.train.CheckpointManager]:
    root = os.path.join(model_dir, CHECKPOINTS_DIR)
    latest = tf.train.CheckpointManager(checkpoint, os.path.join(root, "latest"), max_to_keep=1)
    best = tf.train.CheckpointManager(checkpoint, os.path.join(root, "best"), max_to_keep=1)
    return latest, best


def _table_sizes(inputs: TrainingInputs, scans: Sequence[model_data.SplitScan]) -> tuple[int, int]:
    """Return rows of the user and video id tables: the manifest's, or larger if data needs."""
    max_video = max([scan.max_video_idx for scan in scans] + [0])
    if len(inputs.videos):
        max_video = max(max_video, int(inputs.videos[C.VIDEO_IDX].max()))
    num_users = max([inputs.num_users] + [scan.max_user_idx + 1 for scan in scans])
    return num_users, max(inputs.num_videos, max_video + 1)


def train_two_tower(
    inputs: TrainingInputs,
    settings: TwoTowerConfig,
    history_length: int,
    seed: int,
    model_dir: str,
    exclude_history: bool = True,
) -> TrainingResult:
    """Train both towers and return them with the best validation epoch restored.

    Args:
      inputs: Training and validation rows, the corpus and the vocabularies.
      settings: The ``two_tower`` config section.
      history_length: H, the width of the watch history.
      seed: Seeds weights, shuffling and random negatives.
      model_dir: Local folder for ``checkpoints/`` and ``logs/``.
      exclude_history: Leave each validation row's watch history out of its ranking;
        pass False when the validation split keeps repeat positives.

    Raises:
      ValueError: The training split has fewer than 2 rows, a sampling
        probability is invalid, or the corpus is empty or inconsistent.
    """
    tf.keras.utils.set_random_seed(seed)
    train_scan = model_data.scan_split(
        inputs.train_path,
        settings.read_batch_rows,
        check_probabilities=settings.logq_correction,
    )
    validation_scan = model_data.scan_split(
        inputs.validation_path, settings.read_batch_rows, check_probabilities=False
    )
    if train_scan.rows < 2:
        raise ValueError(
            f"training/train at {inputs.train_path} has {train_scan.rows} rows; in-batch "
            "softmax needs at least 2. Check the positives settings or train on more data."
        )
    if train_scan.rows < settings.batch_size:
        # A small lake (the tiny tier, a sample) still trains: one batch per epoch.
        batch_size = 2 ** int(math.log2(train_scan.rows))
        logger.warning(
            "training/train has %d rows, fewer than two_tower.batch_size=%d; training with "
            "batches of %d. Set two_tower.batch_size to silence this.",
            train_scan.rows,
            settings.batch_size,
            batch_size,
        )
        settings = replace(settings, batch_size=batch_size)
    if len(inputs.videos) == 0:
        raise ValueError("The video feature snapshot is empty; run build_features first.")
    if validation_scan.rows == 0:
        logger.warning(
            "training/validation at %s is empty, so there is no early stopping and the last "
            "epoch is kept.",
            inputs.validation_path,
        )
    num_users, num_videos = _table_sizes(inputs, (train_scan, validation_scan))
    # The stream yields rows // batch_size full batches per epoch; more steps would run dry.
    full_batches = train_scan.rows // settings.batch_size
    steps_per_epoch = min(settings.steps_per_epoch or full_batches, full_batches)

    query_tower, candidate_tower = build_towers(
        settings.mode,
        num_users,
        num_videos,
        inputs.vocabularies,
        settings.embedding_dim,
        settings.id_embedding_dim,
        settings.feature_embedding_dim,
        settings.hidden_units,
    )
    corpus = build_corpus(
        candidate_tower,
        inputs.videos,
        inputs.item_frequencies,
        num_videos,
        settings.tags_length,
        settings.title_length,
    )
    model = TwoTowerModel(
        query_tower,
        candidate_tower,
        corpus,
        RetrievalLoss(settings.temperature, settings.remove_accidental_hits),
        random_negatives=settings.random_negatives,
        logq_correction=settings.logq_correction,
        seed=seed,
    )
    model.compile(optimizer=_optimizer(settings), steps_per_execution=settings.steps_per_execution)
    row_format = model_data.RowFormat(
        history_length,
        row_negatives=settings.row_negatives,
        row_negative_types=tuple(settings.row_negative_types),
        sampling_probability=settings.logq_correction,
    )
    # Validation scores candidates as they were at the end of the training data.
    reference_day = train_scan.max_event_day
    validator = Validator(
        inputs.validation_path, history_length, settings, reference_day, exclude_history
    )
    result = TrainingResult(
        query_tower,
        candidate_tower,
        corpus,
        history_length,
        num_users,
        num_videos,
        reference_day,
    )
    logger.info(
        "Two-tower training: %d train rows (%d steps of %d per epoch), %d validation rows, "
        "%d videos in the corpus, %d users, mode %s",
        train_scan.rows,
        steps_per_epoch,
        settings.batch_size,
        validation_scan.rows,
        corpus.num_members,
        num_users,
        settings.mode,
    )

    untrained_recall, positives, histories = validator.recall(query_tower, candidate_tower, corpus)
    result.metrics.update(
        {
            "train_rows": train_scan.rows,
            "validation_rows": validation_scan.rows,
            "validation_rows_scored": len(positives),
            "corpus_videos": corpus.num_members,
            "recall_k": settings.recall_k,
            "recall_excludes_history": exclude_history,
            "untrained_recall_at_k": untrained_recall,
            "popularity_recall_at_k": evaluation.popularity_recall_at_k(
                positives,
                corpus.members.numpy(),
                tf.gather(corpus.probability, corpus.members).numpy(),
                settings.recall_k,
                exclude=histories if exclude_history else None,
            ),
        }
    )
    _fit(
        model,
        result,
        row_format,
        validator,
        inputs.train_path,
        settings,
        seed,
        steps_per_epoch,
        model_dir,
    )
    return result


def _fit(
    model: TwoTowerModel,
    result: TrainingResult,
    row_format: model_data.RowFormat,
    validator: Validator,
    train_path: str,
    settings: TwoTowerConfig,
    seed: int,
    steps_per_epoch: int,
    model_dir: str,
) -> None:
    """Run the epochs with early stopping, then restore the best epoch's weights."""
    epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(
        query_tower=result.query_tower,
        candidate_tower=result.candidate_tower,
        optimizer=model.optimizer,
        epoch=epoch_variable,
    )
    latest_manager, best_manager = _checkpoint_managers(checkpoint, model_dir)
    logs = os.path.join(model_dir, LOGS_DIR)
    tensorboard = tf.keras.callbacks.TensorBoard(
        log_dir=logs, write_graph=False, update_freq="epoch", profile_batch=0
    )
    validation_writer = tf.summary.create_file_writer(os.path.join(logs, "validation"))
    recall_name = f"recall_at_{settings.recall_k}"
    with validation_writer.as_default():
        tf.summary.scalar(recall_name, result.metrics["untrained_recall_at_k"], step=0)

    best_recall, best_epoch, stale_epochs = -math.inf, 0, 0
    for epoch in range(1, settings.epochs + 1):
        dataset = model_data.training_dataset(
            train_path,
            row_format,
            settings.batch_size,
            settings.shuffle_buffer,
            settings.read_batch_rows,
            seed,
            epoch,
        )
        started = time.perf_counter()
        history = model.fit(
            dataset,
            epochs=epoch,
            initial_epoch=epoch - 1,
            steps_per_epoch=steps_per_epoch,
            callbacks=[tensorboard],
            verbose=0,
        )
        seconds = time.perf_counter() - started
        recall, _, _ = validator.recall(result.query_tower, result.candidate_tower, result.corpus)
        with validation_writer.as_default():
            tf.summary.scalar(recall_name, recall, step=epoch)
        epoch_variable.assign(epoch)
        latest_manager.save(checkpoint_number=epoch)
        record = {
            "epoch": epoch,
            "loss": float(history.history["loss"][-1]),
            recall_name: recall,
            "seconds": round(seconds, 2),
            "examples_per_second": round(steps_per_epoch * settings.batch_size / seconds, 1),
        }
        result.epochs.append(record)
        logger.info(
            "Epoch %d: loss %.4f, validation recall@%d %.4f, %.1fs (%.0f examples/s)",
            epoch,
            record["loss"],
            settings.recall_k,
            recall,
            seconds,
            record["examples_per_second"],
        )
        # Without validation rows the recall is NaN and every epoch counts as the best.
        if math.isnan(recall) or recall > best_recall:
            best_recall, best_epoch, stale_epochs = recall, epoch, 0
            best_manager.save(checkpoint_number=epoch)
        else:
            stale_epochs += 1
            if stale_epochs >= settings.early_stopping_patience:
                logger.info(
                    "Early stop after epoch %d: no better recall for %d epochs",
                    epoch,
                    stale_epochs,
                )
                break

    checkpoint.restore(best_manager.latest_checkpoint).assert_existing_objects_matched()
    logger.info(
        "Restored epoch %d (validation recall@%d %.4f)",
        best_epoch,
        settings.recall_k,
        best_recall,
    )
    # The first epoch includes tracing, so throughput comes from the later ones when any.
    timed = result.epochs[1:] or result.epochs
    examples = steps_per_epoch * settings.batch_size * len(timed)
    result.metrics.update(
        {
            "best_epoch": best_epoch,
            "best_recall_at_k": best_recall,
            "epochs_run": len(result.epochs),
            "steps_per_epoch": steps_per_epoch,
            "train_examples_per_second": round(
                examples / sum(record["seconds"] for record in timed), 1
            ),
        }
    )
