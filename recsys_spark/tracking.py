"""Experiment tracking: training jobs log parameters, metrics and artifacts to MLflow.

Off unless ``mlflow.enabled`` is true. The default store is a local MLflow file store
under ``<lake.root>/mlruns``; ``mlflow.tracking_uri`` points at any other store (an MLflow
server, Databricks). MLflow is an optional dependency: ``pip install -e .[mlflow]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlparse

from recsys_spark.config import to_dict
from recsys_spark.settings import Config

logger = logging.getLogger(__name__)


def tracking_uri(config: Config) -> str:
    """Return the configured tracking URI, or a file store under a local lake root."""
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    root = config.lake.root
    scheme = urlparse(root).scheme
    if scheme not in ("", "file"):
        raise ValueError(
            f"mlflow.tracking_uri is not set and lake.root {root!r} is not a local path, so "
            "there is no default MLflow store. Set mlflow.tracking_uri (for example "
            "http://127.0.0.1:5000 or databricks)."
        )
    local = Path(urlparse(root).path if scheme == "file" else root).resolve()
    return (local / "mlruns").as_uri()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def log_training_run(
    config: Config,
    run_id: str,
    stage: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Optional[Mapping[str, str]] = None,
) -> Optional[str]:
    """Log one training stage to MLflow and return the MLflow run id (None when disabled).

    Args:
      config: The run's config; ``mlflow.*`` decides whether and where to log.
      run_id: Our run id, stored as the MLflow run name and a tag.
      stage: The job name, for example ``train_two_tower``.
      params: Hyper-parameters; nested mappings are flattened to dotted names.
      metrics: Final metrics; non-numeric values are skipped.
      artifacts: Name → local file or folder to upload (a SavedModel, metadata.json).
    """
    if not config.mlflow.enabled:
        return None
    try:
        import mlflow
    except ImportError as error:
        raise ImportError(
            "mlflow.enabled is true but MLflow is not installed: "
            "pip install -e '.[mlflow]' (mlflow-skinny), or set mlflow.enabled=false."
        ) from error

    uri = tracking_uri(config)
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store only behind this opt-in.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.mlflow.experiment)
    with mlflow.start_run(run_name=f"{stage}-{run_id}") as active:
        mlflow.set_tags({"recsys.run_id": run_id, "recsys.stage": stage})
        flat = _flatten(params)
        flat.update({f"config.{k}": v for k, v in _flatten(to_dict(config)).items()})
        # MLflow limits a parameter value to 6000 characters.
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
        numeric = {
            k: float(v)
            for k, v in _flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        mlflow.log_metrics(numeric)
        for name, path in (artifacts or {}).items():
            if os.path.isdir(path):
                mlflow.log_artifacts(path, artifact_path=name)
            elif os.path.isfile(path):
                mlflow.log_artifact(path, artifact_path=name)
            else:
                logger.warning("MLflow artifact %s not found at %s; skipped", name, path)
        logger.info("Logged %s to MLflow run %s at %s", stage, active.info.run_id, uri)
        return active.info.run_id
