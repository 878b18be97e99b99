"""The retrieval loss: sampled softmax over in-batch and extra negatives, with logQ correction.

Each query row i of a batch has one positive candidate, column i. Its negatives are:

- the other rows' positives (in-batch negatives),
- extra candidates shared by every row (random corpus videos mixed into the batch),
- the row's own negatives (``negative_video_idx`` of the training row), appended as extra
  columns that are negatives for row i alone.

The logits are cosine scores divided by the temperature. With logQ correction each
shared column's logit is lowered by log q, where q is the probability that the batch's
sampling draws that candidate. In-batch negatives are drawn in proportion to
popularity, so without the correction the softmax learns to push popular videos down
and estimates a popularity-biased score. A candidate with the same id as the row's
positive is masked out of that row (an accidental hit), and so is padding among the row
negatives (id 0).

The computation runs in ``tfrs.tasks.Retrieval``: the row negatives become extra
candidate columns, and a score mask hides each row's negatives from the other rows.
"""

from __future__ import annotations

import tensorflow_recommenders as tfrs

from recsys_spark import columns as C
from recsys_spark.tf_env import tf


class RetrievalLoss(tf.keras.layers.Layer):
    """Mean softmax cross-entropy of each query's positive against its negatives.

    Args:
      temperature: Divides the cosine scores before the softmax.
      remove_accidental_hits: Mask candidates whose id equals the row's positive id.
    """

    def __init__(self, temperature: float, remove_accidental_hits: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature
        self.remove_accidental_hits = remove_accidental_hits
        self.task = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(
                from_logits=True,
                reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE,
            ),
            temperature=temperature,
            remove_accidental_hits=remove_accidental_hits,
        )

    def call(
        self,
        query_embeddings: tf.Tensor,
        candidate_embeddings: tf.Tensor,
        candidate_ids: tf.Tensor,
        candidate_sampling_probability: tf.Tensor | None = None,
        row_negative_embeddings: tf.Tensor | None = None,
        row_negative_ids: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Return the mean loss over the B query rows.

        Args:
          query_embeddings: float32[B, D].
          candidate_embeddings: float32[B + R, D]: row i's positive at position i, then R
            extra candidates shared by every row.
          candidate_ids: int64[B + R] video ids of those candidates.
          candidate_sampling_probability: float32[B + R], the probability q that one
            draw of the batch's sampling yields each candidate; None disables logQ
            correction. Only ratios matter, so any common scale works.
          row_negative_embeddings: float32[B, N, D] per-row negatives, or None.
          row_negative_ids: int64[B, N] their video ids; 0 marks padding.
        """
        batch_size = tf.shape(query_embeddings)[0]
        shared_columns = tf.shape(candidate_embeddings)[0]
        embeddings = candidate_embeddings
        ids = tf.cast(candidate_ids, tf.int64)
        probability = candidate_sampling_probability
        score_mask = None
        if row_negative_embeddings is not None:
            row_negative_ids = tf.cast(row_negative_ids, tf.int64)
            negatives = tf.shape(row_negative_ids)[1]
            dim = tf.shape(candidate_embeddings)[1]
            embeddings = tf.concat(
                [embeddings, tf.reshape(row_negative_embeddings, [-1, dim])], axis=0
            )
            ids = tf.concat([ids, tf.reshape(row_negative_ids, [-1])], axis=0)
            score_mask = _row_negative_mask(batch_size, shared_columns, row_negative_ids)
            if probability is not None:
                # A row negative occurs once in its row, with certainty. A shared candidate
                # drawn with probability 1 / (B + R) per column also occurs once on
                # average, so that probability gives both the same correction.
                row_probability = tf.fill(
                    [batch_size * negatives], 1.0 / tf.cast(shared_columns, tf.float32)
                )
                probability = tf.concat([tf.cast(probability, tf.float32), row_probability], 0)
        if probability is not None:
            # tfrs clips probabilities to [1e-6, 1]; dividing by the batch maximum keeps
            # every ratio (the softmax ignores a common shift of log q) and moves the
            # values into that range.
            probability = tf.cast(probability, tf.float32)
            probability = probability / tf.reduce_max(probability)
        return self.task(
            query_embeddings,
            embeddings,
            candidate_sampling_probability=probability,
            candidate_ids=ids,
            compute_metrics=False,
            compute_batch_metrics=False,
            score_mask=score_mask,
        )


def _row_negative_mask(
    batch_size: tf.Tensor, shared_columns: tf.Tensor, row_negative_ids: tf.Tensor
) -> tf.Tensor:
    """Return bool[B, B + R + B * N]: shared columns for all rows, row negatives for their own.

    Column ``B + R + j * N + n`` contains row j's n-th negative. Row i scores it only when
    i == j and the negative is not padding.
    """
    negatives = tf.shape(row_negative_ids)[1]
    shared = tf.ones([batch_size, shared_columns], dtype=tf.bool)
    own_row = tf.repeat(tf.cast(tf.eye(batch_size), tf.bool), negatives, axis=1)
    valid = tf.reshape(row_negative_ids != C.OOV_INDEX, [1, -1])
    return tf.concat([shared, own_row & valid], axis=1)
