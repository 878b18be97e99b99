"""The TFRS two-tower retrieval model: towers, loss, input pipeline, training and exports.

The ``train_two_tower`` job writes one version of the model into the lake. Everything
below is the interface that later stages (``build_index``, ``generate_candidates``,
``mine_hard_negatives``) rely on.

Layout under ``<lake.root>/models/two_tower/``::

  LATEST                   text file containing the newest version (the training run id)
  <version>/
    query/                 SavedModel, signature "serving_default"
    candidate/             SavedModel, signature "serving_default"
    retrieval/             SavedModel with a ScaNN index; open it with load_retrieval_model
    embeddings/            Parquet: video_id string, video_idx long, embedding array<float>
    metadata.json          see "metadata.json" below
    checkpoints/           tf.train.CheckpointManager checkpoints (best/ and latest/)
    logs/                  TensorBoard event files (train/, validation/)

``query/`` signature ``serving_default``, inputs by name (B = batch size):

  user_idx           int64[B]     dense user index from id_maps/users (0 = unknown user)
  age_bucket         string[B]    "" or an unknown value is out of vocabulary
  gender             string[B]
  region             string[B]
  language           string[B]
  history_video_idx  int64[B, H]  recent positives, most recent first, 0-padded.
                                  Pass H = metadata["history_length"]. Other widths run,
                                  but the model was trained on that width.
  hour_of_day        int64[B]     0-23, UTC
  day_of_week        int64[B]     0 = Monday ... 6 = Sunday (Spark weekday), UTC, as in
                                  the training rows

  output: {"embedding": float32[B, D]}, L2-normalised, D = metadata["embedding_dim"]

``candidate/`` signature ``serving_default``, inputs by name:

  video_idx        int64[B]       dense video index from id_maps/videos (0 = unknown)
  category         string[B]
  language         string[B]
  duration_bucket  string[B]
  tags             string[B, T]   ""-padded, any T (metadata["tags_length"] in training)
  title_tokens     string[B, W]   ""-padded, any W (metadata["title_length"] in training)
  age_days         float32[B]     days since upload at the time of serving

  output: {"embedding": float32[B, D]}, L2-normalised

The score of a (user, video) pair is the dot product of the two embeddings.

``retrieval/`` signature ``serving_default`` takes the query inputs above and returns
``{"video_ids": string[B, K], "scores": float32[B, K]}``, the top K = metadata["retrieval_k"]
videos of ``embeddings/`` by approximate dot product (tfrs.layers.factorized_top_k.ScaNN),
best first. It needs ScaNN's TensorFlow ops, so load it with :func:`load_retrieval_model`.

``embeddings/`` contains one row for every video in ``features/videos/<snapshot>``, where
``snapshot`` is metadata["snapshot"] (``test`` by default: the newest state of the corpus),
embedded with that snapshot's ``age_days``.

metadata.json keys: ``version``, ``run_id``, ``created_at``, ``mode`` (features or id_only),
``embedding_dim``, ``history_length``, ``tags_length``, ``title_length``, ``retrieval_k``,
``scann`` (the retrieval index's parameters), ``snapshot``, ``num_users``, ``num_videos``,
``num_embeddings``, ``vocabulary_sizes`` (name → size without the out-of-vocabulary
index), ``day_of_week`` (the convention), ``metrics`` (best epoch, validation recall@K
per epoch, untrained and popularity baselines, the retrieval index's recall against
exact search), ``inputs`` (signature of each SavedModel) and ``config`` (the two_tower
section used).

Python helpers (numpy and pandas only unless noted):

- :func:`query_inputs_from_pandas` builds the query signature's inputs from rows shaped
  like ``features/users/<snapshot>``; :func:`candidate_inputs_from_pandas` does the same
  for ``features/videos/<snapshot>`` rows.
- :func:`latest_version`, :func:`version_path`, :func:`read_metadata` locate a version in
  the lake (they need a SparkSession, because the lake may be on HDFS).
- :func:`load_query_model`, :func:`load_candidate_model` and :func:`load_retrieval_model`
  load the SavedModels from a local folder (these import TensorFlow).
"""

from recsys_spark.models.artifacts import (
    METADATA_FILE,
    MODEL_KIND,
    latest_version,
    read_metadata,
    version_path,
)
from recsys_spark.models.inputs import (
    candidate_inputs_from_pandas,
    query_inputs_from_pandas,
)
from recsys_spark.versions import LATEST_FILE


def load_query_model(path: str):
    """Load ``query/`` from a local folder."""
    from recsys_spark.models import serving

    return serving.load_query_model(path)


def load_candidate_model(path: str):
    """Load ``candidate/`` from a local folder."""
    from recsys_spark.models import serving

    return serving.load_candidate_model(path)


def load_retrieval_model(path: str):
    """Load ``retrieval/`` from a local folder after registering ScaNN's TensorFlow ops."""
    from recsys_spark.models import serving

    return serving.load_retrieval_model(path)


__all__ = [
    "LATEST_FILE",
    "METADATA_FILE",
    "MODEL_KIND",
    "candidate_inputs_from_pandas",
    "latest_version",
    "load_candidate_model",
    "load_query_model",
    "load_retrieval_model",
    "query_inputs_from_pandas",
    "read_metadata",
    "version_path",
]
