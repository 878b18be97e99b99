"""Load the exported SavedModels (query, candidate, retrieval) from a local folder."""

from __future__ import annotations

from recsys_spark.tf_env import tf

SCANN_REQUIREMENT = "scann==1.4.2 (built for tensorflow 2.20)"


def register_scann_ops() -> None:
    """Import ScaNN's TensorFlow ops so that a SavedModel using them can load.

    Raises:
      ImportError: ScaNN is missing, or its op library does not load into this
        TensorFlow, naming the package and version to install.
    """
    try:
        # The import loads _scann_ops.so into TensorFlow's op registry. The top-level
        # ``import scann`` skips it silently when TensorFlow fails to import.
        from scann.scann_ops.py import scann_ops  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"The retrieval SavedModel needs ScaNN's TensorFlow ops: pip install "
            f"{SCANN_REQUIREMENT}. Import failed: {error}"
        ) from error
    except tf.errors.NotFoundError as error:
        raise ImportError(
            f"ScaNN's TensorFlow op library does not load into TensorFlow {tf.__version__}; "
            f"install {SCANN_REQUIREMENT}. Loader message: {error}"
        ) from error


def load_query_model(path: str):
    """Load ``query/``; call ``model.signatures["serving_default"](**inputs)``."""
    return tf.saved_model.load(path)


def load_candidate_model(path: str):
    """Load ``candidate/``; call ``model.signatures["serving_default"](**inputs)``."""
    return tf.saved_model.load(path)


def load_retrieval_model(path: str):
    """Load ``retrieval/`` after registering ScaNN's ops.

    The signature ``serving_default`` takes the query inputs and returns ``video_ids``
    string[B, K] and ``scores`` float32[B, K], best first.
    """
    register_scann_ops()
    return tf.saved_model.load(path)
