"""Two-tower inputs, towers, corpus and training on the fixture lake of two_tower_lake.py."""

import datetime as dt
import logging
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from two_tower_lake import (
    NUM_USERS,
    TRAIN_EVENTS,
    TRAINING_SCHEMA,
    write_two_tower_lake,
)

from jobs.train_two_tower import read_training_inputs
from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.config import load_config
from recsys_spark.models import data, evaluation
from recsys_spark.models.inputs import candidate_inputs_from_pandas, query_inputs_from_pandas
from recsys_spark.models.loss import RetrievalLoss
from recsys_spark.models.towers import PADDING_ID, build_towers
from recsys_spark.models.train import Validator, train_two_tower
from recsys_spark.models.two_tower import TwoTowerModel, build_corpus
from recsys_spark.tf_env import tf

VOCABULARIES = {
    "category": ["c0", "c1"],
    "tag": ["a", "b", "c"],
    "title_token": ["x", "y"],
    "language": ["en", "fr"],
    "region": ["r0", "r1"],
    "age_bucket": ["18-24"],
    "gender": ["f", "m"],
    "duration_bucket": ["short", "long"],
}


def _settings(*overrides):
    base = [
        "two_tower.batch_size=64",
        "two_tower.recall_k=5",
        "two_tower.retrieval_k=5",
        "two_tower.history_length=5",
        "two_tower.steps_per_execution=1",
        "two_tower.learning_rate=0.01",
        "two_tower.shuffle_buffer=512",
        "two_tower.hidden_units=[32]",
    ]
    return load_config(overrides=[*base, *overrides]).two_tower


@pytest.fixture(scope="module")
def lake_root(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("two_tower_lake") / "lake")
    write_two_tower_lake(spark, root)
    return root


@pytest.fixture(scope="module")
def training_inputs(spark, lake_root):
    return read_training_inputs(spark, io.Lake(lake_root), C.TEST)


# Pure input helpers.


def test_pad_list_array_truncates_and_filters():
    array = pa.array([[5, 6, 7], None, [], [8]], pa.list_(pa.int64()))
    padded = data.pad_list_array(array, 2, 0, np.int64)
    np.testing.assert_array_equal(padded, [[5, 6], [0, 0], [0, 0], [8, 0]])
    # Dropping the flattened value 5 shifts row 0 to [6, 7].
    keep = np.array([False, True, True, True])
    filtered = data.pad_list_array(array, 2, 0, np.int64, keep=keep)
    np.testing.assert_array_equal(filtered, [[6, 7], [0, 0], [0, 0], [8, 0]])


def test_pad_list_array_respects_slices():
    array = pa.array([[1], [2, 3], [4, 5, 6]], pa.list_(pa.int64())).slice(1, 2)
    padded = data.pad_list_array(array, 3, 0, np.int64)
    np.testing.assert_array_equal(padded, [[2, 3, 0], [4, 5, 6]])


def test_query_inputs_context_from_as_of():
    pdf = pd.DataFrame(
        {
            C.USER_IDX: [3, 4],
            C.AGE_BUCKET: ["18-24", None],
            C.GENDER: [None, "m"],
            C.REGION: ["r0", "r1"],
            C.LANGUAGE: ["en", "fr"],
            C.HISTORY_VIDEO_IDX: [[9, 8, 7], None],
            # 2024-01-07 is a Sunday (weekday 6), 2024-01-10 a Wednesday (2).
            C.AS_OF: pd.to_datetime(["2024-01-07 15:30", "2024-01-10 00:10"]),
        }
    )
    inputs = query_inputs_from_pandas(pdf, history_length=2)
    np.testing.assert_array_equal(inputs[C.USER_IDX], [3, 4])
    assert inputs[C.USER_IDX].dtype == np.int64
    assert list(inputs[C.AGE_BUCKET]) == ["18-24", ""]
    assert list(inputs[C.GENDER]) == ["", "m"]
    # Truncation keeps the most recent entries, which come first.
    np.testing.assert_array_equal(inputs[C.HISTORY_VIDEO_IDX], [[9, 8], [0, 0]])
    np.testing.assert_array_equal(inputs[C.HOUR_OF_DAY], [15, 0])
    np.testing.assert_array_equal(inputs[C.DAY_OF_WEEK], [6, 2])


def test_query_inputs_context_precedence():
    pdf = pd.DataFrame(
        {
            C.USER_IDX: [1],
            C.AGE_BUCKET: ["a"],
            C.GENDER: ["f"],
            C.REGION: ["r"],
            C.LANGUAGE: ["en"],
            C.HISTORY_VIDEO_IDX: [[2]],
            C.AS_OF: pd.to_datetime(["2024-01-07 15:30"]),
        }
    )
    # 2024-01-13 is a Saturday (weekday 5); context_time wins over as_of.
    explicit = query_inputs_from_pandas(pdf, 3, context_time="2024-01-13T22:00:00Z")
    np.testing.assert_array_equal(explicit[C.HOUR_OF_DAY], [22])
    np.testing.assert_array_equal(explicit[C.DAY_OF_WEEK], [5])
    # Columns named like the signature inputs win over both.
    with_columns = pdf.assign(**{C.HOUR_OF_DAY: [5], C.DAY_OF_WEEK: [2]})
    given = query_inputs_from_pandas(with_columns, 3, context_time="2024-01-13T22:00:00Z")
    np.testing.assert_array_equal(given[C.HOUR_OF_DAY], [5])
    np.testing.assert_array_equal(given[C.DAY_OF_WEEK], [2])


def test_query_inputs_missing_column_named():
    pdf = pd.DataFrame({C.USER_IDX: [1]})
    with pytest.raises(ValueError, match="history_video_idx"):
        query_inputs_from_pandas(pdf, 3)


def test_candidate_inputs_pad_lists():
    pdf = pd.DataFrame(
        {
            C.VIDEO_IDX: [7, 8],
            C.CATEGORY: ["c0", None],
            C.LANGUAGE: ["en", "fr"],
            C.DURATION_BUCKET: ["short", "long"],
            C.TAGS: [["a", "b", "c"], None],
            C.TITLE_TOKENS: [["x"], ["y", None]],
            C.AGE_DAYS: [3.5, float("nan")],
        }
    )
    inputs = candidate_inputs_from_pandas(pdf, tags_length=2, title_length=2)
    assert inputs[C.TAGS].tolist() == [["a", "b"], ["", ""]]
    assert inputs[C.TITLE_TOKENS].tolist() == [["x", ""], ["y", ""]]
    assert list(inputs[C.CATEGORY]) == ["c0", ""]
    np.testing.assert_array_equal(inputs[C.AGE_DAYS], np.array([3.5, 0.0], np.float32))


# Towers and corpus.


def _tiny_towers(mode="features"):
    return build_towers(mode, 5, 10, VOCABULARIES, 8, 4, 4, (8,))


def _query_batch(user_idx):
    size = len(user_idx)
    return {
        C.USER_IDX: tf.constant(user_idx, tf.int64),
        C.AGE_BUCKET: tf.constant(["18-24"] * size),
        C.GENDER: tf.constant(["f"] * size),
        C.REGION: tf.constant(["r0"] * size),
        C.LANGUAGE: tf.constant(["en"] * size),
        C.HISTORY_VIDEO_IDX: tf.constant([[3, 0]] * size, tf.int64),
        C.HOUR_OF_DAY: tf.constant([10] * size, tf.int64),
        C.DAY_OF_WEEK: tf.constant([2] * size, tf.int64),
    }


@pytest.mark.parametrize("mode", ["features", "id_only"])
def test_towers_unit_norm_and_unknown_ids(mode):
    query, candidate = _tiny_towers(mode)
    # user_idx 999 is outside the 5-row table, so it embeds like the unknown user 0.
    embeddings = query(_query_batch([0, 999, 2])).numpy()
    assert embeddings.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embeddings[0], embeddings[1], rtol=1e-6)
    assert not np.allclose(embeddings[0], embeddings[2])
    videos = candidate(
        {
            C.VIDEO_IDX: tf.constant([1, 50], tf.int64),
            C.CATEGORY: tf.constant(["c0", "zzz"]),
            C.LANGUAGE: tf.constant(["en", "en"]),
            C.DURATION_BUCKET: tf.constant(["short", "long"]),
            C.TAGS: tf.constant([["a", ""], ["", ""]]),
            C.TITLE_TOKENS: tf.constant([["x"], ["y"]]),
            C.AGE_DAYS: tf.constant([1.0, 400.0]),
        }
    ).numpy()
    np.testing.assert_allclose(np.linalg.norm(videos, axis=1), 1.0, rtol=1e-5)


def test_history_uses_candidate_video_table():
    query, candidate = _tiny_towers()
    assert query.video_embedding is candidate.video_embedding
    before = query(_query_batch([1])).numpy()
    # Changing video 3's row (the user's history) changes the query embedding.
    table = candidate.video_embedding.embedding.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[3]], [[5.0, -5.0, 5.0, -5.0]]))
    after = query(_query_batch([1])).numpy()
    assert not np.allclose(before, after)


def test_empty_vocabulary_maps_to_oov():
    # MovieLens writes an empty language vocabulary; StringLookup rejects an empty list.
    vocabularies = {**VOCABULARIES, "language": []}
    query, candidate = build_towers("features", 5, 10, vocabularies, 8, 4, 4, (8,))
    ids = candidate.lookup(
        {
            C.VIDEO_IDX: tf.constant([1], tf.int64),
            C.CATEGORY: tf.constant(["c1"]),
            C.LANGUAGE: tf.constant(["en"]),
            C.DURATION_BUCKET: tf.constant(["long"]),
            C.TAGS: tf.constant([["a"]]),
            C.TITLE_TOKENS: tf.constant([["x"]]),
            C.AGE_DAYS: tf.constant([2.0]),
        }
    )
    assert ids[C.LANGUAGE].numpy().tolist() == [0]
    embeddings = query(_query_batch([1, 2])).numpy()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


def test_lookup_marks_padding_and_oov():
    _, candidate = _tiny_towers()
    ids = candidate.lookup(
        {
            C.VIDEO_IDX: tf.constant([1], tf.int64),
            C.CATEGORY: tf.constant(["c1"]),
            C.LANGUAGE: tf.constant(["de"]),
            C.DURATION_BUCKET: tf.constant(["long"]),
            C.TAGS: tf.constant([["c", "zzz", ""]]),
            C.TITLE_TOKENS: tf.constant([["y", ""]]),
            C.AGE_DAYS: tf.constant([2.0]),
        }
    )
    # Vocabulary line i has index i + 1; unknown values get 0 and padding "" gets -1.
    assert ids[C.CATEGORY].numpy().tolist() == [2]
    assert ids[C.LANGUAGE].numpy().tolist() == [0]
    assert ids[C.TAGS].numpy().tolist() == [[3, 0, PADDING_ID]]
    assert ids[C.TITLE_TOKENS].numpy().tolist() == [[2, PADDING_ID]]


def _tiny_videos():
    as_of = pd.Timestamp("2024-01-11 00:00")
    return pd.DataFrame(
        {
            C.VIDEO_ID: ["v2", "v1"],
            C.VIDEO_IDX: [2, 1],
            C.CATEGORY: ["c1", "c0"],
            C.LANGUAGE: ["en", "fr"],
            C.DURATION_BUCKET: ["short", "long"],
            C.TAGS: [["a"], ["b", "c"]],
            C.TITLE_TOKENS: [["x"], []],
            C.AGE_DAYS: [10.0, 1.0],
            C.AS_OF: [as_of, as_of],
        }
    )


def test_corpus_gathers_features_and_ages():
    _, candidate = _tiny_towers()
    probabilities = pd.DataFrame({C.VIDEO_IDX: [1, 2], C.PROBABILITY: [0.25, 0.75]})
    corpus = build_corpus(candidate, _tiny_videos(), probabilities, 6, 2, 2)
    assert corpus.members.numpy().tolist() == [1, 2]
    assert list(corpus.video_ids) == ["v1", "v2"]
    # as_of 2024-01-11 is day 19733 since the epoch; video 2 was uploaded 10 days earlier.
    as_of_day = (pd.Timestamp("2024-01-11") - pd.Timestamp("1970-01-01")).days
    days = tf.constant([as_of_day - 3.0, as_of_day, as_of_day], tf.float64)
    gathered = corpus.gather(tf.constant([2, 1, 5], tf.int64), days)
    np.testing.assert_allclose(gathered[C.AGE_DAYS].numpy(), [7.0, 1.0, 0.0])
    # Video 5 is not in the snapshot: unknown category, all-padding tags.
    assert gathered[C.CATEGORY].numpy().tolist() == [2, 1, 0]
    assert gathered[C.TAGS].numpy().tolist() == [[1, PADDING_ID], [2, 3], [PADDING_ID] * 2]
    np.testing.assert_allclose(corpus.probability.numpy(), [0, 0.25, 0.75, 0, 0, 0])


def test_corpus_rejects_duplicate_video():
    _, candidate = _tiny_towers()
    videos = _tiny_videos().assign(**{C.VIDEO_IDX: [1, 1]})
    empty = pd.DataFrame({C.VIDEO_IDX: [], C.PROBABILITY: []})
    with pytest.raises(ValueError, match="video_idx 1 more than once"):
        build_corpus(candidate, videos, empty, 6, 2, 2)


def test_mixture_probability_of_random_negatives():
    query, candidate = _tiny_towers()
    videos = _tiny_videos()
    probabilities = pd.DataFrame({C.VIDEO_IDX: [1, 2], C.PROBABILITY: [0.2, 0.8]})
    corpus = build_corpus(candidate, videos, probabilities, 6, 2, 2)
    model = TwoTowerModel(query, candidate, corpus, RetrievalLoss(0.1), random_negatives=2)
    # B = 2 positives with p = 0.5 and 0.1, R = 2 samples from M = 2 videos (video 1: 0.2):
    # q = (B p + R / M) / (B + R) = (2 p + 1) / 4 -> 0.5, 0.3 for the positives, 0.35 for
    # a sampled video 1 and 0.65 for a sampled video 2.
    q = model._mixture_probability(tf.constant([0.5, 0.1]), tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(q.numpy(), [0.5, 0.3, 0.35, 0.65], rtol=1e-6)


# Exact metrics.

# Videos 10, 20, 30, 40 at (1, 0), (0.8, 0.6), (0, 1), (-1, 0): the query (1, 0) scores
# them 1, 0.8, 0, -1.
CORPUS_IDX = np.array([10, 20, 30, 40])
CORPUS = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], np.float32)


def test_recall_excludes_history():
    query = np.array([[1.0, 0.0]], np.float32)
    # Top 1 is video 10, so positive 20 is missed...
    assert evaluation.recall_at_k(query, np.array([20]), CORPUS, CORPUS_IDX, 1) == 0.0
    # ...unless video 10 is in the history, which moves 20 to the top.
    history = np.array([[10, 0]])
    assert evaluation.recall_at_k(query, np.array([20]), CORPUS, CORPUS_IDX, 1, history) == 1.0
    # A positive outside the corpus is always a miss.
    assert evaluation.recall_at_k(query, np.array([99]), CORPUS, CORPUS_IDX, 4) == 0.0


def test_popularity_recall_excludes_history_once():
    # Popularity order: 20 (0.5), 30 (0.3), 10 (0.1, lower idx first), 40 (0.1).
    popularity = np.array([0.1, 0.5, 0.3, 0.1])
    recall = evaluation.popularity_recall_at_k
    assert recall(np.array([30]), CORPUS_IDX, popularity, 1) == 0.0
    assert recall(np.array([30]), CORPUS_IDX, popularity, 1, np.array([[20, 0]])) == 1.0
    # Video 10 ranks third; a history repeating 20 moves it up one place, not two.
    assert recall(np.array([10]), CORPUS_IDX, popularity, 1, np.array([[20, 20]])) == 0.0
    assert recall(np.array([10]), CORPUS_IDX, popularity, 2, np.array([[20, 20]])) == 1.0


# Streaming from Parquet.


def _file_rows(path):
    table = pq.read_table(path, columns=[C.USER_IDX, C.VIDEO_IDX, C.EVENT_TS])
    return sorted(zip(table[C.USER_IDX].to_pylist(), table[C.VIDEO_IDX].to_pylist(), strict=True))


def _epoch_rows(path, epoch, seed=3):
    row_format = data.RowFormat(history_length=5)
    dataset = data.training_dataset(path, row_format, 64, 300, 100, seed, epoch)
    rows, batches = [], 0
    for batch in dataset:
        batches += 1
        assert batch[C.USER_IDX].shape == (64,)
        assert batch[C.HISTORY_VIDEO_IDX].shape == (64, 5)
        users = batch[C.USER_IDX].numpy().tolist()
        rows += list(zip(users, batch[C.VIDEO_IDX].numpy().tolist(), strict=True))
    return rows, batches


def test_training_stream_covers_each_row_once(training_inputs):
    path = training_inputs.train_path
    rows, batches = _epoch_rows(path, epoch=1)
    # 1280 training rows in batches of 64: 20 full batches, nothing dropped.
    assert batches == NUM_USERS * TRAIN_EVENTS // 64
    assert sorted(rows) == _file_rows(path)
    again, _ = _epoch_rows(path, epoch=1)
    assert again == rows
    other_epoch, _ = _epoch_rows(path, epoch=2)
    assert other_epoch != rows
    assert sorted(other_epoch) == sorted(rows)


def test_row_negatives_filtered_by_type(training_inputs):
    path = training_inputs.train_path
    row_format = data.RowFormat(history_length=5, row_negatives=2, row_negative_types=("popular",))
    chunk = next(data.iter_row_chunks(path, row_format, read_batch_rows=50))
    table = pq.read_table(path, columns=[C.NEGATIVE_VIDEO_IDX, C.NEGATIVE_TYPES]).slice(0, 50)
    # The fixture lists each row's negatives as [random, popular]; only the second is kept.
    expected = [[negatives[1], 0] for negatives in table[C.NEGATIVE_VIDEO_IDX].to_pylist()]
    assert chunk[C.NEGATIVE_VIDEO_IDX].tolist() == expected


def test_scan_rejects_zero_probability(spark, tmp_path):
    event = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)
    row = ("u1", 1, "v007", 7, event, 9, 2, "a", "f", "r0", "en", [], 0.0, [], [])
    ok = ("u1", 1, "v001", 1, event, 9, 2, "a", "f", "r0", "en", [], 0.5, [], [])
    path = str(tmp_path / "train")
    io.write_table(spark.createDataFrame([ok, row], TRAINING_SCHEMA), path)
    with pytest.raises(ValueError, match="sampling_probability 0.0 for video_id 'v007'"):
        data.scan_split(path, read_batch_rows=10, check_probabilities=True)
    # Without logQ correction the probabilities are not needed, so the scan passes.
    scan = data.scan_split(path, read_batch_rows=10, check_probabilities=False)
    assert scan.rows == 2


def test_missing_training_column_named(spark, tmp_path):
    path = str(tmp_path / "train")
    io.write_table(spark.createDataFrame([("u1", 1)], "user_id string, user_idx long"), path)
    with pytest.raises(ValueError, match="video_id"):
        data.scan_split(path, read_batch_rows=10, check_probabilities=False)


# Training end to end on the fixture.


@pytest.fixture(scope="module")
def trained(training_inputs, tmp_path_factory):
    # Exercises every negative source: in-batch, 16 random corpus videos, 2 row negatives.
    settings = _settings(
        "two_tower.epochs=3", "two_tower.random_negatives=16", "two_tower.row_negatives=2"
    )
    model_dir = str(tmp_path_factory.mktemp("two_tower_model"))
    return train_two_tower(
        training_inputs, settings, 5, 7, model_dir, exclude_history=False
    ), model_dir


def test_training_beats_untrained_and_popularity(trained):
    result, _ = trained
    metrics = result.metrics
    # Random ranking: recall@5 = 5/48 ~ 0.10. Users' regions name their category, so the
    # trained model should find their category's popular videos.
    assert metrics["untrained_recall_at_k"] < 0.25
    assert metrics["best_recall_at_k"] > metrics["untrained_recall_at_k"] + 0.25
    assert metrics["best_recall_at_k"] > metrics["popularity_recall_at_k"]
    assert all(math.isfinite(epoch["loss"]) for epoch in result.epochs)


def test_best_epoch_restored_and_checkpointed(trained, training_inputs):
    result, model_dir = trained
    recalls = [epoch["recall_at_5"] for epoch in result.epochs]
    assert result.metrics["best_epoch"] == 1 + int(np.argmax(recalls))
    assert result.metrics["best_recall_at_k"] == max(recalls)
    assert os.listdir(os.path.join(model_dir, "checkpoints", "best"))
    assert os.listdir(os.path.join(model_dir, "logs", "validation"))
    # The towers in memory are the best epoch's: re-scoring gives its recall.
    validator = Validator(
        training_inputs.validation_path, 5, _settings(), result.reference_day, False
    )
    recall, _, _ = validator.recall(result.query_tower, result.candidate_tower, result.corpus)
    assert recall == pytest.approx(result.metrics["best_recall_at_k"])


def test_id_only_mode_learns(training_inputs, tmp_path):
    settings = _settings(
        "two_tower.mode=id_only", "two_tower.epochs=4", "two_tower.learning_rate=0.05"
    )
    result = train_two_tower(training_inputs, settings, 5, 7, str(tmp_path), exclude_history=False)
    assert result.metrics["best_recall_at_k"] > result.metrics["untrained_recall_at_k"] + 0.15


def test_batch_larger_than_split_shrinks_with_warning(training_inputs, tmp_path, caplog):
    settings = _settings("two_tower.batch_size=1048576", "two_tower.epochs=1")
    with caplog.at_level(logging.WARNING, logger="recsys_spark.models.train"):
        result = train_two_tower(
            training_inputs, settings, 5, 7, str(tmp_path), exclude_history=False
        )
    assert "fewer than two_tower.batch_size=1048576" in caplog.text
    assert len(result.epochs) == 1
