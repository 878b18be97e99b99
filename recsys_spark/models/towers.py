"""The query (user) tower and the candidate (video) tower.

Both towers end in an L2-normalised embedding of size ``embedding_dim``, so a query and
a candidate score by cosine similarity. In ``features`` mode the query tower embeds the
user id, the demographics, the watch history and the request context. The candidate
tower embeds the video id, category, tags, title tokens, language, duration bucket and
age. The watch history is pooled from the same video-id embedding table that the
candidate tower uses, so a user's history and the videos live in one space. In
``id_only`` mode each tower is an id embedding only (collaborative filtering), and the
other inputs are accepted and ignored, so both modes export the same signatures.

String features are mapped with ``StringLookup`` on the vocabularies written by
build_features: value i of the file has index i + 1 and index 0 is out of vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from recsys_spark import columns as C
from recsys_spark.models.inputs import QUERY_STRING_INPUTS
from recsys_spark.tf_env import tf

# Vocabulary file (features/vocabularies/<name>.txt) of each string input.
QUERY_VOCABULARIES = {
    C.AGE_BUCKET: "age_bucket",
    C.GENDER: "gender",
    C.REGION: "region",
    C.LANGUAGE: "language",
}
CANDIDATE_VOCABULARIES = {
    C.CATEGORY: "category",
    C.LANGUAGE: "language",
    C.DURATION_BUCKET: "duration_bucket",
    C.TAGS: "tag",
    C.TITLE_TOKENS: "title_token",
}
# Inputs that are ""-padded lists; padding becomes id -1 and is left out of the mean.
LIST_INPUTS = (C.TAGS, C.TITLE_TOKENS)
PADDING_ID = -1

HOURS_PER_DAY = 24
# day_of_week is 0 = Monday ... 6 = Sunday (Spark weekday).
DAYS_PER_WEEK = 7
# Ages are scaled as log1p(days) / log1p(MAX_AGE_DAYS) and clipped to [0, 1].
MAX_AGE_DAYS = 3650.0


class IdEmbedding(tf.keras.layers.Layer):
    """Embedding of dense indices in which indices outside ``[0, input_dim)`` use row 0.

    Index 0 is the "unknown" id of the id maps. Ids added to the lake after training
    (for example new users or videos) therefore embed as unknown instead of failing the
    lookup.
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        # A small initial scale keeps ids never seen in training close to zero, so the
        # features rather than noise drive their tower's output.
        self.embedding = tf.keras.layers.Embedding(
            input_dim,
            output_dim,
            embeddings_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int64)
        in_range = (ids >= 0) & (ids < self.input_dim)
        return self.embedding(tf.where(in_range, ids, tf.zeros_like(ids)))


def masked_mean(embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Average ``embeddings[B, L, E]`` over the positions where ``mask[B, L]`` is true.

    A row without any valid position averages to zeros.
    """
    weights = tf.cast(mask, embeddings.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(embeddings * weights, axis=1)
    count = tf.reduce_sum(weights, axis=1)
    return total / tf.maximum(count, 1.0)


def _mlp(hidden_units: Sequence[int], output_dim: int, name: str) -> tf.keras.Sequential:
    layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
    layers.append(tf.keras.layers.Dense(output_dim))
    return tf.keras.Sequential(layers, name=name)


class EmptyVocabularyLookup(tf.keras.layers.Layer):
    """Map every string to the out-of-vocabulary index 0.

    Used for a feature whose vocabulary is empty (MovieLens has no video language, for
    example), because ``StringLookup`` rejects an empty vocabulary.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.zeros(tf.shape(inputs), dtype=tf.int64)


def _lookup(vocabulary: Sequence[str], name: str) -> tf.keras.layers.Layer:
    if not vocabulary:
        return EmptyVocabularyLookup(name=f"{name}_lookup")
    return tf.keras.layers.StringLookup(
        vocabulary=list(vocabulary),
        num_oov_indices=1,
        mask_token=None,
        name=f"{name}_lookup",
    )


def _bounded_index(values: tf.Tensor, valid: int) -> tf.Tensor:
    """Return ``values`` in ``[0, valid)`` unchanged and every other value as ``valid``.

    The embedding tables get one row beyond the valid range for out-of-range input.
    """
    values = tf.cast(values, tf.int64)
    unknown = tf.fill(tf.shape(values), tf.constant(valid, tf.int64))
    return tf.where((values >= 0) & (values < valid), values, unknown)


class QueryTower(tf.keras.Model):
    """Map the query inputs (see :mod:`recsys_spark.models`) to an embedding[B, D].

    Inputs: ``user_idx`` int64[B]; ``age_bucket``, ``gender``, ``region``, ``language``
    string[B]; ``history_video_idx`` int64[B, H] 0-padded; ``hour_of_day`` and
    ``day_of_week`` int64[B].
    """

    def __init__(
        self,
        mode: str,
        num_users: int,
        video_embedding: IdEmbedding,
        vocabularies: Mapping[str, Sequence[str]],
        embedding_dim: int,
        id_embedding_dim: int,
        feature_embedding_dim: int,
        hidden_units: Sequence[int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mode = mode
        if mode == "id_only":
            self.user_embedding = IdEmbedding(num_users, embedding_dim, name="user_id")
            return
        self.user_embedding = IdEmbedding(num_users, id_embedding_dim, name="user_id")
        self.video_embedding = video_embedding
        self.lookups = {
            name: _lookup(vocabularies[file], name) for name, file in QUERY_VOCABULARIES.items()
        }
        self.feature_embeddings = {
            name: tf.keras.layers.Embedding(
                len(vocabularies[file]) + 1,
                feature_embedding_dim,
                name=f"{name}_embedding",
            )
            for name, file in QUERY_VOCABULARIES.items()
        }
        self.hour_embedding = tf.keras.layers.Embedding(
            HOURS_PER_DAY + 1, feature_embedding_dim, name="hour_of_day_embedding"
        )
        self.day_embedding = tf.keras.layers.Embedding(
            DAYS_PER_WEEK + 1, feature_embedding_dim, name="day_of_week_embedding"
        )
        self.mlp = _mlp(hidden_units, embedding_dim, name="query_mlp")

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        if self.mode == "id_only":
            return tf.math.l2_normalize(self.user_embedding(inputs[C.USER_IDX]), axis=-1)
        history = tf.cast(inputs[C.HISTORY_VIDEO_IDX], tf.int64)
        history_mask = history > C.OOV_INDEX
        width = tf.maximum(tf.cast(tf.shape(history)[1], tf.float32), 1.0)
        # Share of the history slots filled, which distinguishes new users from regulars.
        history_fill = tf.reduce_sum(tf.cast(history_mask, tf.float32), axis=1) / width
        parts = [
            self.user_embedding(inputs[C.USER_IDX]),
            masked_mean(self.video_embedding(history), history_mask),
            history_fill[:, tf.newaxis],
            self.hour_embedding(_bounded_index(inputs[C.HOUR_OF_DAY], HOURS_PER_DAY)),
            self.day_embedding(_bounded_index(inputs[C.DAY_OF_WEEK], DAYS_PER_WEEK)),
        ]
        for name in QUERY_STRING_INPUTS:
            parts.append(self.feature_embeddings[name](self.lookups[name](inputs[name])))
        return tf.math.l2_normalize(self.mlp(tf.concat(parts, axis=-1)), axis=-1)


class CandidateTower(tf.keras.Model):
    """Map a video's features to an embedding[B, D], in two steps.

    :meth:`lookup` turns the string inputs into vocabulary ids, and :meth:`encode` turns
    ids into the embedding. Training looks the corpus up once and then encodes ids only.
    Calling the tower on raw inputs runs both steps, as the exported candidate SavedModel
    does.

    Raw inputs: ``video_idx`` int64[B]; ``category``, ``language``, ``duration_bucket``
    string[B]; ``tags`` string[B, T] and ``title_tokens`` string[B, W], ""-padded;
    ``age_days`` float32[B].
    """

    def __init__(
        self,
        mode: str,
        video_embedding: IdEmbedding,
        vocabularies: Mapping[str, Sequence[str]],
        embedding_dim: int,
        feature_embedding_dim: int,
        hidden_units: Sequence[int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mode = mode
        self.video_embedding = video_embedding
        if mode == "id_only":
            return
        self.lookups = {
            name: _lookup(vocabularies[file], name) for name, file in CANDIDATE_VOCABULARIES.items()
        }
        self.feature_embeddings = {
            name: tf.keras.layers.Embedding(
                len(vocabularies[file]) + 1,
                feature_embedding_dim,
                name=f"{name}_embedding",
            )
            for name, file in CANDIDATE_VOCABULARIES.items()
        }
        self.mlp = _mlp(hidden_units, embedding_dim, name="candidate_mlp")

    def lookup(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Return the inputs with strings replaced by int64 vocabulary ids (padding: -1)."""
        ids = {
            C.VIDEO_IDX: tf.cast(inputs[C.VIDEO_IDX], tf.int64),
            C.AGE_DAYS: tf.cast(inputs[C.AGE_DAYS], tf.float32),
        }
        if self.mode == "id_only":
            return ids
        for name, lookup in self.lookups.items():
            values = inputs[name]
            looked_up = lookup(values)
            if name in LIST_INPUTS:
                looked_up = tf.where(values == "", tf.constant(PADDING_ID, tf.int64), looked_up)
            ids[name] = looked_up
        return ids

    def encode(self, ids: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Return the L2-normalised embedding[B, D] of looked-up inputs."""
        video = self.video_embedding(ids[C.VIDEO_IDX])
        if self.mode == "id_only":
            return tf.math.l2_normalize(video, axis=-1)
        age = tf.maximum(tf.cast(ids[C.AGE_DAYS], tf.float32), 0.0)
        age = tf.minimum(tf.math.log1p(age) / math.log1p(MAX_AGE_DAYS), 1.0)
        parts = [video, age[:, tf.newaxis]]
        for name, embedding in self.feature_embeddings.items():
            values = ids[name]
            if name in LIST_INPUTS:
                mask = values != PADDING_ID
                parts.append(masked_mean(embedding(tf.maximum(values, 0)), mask))
            else:
                parts.append(embedding(values))
        return tf.math.l2_normalize(self.mlp(tf.concat(parts, axis=-1)), axis=-1)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.encode(self.lookup(inputs))


def build_towers(
    mode: str,
    num_users: int,
    num_videos: int,
    vocabularies: Mapping[str, Sequence[str]],
    embedding_dim: int,
    id_embedding_dim: int,
    feature_embedding_dim: int,
    hidden_units: Sequence[int],
) -> tuple[QueryTower, CandidateTower]:
    """Build both towers around one shared video-id embedding table.

    Args:
      mode: ``features`` or ``id_only``.
      num_users: Rows of the user-id table (max user_idx + 1).
      num_videos: Rows of the video-id table (max video_idx + 1).
      vocabularies: Vocabulary name (``category``, ``tag``, ...) → values in index order.
      embedding_dim: D, the output size of both towers.
      id_embedding_dim: Size of the id embeddings in features mode.
      feature_embedding_dim: Size of each categorical feature embedding.
      hidden_units: Hidden layer sizes of each tower's MLP.
    """
    if mode not in ("features", "id_only"):
        raise ValueError(f"Unknown two-tower mode {mode!r}; use 'features' or 'id_only'.")
    video_dim = embedding_dim if mode == "id_only" else id_embedding_dim
    video_embedding = IdEmbedding(num_videos, video_dim, name="video_id")
    query = QueryTower(
        mode,
        num_users,
        video_embedding,
        vocabularies,
        embedding_dim,
        id_embedding_dim,
        feature_embedding_dim,
        hidden_units,
        name="query_tower",
    )
    candidate = CandidateTower(
        mode,
        video_embedding,
        vocabularies,
        embedding_dim,
        feature_embedding_dim,
        hidden_units,
        name="candidate_tower",
    )
    return query, candidate
