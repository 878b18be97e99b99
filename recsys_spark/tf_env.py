"""Import TensorFlow with Keras 2, which TensorFlow Recommenders needs.

Import TensorFlow through this module (``from recsys_spark.tf_env import tf``) so that
``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported anywhere.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    raise ImportError(
        f"TF_USE_LEGACY_KERAS is {os.environ['TF_USE_LEGACY_KERAS']!r}, but TensorFlow "
        "Recommenders needs Keras 2. Unset it or set TF_USE_LEGACY_KERAS=1 before starting "
        "Python."
    )

try:
    import tensorflow as tf
except ImportError as error:
    raise ImportError(
        "TensorFlow is not installed. Install the project with `pip install -e .` "
        "(tensorflow 2.20.*, tf-keras 2.20.*)."
    ) from error

if not tf.keras.__name__.startswith("tf_keras"):
    raise ImportError(
        f"Keras 3 is active (tf.keras is {tf.keras.__name__}), but TensorFlow Recommenders "
        "needs Keras 2. TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, or "
        "tf-keras is missing: `pip install tf-keras==2.20.*` and import TensorFlow through "
        "recsys_spark.tf_env first."
    )

__all__ = ["tf"]
