"""ScaNN index: sizing, exactness against NumPy, recall of the production plan, save and load."""

import dataclasses

import numpy as np
import pytest

from recsys_spark.retrieval import index as index_module
from recsys_spark.retrieval.index import (
    BRUTE_FORCE,
    TREE_AH,
    VideoIndex,
    build_corpus,
    exact_top_k,
    plan_index,
    recall_at_k,
    tune_for_recall,
)
from recsys_spark.settings import IndexConfig


def clustered(num_items, dim, num_clusters, seed, noise=0.35):
    """Unit vectors drawn around random centres, like trained item embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, dim))
    points = centres[rng.integers(0, num_clusters, num_items)] + noise * rng.normal(
        size=(num_items, dim)
    )
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def corpus_of(embeddings):
    ids = np.array([f"v{i}" for i in range(len(embeddings))])
    corpus, _ = build_corpus(ids, np.arange(1, len(embeddings) + 1), embeddings)
    return corpus


@pytest.fixture(scope="module")
def clustered_corpus():
    return corpus_of(clustered(4000, 32, 40, seed=7))


@pytest.fixture(scope="module")
def queries():
    # Queries near the corpus clusters (same centres, fresh noise), as user embeddings are.
    return clustered(300, 32, 40, seed=7, noise=0.5)[::-1].copy()


def test_plan_sizes_from_corpus():
    config = IndexConfig()
    small = plan_index(19_999, 64, config)
    assert small.method == BRUTE_FORCE
    assert small.pre_reorder_neighbors(100) is None

    large = plan_index(1_000_000, 64, config)
    assert large.method == TREE_AH
    # sqrt(1e6) = 1000 leaves, 5% of them searched, 250k training videos.
    assert large.num_leaves == 1000
    assert large.num_leaves_to_search == 50
    assert large.training_sample_size == 250_000
    # 4 x k rescored exactly, but never more than the corpus.
    assert large.pre_reorder_neighbors(100) == 400
    assert plan_index(20_000, 64, config).pre_reorder_neighbors(10_000) == 20_000


def test_plan_rejects_empty_and_oversized_leaves():
    with pytest.raises(ValueError, match="empty"):
        plan_index(0, 64, IndexConfig())
    config = IndexConfig(brute_force_threshold=10, num_leaves=500, training_sample_size=100)
    with pytest.raises(ValueError, match="index.num_leaves is 500"):
        plan_index(1000, 8, config)


def test_exact_top_k_hand_worked():
    corpus = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    positions, scores = exact_top_k(queries, corpus, k=3, max_block_floats=4)
    # Query (1,0): dots 1, 0, 0.6, -1 -> positions 0, 2, 1.
    # Query (0,1): dots 0, 1, 0.8, 0 -> positions 1, 2, then the 0-tie of 0 and 3 -> 0 or 3.
    assert positions[0].tolist() == [0, 2, 1]
    assert positions[1, :2].tolist() == [1, 2]
    assert positions[1, 2] in (0, 3)
    np.testing.assert_allclose(scores, [[1.0, 0.6, 0.0], [1.0, 0.8, 0.0]], atol=1e-6)


def test_brute_force_index_equals_numpy(clustered_corpus, queries):
    plan = plan_index(len(clustered_corpus), clustered_corpus.dim, IndexConfig())
    assert plan.method == BRUTE_FORCE
    index = VideoIndex.build(clustered_corpus, plan, num_neighbors=10)
    positions, scores = index.search(queries, k=25)

    all_scores = queries @ clustered_corpus.embeddings.T
    expected = np.argsort(-all_scores, axis=1, kind="stable")[:, :25]
    np.testing.assert_array_equal(positions, expected)
    np.testing.assert_allclose(
        scores, np.take_along_axis(all_scores, expected, axis=1), rtol=0, atol=1e-5
    )


def test_tree_ah_recall_at_10(clustered_corpus, queries):
    config = IndexConfig(brute_force_threshold=1000)
    plan = plan_index(len(clustered_corpus), clustered_corpus.dim, config)
    assert plan.method == TREE_AH
    # round(sqrt(4000)) = 63 leaves, ceil(63 * 0.05) = 4 searched.
    assert (plan.num_leaves, plan.num_leaves_to_search) == (63, 4)
    index = VideoIndex.build(clustered_corpus, plan, num_neighbors=10)
    assert recall_at_k(index, queries, k=10) >= 0.9


def test_recall_detects_a_bad_searcher(clustered_corpus, queries):
    # One leaf of 63 searched and no re-ordering beyond k: recall must drop well below 1,
    # which shows that recall_at_k measures the searcher rather than returning 1.
    config = IndexConfig(
        brute_force_threshold=1000, leaves_to_search_fraction=0.01, reorder_multiplier=1
    )
    plan = plan_index(len(clustered_corpus), clustered_corpus.dim, config)
    index = VideoIndex.build(clustered_corpus, plan, num_neighbors=10)
    assert recall_at_k(index, queries, k=10) < 0.9


def test_tuning_widens_search_to_target(clustered_corpus, queries):
    config = IndexConfig(
        brute_force_threshold=1000, leaves_to_search_fraction=0.01, reorder_multiplier=1
    )
    plan = plan_index(len(clustered_corpus), clustered_corpus.dim, config)
    index = VideoIndex.build(clustered_corpus, plan, num_neighbors=10)
    steps = tune_for_recall(index, queries, k=10, target=0.9)
    # 1 leaf of 63 first, then 2, 4, ... until the recall reaches 0.9.
    assert steps[0]["num_leaves_to_search"] == 1
    assert steps[0]["recall"] < 0.9
    assert steps[-1]["recall"] >= 0.9
    assert [s["num_leaves_to_search"] for s in steps[1:3]] == [2, 4]
    assert index.plan.num_leaves_to_search == steps[-1]["num_leaves_to_search"]
    assert recall_at_k(index, queries, k=10) == steps[-1]["recall"]


def test_tuning_raises_reorder_after_all_leaves():
    corpus = corpus_of(clustered(300, 16, 3, seed=2))
    config = IndexConfig(brute_force_threshold=10, num_leaves=2, reorder_multiplier=1)
    index = VideoIndex.build(corpus, plan_index(300, 16, config), num_neighbors=10)
    steps = tune_for_recall(index, corpus.embeddings[:50], k=10, target=1.01)
    # Never reachable: both leaves, then multipliers 2, 4, ..., 64, then it stops.
    assert [s["num_leaves_to_search"] for s in steps] == [1, 2] + [2] * 6
    assert [s["reorder_multiplier"] for s in steps] == [1, 1, 2, 4, 8, 16, 32, 64]


def test_save_load_round_trip(tmp_path, clustered_corpus, queries):
    config = IndexConfig(brute_force_threshold=1000)
    plan = plan_index(len(clustered_corpus), clustered_corpus.dim, config)
    index = VideoIndex.build(clustered_corpus, plan, num_neighbors=10)
    index.save(str(tmp_path / "built"), metadata={"model_version": "m1"})
    # Moving the folder must not break it: the ScaNN assets use relative paths.
    (tmp_path / "built").rename(tmp_path / "moved")

    loaded = VideoIndex.load(str(tmp_path / "moved"))
    assert loaded.plan == plan
    np.testing.assert_array_equal(loaded.corpus.video_ids, clustered_corpus.video_ids)
    np.testing.assert_array_equal(loaded.corpus.video_idx, clustered_corpus.video_idx)
    np.testing.assert_array_equal(loaded.corpus.embeddings, clustered_corpus.embeddings)
    before, before_scores = index.search(queries, k=20)
    after, after_scores = loaded.search(queries, k=20)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(after_scores, before_scores, atol=1e-6)
    assert index_module.read_metadata(str(tmp_path / "moved"))["model_version"] == "m1"


def test_load_missing_folder_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an index folder"):
        VideoIndex.load(str(tmp_path))


def test_search_caps_k_at_corpus_size():
    corpus = corpus_of(clustered(5, 4, 2, seed=1))
    index = VideoIndex.build(corpus, plan_index(5, 4, IndexConfig()), num_neighbors=3)
    positions, scores = index.search(corpus.embeddings[:2], k=50)
    assert positions.shape == (2, 5)
    assert sorted(positions[0].tolist()) == [0, 1, 2, 3, 4]
    assert np.isfinite(scores).all()


def test_corpus_dedupes_and_sorts():
    embeddings = np.array([[3, 4], [1, 0], [0, 2], [0, 5]], dtype=np.float32)
    corpus, dropped = build_corpus(
        np.array(["b", "a", "c", "a"]), np.array([7, 2, 5, 9]), embeddings
    )
    # "a" repeats (idx 2 and 9): the row with the smaller video_idx stays.
    assert dropped == 1
    assert corpus.video_ids.tolist() == ["a", "c", "b"]
    assert corpus.video_idx.tolist() == [2, 5, 7]
    # (1,0) -> (1,0); (0,2) -> (0,1); (3,4) -> (0.6,0.8).
    np.testing.assert_allclose(corpus.embeddings, [[1, 0], [0, 1], [0.6, 0.8]], atol=1e-7)


def test_corpus_fail_mode_names_duplicate():
    embeddings = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"\['a'\]"):
        build_corpus(np.array(["a", "b", "a"]), np.array([1, 2, 3]), embeddings, "fail")


def test_corpus_rejects_bad_vectors():
    ids = np.array(["a", "b"])
    with pytest.raises(ValueError, match="'b' contains NaN"):
        build_corpus(ids, np.array([1, 2]), np.array([[1, 0], [np.nan, 1]], np.float32))
    with pytest.raises(ValueError, match="'a' is all zeros"):
        build_corpus(ids, np.array([1, 2]), np.array([[0, 0], [0, 1]], np.float32))
    with pytest.raises(ValueError, match="video_idx 4 belongs to more than one"):
        build_corpus(ids, np.array([4, 4]), np.eye(2, dtype=np.float32))


def test_plan_round_trips_through_dict():
    plan = plan_index(50_000, 16, IndexConfig())
    assert index_module.IndexPlan.from_dict(plan.to_dict()) == plan
    assert dataclasses.asdict(plan)["method"] == TREE_AH
