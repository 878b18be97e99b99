"""The train_two_tower job's exports: SavedModels reloaded, embeddings, metadata, LATEST.

The job trains briefly on the fixture lake of tests/two_tower_lake.py. Its ScaNN index is
configured to search every leaf and rescore every video exactly, so its top-K must
equal brute force.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from two_tower_lake import HISTORY_LENGTH, NUM_USERS, NUM_VIDEOS, write_two_tower_lake

import jobs.train_two_tower as job
from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.cli import run_stage
from recsys_spark.config import load_config
from recsys_spark.models import (
    artifacts,
    candidate_inputs_from_pandas,
    latest_version,
    load_candidate_model,
    load_query_model,
    query_inputs_from_pandas,
    read_metadata,
    version_path,
)
from recsys_spark.models.export import scann_parameters
from recsys_spark.runs import Run
from recsys_spark.tf_env import tf

# The module runs the whole train_two_tower job once.
pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
K = 10

RETRIEVE_SCRIPT = """
import sys
import numpy as np
from recsys_spark.models import load_retrieval_model

model = load_retrieval_model(sys.argv[1])
inputs = dict(np.load(sys.argv[2]))
outputs = model.signatures["serving_default"](**inputs)
np.savez(
    sys.argv[3],
    video_ids=outputs["video_ids"].numpy().astype(str),
    scores=outputs["scores"].numpy(),
)
"""

MISSING_SCANN_SCRIPT = """
import sys
sys.modules["scann.scann_ops.py.scann_ops"] = None  # as if the op library were absent
from recsys_spark.models import load_retrieval_model

try:
    load_retrieval_model(sys.argv[1])
except ImportError as error:
    print(error)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def exported(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("retrieval_lake") / "lake")
    write_two_tower_lake(spark, root, with_users=True)
    config = load_config(
        overrides=[
            f"lake.root={root}",
            "spark.master=local[2]",
            # The fixture repeats positives, so validation keeps the watch history.
            "training.repeat_positives=true",
            "two_tower.epochs=2",
            "two_tower.batch_size=64",
            "two_tower.history_length=5",
            "two_tower.hidden_units=[32]",
            "two_tower.steps_per_execution=1",
            "two_tower.learning_rate=0.01",
            "two_tower.recall_k=5",
            f"two_tower.retrieval_k={K}",
            # Every leaf searched and every video rescored: the index is exact.
            "two_tower.scann_num_leaves=4",
            "two_tower.scann_leaves_to_search=4",
            f"two_tower.scann_reorder_candidates={NUM_VIDEOS}",
        ]
    )
    run = Run(spark=spark, config=config)
    summary = run_stage("train_two_tower", job.run, run)
    lake = io.Lake(root)
    local = tmp_path_factory.mktemp("downloaded") / "model"
    io.download_directory(spark, version_path(lake, summary["model_version"]), str(local))
    users = io.read_table(spark, lake.features("users", C.TEST)).orderBy(C.USER_IDX).toPandas()
    videos = io.read_table(spark, lake.features("videos", C.TEST)).orderBy(C.VIDEO_IDX).toPandas()
    return {
        "summary": summary,
        "run": run,
        "lake": lake,
        "local": local,
        "users": users,
        "videos": videos,
    }


def test_latest_and_metadata(spark, exported):
    summary, lake = exported["summary"], exported["lake"]
    assert latest_version(spark, lake) == summary["model_version"]
    metadata = read_metadata(spark, lake)
    assert metadata["version"] == summary["model_version"]
    assert metadata["history_length"] == HISTORY_LENGTH
    assert metadata["num_embeddings"] == NUM_VIDEOS
    assert metadata["retrieval_k"] == K
    assert metadata["embedding_dim"] == 64
    assert metadata["inputs"]["query"]["history_video_idx"] == "int64[B, H]"
    assert metadata["vocabulary_sizes"]["region"] == 4
    assert metadata["metrics"]["retrieval_recall_vs_exact"] == pytest.approx(1.0)
    assert metadata["metrics"]["best_epoch"] in (1, 2)
    for folder in ("query", "candidate", "retrieval", "embeddings", "checkpoints", "logs"):
        assert (exported["local"] / folder).is_dir(), folder


def test_run_summary_records_stage(spark, exported):
    run = exported["run"]
    stages = io.read_json(spark, run.summary_path())["stages"]
    recorded = stages["train_two_tower"]
    assert recorded["model_version"] == run.run_id
    assert recorded["train_rows"] == NUM_USERS * 20
    assert recorded["best_recall_at_k"] > recorded["untrained_recall_at_k"]


def test_embeddings_match_candidate_model(spark, exported):
    path = version_path(exported["lake"], exported["summary"]["model_version"]) + "/embeddings"
    table = spark.read.parquet(path)
    assert table.schema.simpleString() == (
        "struct<video_id:string,video_idx:bigint,embedding:array<float>>"
    )
    rows = table.orderBy(C.VIDEO_IDX).toPandas()
    assert rows[C.VIDEO_ID].tolist() == exported["videos"][C.VIDEO_ID].tolist()
    stored = np.stack(rows["embedding"].to_numpy())
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-5)

    model = load_candidate_model(str(exported["local"] / "candidate"))
    inputs = candidate_inputs_from_pandas(exported["videos"], tags_length=8, title_length=12)
    served = model.signatures["serving_default"](
        **{name: tf.constant(values) for name, values in inputs.items()}
    )["embedding"].numpy()
    np.testing.assert_allclose(served, stored, atol=1e-5)


def _query_inputs(users):
    return query_inputs_from_pandas(users, HISTORY_LENGTH, context_time="2026-02-01T18:00:00Z")


def _read_embeddings(folder, video_ids):
    """Read embeddings/ with pyarrow, as float32[len(video_ids), D] in that order."""
    table = pq.read_table(str(folder)).to_pandas().set_index(C.VIDEO_ID)
    return np.stack([np.asarray(table.loc[v, "embedding"], np.float32) for v in video_ids])


def _brute_force(exported, inputs):
    query = load_query_model(str(exported["local"] / "query"))
    embeddings = query.signatures["serving_default"](
        **{name: tf.constant(values) for name, values in inputs.items()}
    )["embedding"].numpy()
    videos = exported["videos"]
    corpus = _read_embeddings(exported["local"] / "embeddings", videos[C.VIDEO_ID].tolist())
    scores = embeddings @ corpus.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    ids = np.array(videos[C.VIDEO_ID].tolist())[order]
    return embeddings, ids, np.take_along_axis(scores, order, axis=1)


def test_query_model_reloads(exported):
    inputs = _query_inputs(exported["users"])
    embeddings, _, _ = _brute_force(exported, inputs)
    assert embeddings.shape == (NUM_USERS, 64)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


def test_retrieval_in_subprocess_matches_brute_force(exported, tmp_path):
    inputs = _query_inputs(exported["users"].head(20))
    request = tmp_path / "inputs.npz"
    # String inputs go as numpy unicode arrays, which np.load reads without pickle.
    np.savez(
        request,
        **{n: (v.astype(str) if v.dtype == object else v) for n, v in inputs.items()},
    )

    response = tmp_path / "outputs.npz"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            RETRIEVE_SCRIPT,
            str(exported["local"] / "retrieval"),
            str(request),
            str(response),
        ],
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    outputs = np.load(response)
    _, expected_ids, expected_scores = _brute_force(exported, inputs)
    assert outputs["video_ids"].shape == (20, K)
    assert outputs["video_ids"].tolist() == expected_ids.tolist()
    np.testing.assert_allclose(outputs["scores"], expected_scores, atol=1e-4)


def test_retrieval_without_scann_names_package(exported):
    completed = subprocess.run(
        [sys.executable, "-c", MISSING_SCANN_SCRIPT, str(exported["local"] / "retrieval")],
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 3, completed.stderr[-3000:]
    assert "scann==1.4.2" in completed.stdout


def test_scann_parameters_sized_from_corpus():
    # sqrt(1e6) = 1000 leaves; a tenth (100) covers more than 20 x k = 2000 videos.
    assert scann_parameters(1_000_000, 100) == {
        "num_leaves": 1000,
        "num_leaves_to_search": 100,
        "num_reordering_candidates": 400,
    }
    # 100 leaves of 100 videos: covering 20 x k = 2000 videos takes 20 leaves.
    assert scann_parameters(10_000, 100) == {
        "num_leaves": 100,
        "num_leaves_to_search": 20,
        "num_reordering_candidates": 400,
    }
    # round(sqrt(30)) = 5 leaves, all searched; rescoring is capped at the 30 videos.
    assert scann_parameters(30, 100) == {
        "num_leaves": 5,
        "num_leaves_to_search": 5,
        "num_reordering_candidates": 30,
    }
    # Configured values win.
    assert scann_parameters(10_000, 100, 50, 7, 123) == {
        "num_leaves": 50,
        "num_leaves_to_search": 7,
        "num_reordering_candidates": 123,
    }


def test_missing_latest_is_clear(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="train_two_tower"):
        latest_version(spark, io.Lake(str(tmp_path / "empty")))


def test_metadata_json_is_plain(exported):
    text = (exported["local"] / artifacts.METADATA_FILE).read_text()
    metadata = json.loads(text)
    assert metadata["config"]["mode"] == "features"
    assert "NaN" not in text
