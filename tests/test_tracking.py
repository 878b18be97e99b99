"""MLflow tracking: off by default, logs to a file store under the lake when enabled."""

import pytest

from recsys_spark.tracking import log_training_run, tracking_uri

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is in the dev extra")


def test_disabled_by_default(make_config):
    config = make_config()
    assert log_training_run(config, "r1", "train_x", {"a": 1}, {"m": 1.0}) is None


def test_logs_params_metrics_artifacts(make_config, tmp_path):
    config = make_config("mlflow.enabled=true")
    artifact = tmp_path / "metadata.json"
    artifact.write_text("{}")
    mlflow_run_id = log_training_run(
        config,
        "r1",
        "train_x",
        {"model": {"dim": 64}},
        {"recall_at_100": 0.25, "note": "not a number"},
        {"meta": str(artifact)},
    )
    run = mlflow.tracking.MlflowClient(tracking_uri(config)).get_run(mlflow_run_id)
    assert run.data.params["model.dim"] == "64"
    assert run.data.params["config.recommend.k"] == "20"
    assert run.data.metrics == {"recall_at_100": 0.25}
    assert run.data.tags["recsys.run_id"] == "r1"
    assert tracking_uri(config).startswith("file://")
    assert (tmp_path / "lake" / "mlruns").is_dir()


def test_remote_lake_needs_tracking_uri(make_config):
    config = make_config("mlflow.enabled=true", "lake.root=hdfs:///lake")
    with pytest.raises(ValueError, match="mlflow.tracking_uri"):
        tracking_uri(config)
