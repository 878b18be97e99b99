"""The trainable two-tower model and the in-memory video corpus it draws candidates from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow_recommenders as tfrs

from recsys_spark import columns as C
from recsys_spark.models.data import EVENT_DAY, SECONDS_PER_DAY
from recsys_spark.models.inputs import (
    QUERY_INPUTS,
    age_days_array,
    candidate_inputs_from_pandas,
)
from recsys_spark.models.loss import RetrievalLoss
from recsys_spark.models.towers import PADDING_ID, CandidateTower, QueryTower
from recsys_spark.tf_env import tf

# Upload day of a video_idx that the snapshot lacks: far enough ahead that its age at
# any event clips to 0.
_UNKNOWN_UPLOAD_DAY = 1e9


@dataclass(frozen=True)
class Corpus:
    """The videos of one feature snapshot, ready for the candidate tower.

    ``ids`` and ``upload_day`` are dense over ``video_idx`` (row i describes video_idx i),
    so the model gathers a candidate's features from its id. A video_idx that the
    snapshot lacks has out-of-vocabulary features and age 0.

    Attributes:
      ids: Looked-up candidate inputs (``CandidateTower.lookup``) without ``age_days``:
        int64 tensors of shape [S] or [S, T] / [S, W] for the list inputs.
      upload_day: float64[S], upload time in days since the Unix epoch.
      probability: float32[S], the video's share of training positives
        (features/item_frequencies; 0 for videos without positives).
      members: int64[M], the video_idx of every video in the snapshot, ascending.
      video_ids: str[M], their video_id, aligned with ``members``.
      age_days: float32[M], their age at the snapshot time.
    """

    ids: Mapping[str, tf.Tensor]
    upload_day: tf.Tensor
    probability: tf.Tensor
    members: tf.Tensor
    video_ids: np.ndarray
    age_days: np.ndarray

    @property
    def size(self) -> int:
        return int(self.upload_day.shape[0])

    @property
    def num_members(self) -> int:
        return int(self.members.shape[0])

    def gather(self, video_idx: tf.Tensor, reference_day: tf.Tensor) -> dict[str, tf.Tensor]:
        """Return the looked-up candidate inputs of ``video_idx`` as of ``reference_day``.

        Args:
          video_idx: int64 of any shape; ids outside the corpus get the unknown row 0.
          reference_day: float64 broadcastable to ``video_idx``: the time (days since
            the epoch) at which each candidate's age is measured.
        """
        video_idx = tf.cast(video_idx, tf.int64)
        rows = tf.where(
            (video_idx >= 0) & (video_idx < self.size),
            video_idx,
            tf.zeros_like(video_idx),
        )
        gathered = {name: tf.gather(values, rows) for name, values in self.ids.items()}
        age = tf.cast(reference_day, tf.float64) - tf.gather(self.upload_day, rows)
        gathered[C.AGE_DAYS] = tf.cast(tf.maximum(age, 0.0), tf.float32)
        gathered[C.VIDEO_IDX] = video_idx
        return gathered


def _day_numbers(timestamps: pd.Series) -> np.ndarray:
    times = pd.to_datetime(timestamps, utc=True)
    seconds = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.to_numpy(dtype=np.float64) / SECONDS_PER_DAY


def build_corpus(
    candidate_tower: CandidateTower,
    videos: pd.DataFrame,
    probabilities: pd.DataFrame,
    size: int,
    tags_length: int,
    title_length: int,
    chunk_rows: int = 50_000,
) -> Corpus:
    """Look up every snapshot video's features once and lay them out by video_idx.

    Args:
      candidate_tower: Provides the vocabulary lookups.
      videos: ``features/videos/<snapshot>`` rows: ``video_id``, ``video_idx``,
        ``category``, ``language``, ``duration_bucket``, ``tags``, ``title_tokens``,
        ``age_days``, ``as_of``.
      probabilities: ``features/item_frequencies`` rows: ``video_idx``, ``probability``.
      size: Rows of the dense tables; at least max video_idx + 1.
      tags_length: Width T of the tags.
      title_length: Width W of the title tokens.
      chunk_rows: Videos looked up per TensorFlow call.

    Raises:
      ValueError: A video_idx appears twice, or lies outside ``[1, size)``.
    """
    if C.AS_OF not in videos.columns:
        raise ValueError(
            f"Video feature rows lack the {C.AS_OF!r} column (docs/lake.md, features/videos); "
            f"got {list(videos.columns)}. Rebuild them with build_features."
        )
    videos = videos.sort_values(C.VIDEO_IDX, kind="stable").reset_index(drop=True)
    members = videos[C.VIDEO_IDX].to_numpy(dtype=np.int64)
    duplicated = videos[C.VIDEO_IDX].duplicated()
    if duplicated.any():
        raise ValueError(
            f"features/videos lists video_idx {int(members[duplicated.to_numpy()][0])} more "
            "than once; every video must have one row. Rebuild it with build_features."
        )
    if len(members) and (members[0] <= C.OOV_INDEX or members[-1] >= size):
        raise ValueError(
            f"features/videos has video_idx values in [{members[0]}, {members[-1]}], outside "
            f"[1, {size}). Rebuild the id maps and features together."
        )

    dense: dict[str, np.ndarray] = {}
    for start in range(0, len(videos), chunk_rows):
        chunk = videos.iloc[start : start + chunk_rows]
        inputs = candidate_inputs_from_pandas(chunk, tags_length, title_length)
        looked_up = candidate_tower.lookup({name: tf.constant(v) for name, v in inputs.items()})
        rows = chunk[C.VIDEO_IDX].to_numpy(dtype=np.int64)
        for name, values in looked_up.items():
            if name in (C.VIDEO_IDX, C.AGE_DAYS):
                continue
            values = values.numpy()
            if name not in dense:
                # Absent videos: out of vocabulary (0), lists all padding.
                fill = PADDING_ID if values.ndim == 2 else C.OOV_INDEX
                dense[name] = np.full((size, *values.shape[1:]), fill, dtype=np.int64)
            dense[name][rows] = values

    upload_day = np.full(size, _UNKNOWN_UPLOAD_DAY, dtype=np.float64)
    ages = age_days_array(videos[C.AGE_DAYS])
    upload_day[members] = _day_numbers(videos[C.AS_OF]) - ages.astype(np.float64)

    probability = np.zeros(size, dtype=np.float32)
    known = probabilities[C.VIDEO_IDX].to_numpy(dtype=np.int64)
    inside = (known >= 0) & (known < size)
    probability[known[inside]] = probabilities[C.PROBABILITY].to_numpy(dtype=np.float32)[inside]

    return Corpus(
        ids={name: tf.constant(values) for name, values in dense.items()},
        upload_day=tf.constant(upload_day),
        probability=tf.constant(probability),
        members=tf.constant(members),
        video_ids=videos[C.VIDEO_ID].astype(str).to_numpy(dtype=object),
        age_days=ages,
    )


class TwoTowerModel(tfrs.Model):
    """The two towers trained with :class:`RetrievalLoss` on batches of training rows.

    A batch (see :class:`recsys_spark.models.data.RowFormat`) contains the query inputs, the
    positive ``video_idx``, ``event_day``, optionally ``sampling_probability`` and
    ``negative_video_idx``. Candidate features come from the corpus by video_idx, with
    each candidate's age measured at the row's event time.

    Args:
      query_tower: The query tower.
      candidate_tower: The candidate tower.
      corpus: The videos to look features up in and to draw random negatives from.
      loss: The retrieval loss.
      random_negatives: R, uniform corpus videos added to each batch as shared negatives.
      logq_correction: Correct logits by each candidate's sampling probability.
      seed: Seeds the random negatives together with the optimizer's step counter.
    """

    def __init__(
        self,
        query_tower: QueryTower,
        candidate_tower: CandidateTower,
        corpus: Corpus,
        loss: RetrievalLoss,
        random_negatives: int = 0,
        logq_correction: bool = True,
        seed: int = C.DEFAULT_SEED,
    ):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.loss_layer = loss
        self._corpus = corpus
        self.random_negatives = random_negatives
        self.logq_correction = logq_correction
        self.seed = seed

    def _sample_corpus(self, count: int) -> tf.Tensor:
        optimizer = getattr(self, "optimizer", None)
        step = optimizer.iterations if optimizer is not None else 0
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        rows = tf.random.stateless_uniform(
            [count],
            seed=seed,
            minval=0,
            maxval=self._corpus.num_members,
            dtype=tf.int64,
        )
        return tf.gather(self._corpus.members, rows)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.query_tower({name: features[name] for name in QUERY_INPUTS})
        event_day = features[EVENT_DAY]
        positive_ids = tf.cast(features[C.VIDEO_IDX], tf.int64)
        candidates = self.candidate_tower.encode(self._corpus.gather(positive_ids, event_day))
        ids = positive_ids
        probability: tf.Tensor | None = None
        if self.logq_correction:
            probability = tf.cast(features[C.SAMPLING_PROBABILITY], tf.float32)

        if self.random_negatives:
            sampled = self._sample_corpus(self.random_negatives)
            # Shared negatives have no row of their own: their age is taken at the
            # batch's latest event.
            latest = tf.fill(tf.shape(sampled), tf.reduce_max(event_day))
            extra = self.candidate_tower.encode(self._corpus.gather(sampled, latest))
            candidates = tf.concat([candidates, extra], axis=0)
            ids = tf.concat([ids, sampled], axis=0)
            if probability is not None:
                probability = self._mixture_probability(probability, sampled)

        row_embeddings = row_ids = None
        if C.NEGATIVE_VIDEO_IDX in features:
            row_ids = tf.cast(features[C.NEGATIVE_VIDEO_IDX], tf.int64)
            negatives = tf.shape(row_ids)[1]
            flat_ids = tf.reshape(row_ids, [-1])
            flat_days = tf.repeat(event_day, negatives)
            flat = self.candidate_tower.encode(self._corpus.gather(flat_ids, flat_days))
            row_embeddings = tf.reshape(flat, [tf.shape(row_ids)[0], negatives, -1])

        return self.loss_layer(query, candidates, ids, probability, row_embeddings, row_ids)

    def _mixture_probability(self, positive: tf.Tensor, sampled: tf.Tensor) -> tf.Tensor:
        """Return q for the B positives and R sampled columns under the batch's sampling.

        A batch draws B candidates by popularity (the rows' positives, probability p)
        and R uniformly from the M corpus videos, so one draw yields video j with
        probability q_j = (B p_j + R / M) / (B + R).
        """
        batch = tf.cast(tf.shape(positive)[0], tf.float32)
        extra = float(self.random_negatives)
        uniform = extra / float(self._corpus.num_members)
        p = tf.concat([positive, tf.gather(self._corpus.probability, sampled)], axis=0)
        return (batch * p + uniform) / (batch + extra)
