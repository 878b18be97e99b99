"""Candidate generation and hard-negative mining: executor search, sources, the two jobs.

The jobs run on a tiny lake whose query model is a small TensorFlow SavedModel with the
two-tower query signature: a user's embedding is
``l2_normalize(USERS[user_idx] + mean(VIDEOS[history]))``, so every expected neighbour
and score below is recomputed with NumPy from the same tables.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

import jobs.build_index
import jobs.generate_candidates
import jobs.mine_hard_negatives
from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.config import load_config
from recsys_spark.models import artifacts as model_artifacts
from recsys_spark.retrieval import artifacts, serving, sources
from recsys_spark.retrieval.index import IndexPlan, VideoIndex, build_corpus, plan_index
from recsys_spark.retrieval.serving import Exclusions, first_per_row, search_excluding
from recsys_spark.runs import Run
from recsys_spark.settings import IndexConfig

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 3, 1, tzinfo=UTC)
DIM = 6
NUM_VIDEOS = 30
HISTORY_LENGTH = 4
MODEL_VERSION = "tt-test"

rng = np.random.default_rng(3)
# Row 0 of both tables is the out-of-vocabulary index.
VIDEOS = rng.normal(size=(NUM_VIDEOS + 1, DIM)).astype(np.float32)
USERS = rng.normal(size=(7, DIM)).astype(np.float32)
# u1 leans towards v02 (only an impression) and v09 (watched after T1): neither is excluded.
USERS[1] = 3 * VIDEOS[2] + 3 * VIDEOS[9]

# user_id, user_idx, region, history (most recent first)
USER_ROWS = [
    ("u1", 1, "r1", [3, 7, 12]),
    ("u2", 2, "r1", [7, 3]),
    ("u3", 3, "r1", [12, 20]),
    ("u4", 4, "r2", [5]),
    ("u5", 5, "r2", [3, 5, 7]),
    ("u6", 6, None, None),
]
# Events before T1 whose type excludes the video: the histories plus u2's dislike of v15
# and u4's rating of v25.
WATCHED = {
    "u1": {3, 7, 12},
    "u2": {3, 7, 15},
    "u3": {12, 20},
    "u4": {5, 25},
    "u5": {3, 5, 7},
    "u6": set(),
}
UNRELEASED = {30}
FRESH = [29, 28]


def vid(idx):
    return f"v{idx:02d}"


def query_embedding(user_idx, history):
    history = [v for v in (history or [])[:HISTORY_LENGTH]]
    pooled = VIDEOS[history].mean(axis=0) if history else np.zeros(DIM, np.float32)
    vector = USERS[user_idx] + pooled
    return vector / np.linalg.norm(vector)


def unit_videos():
    return VIDEOS / np.linalg.norm(VIDEOS, axis=1, keepdims=True)


def save_query_model(path):
    """Save a TensorFlow module with the query signature of the two-tower contract."""
    from recsys_spark.tf_env import tf

    class TinyQueryModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.users = tf.Variable(USERS)
            self.videos = tf.Variable(VIDEOS)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="user_idx"),
                tf.TensorSpec([None], tf.string, name="age_bucket"),
                tf.TensorSpec([None], tf.string, name="gender"),
                tf.TensorSpec([None], tf.string, name="region"),
                tf.TensorSpec([None], tf.string, name="language"),
                tf.TensorSpec([None, None], tf.int64, name="history_video_idx"),
                tf.TensorSpec([None], tf.int64, name="hour_of_day"),
                tf.TensorSpec([None], tf.int64, name="day_of_week"),
            ]
        )
        def serve(
            self,
            user_idx,
            age_bucket,
            gender,
            region,
            language,
            history_video_idx,
            hour_of_day,
            day_of_week,
        ):
            mask = tf.cast(history_video_idx > 0, tf.float32)[:, :, None]
            history = tf.gather(self.videos, history_video_idx) * mask
            pooled = tf.reduce_sum(history, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
            vector = tf.gather(self.users, user_idx) + pooled
            return {"embedding": tf.math.l2_normalize(vector, axis=1)}

    model = TinyQueryModel()
    tf.saved_model.save(model, path, signatures={"serving_default": model.serve})


def write_lake(spark, lake):
    user_schema = T.StructType(
        [
            T.StructField(C.USER_ID, T.StringType(), False),
            T.StructField(C.USER_IDX, T.LongType(), False),
            T.StructField(C.AGE_BUCKET, T.StringType(), True),
            T.StructField(C.GENDER, T.StringType(), True),
            T.StructField(C.REGION, T.StringType(), True),
            T.StructField(C.LANGUAGE, T.StringType(), True),
            T.StructField(C.HISTORY_VIDEO_IDX, T.ArrayType(T.LongType(), False), True),
            T.StructField(C.AS_OF, T.TimestampType(), False),
        ]
    )
    users = [(u, i, "25-34", None, r, "en", h, T1) for u, i, r, h in USER_ROWS]
    io.write_table(spark.createDataFrame(users, user_schema), lake.features("users", "validation"))

    video_schema = T.StructType(
        [
            T.StructField(C.VIDEO_ID, T.StringType(), False),
            T.StructField(C.VIDEO_IDX, T.LongType(), False),
            T.StructField(C.AGE_DAYS, T.DoubleType(), True),
            T.StructField(C.UPLOAD_TS, T.TimestampType(), True),
            T.StructField(C.AS_OF, T.TimestampType(), False),
        ]
    )
    # v30 is uploaded 2 days after the snapshot, so its age is clipped to 0 as in
    # build_features.
    ages = {30: -2.0, 29: 1.0, 28: 3.0}
    day = dt.timedelta(days=1)
    videos = [
        (vid(i), i, max(ages.get(i, 100.0), 0.0), T1 - ages.get(i, 100.0) * day, T1)
        for i in range(1, NUM_VIDEOS + 1)
    ]
    io.write_table(
        spark.createDataFrame(videos, video_schema), lake.features("videos", "validation")
    )

    day = dt.timedelta(days=1)
    events = [
        (u, vid(v), T1 - (k + 1) * day, "watch")
        for u, _, _, h in USER_ROWS
        for k, v in enumerate(h or [])
    ]
    events += [
        ("u1", vid(2), T1 - day, "impression"),
        ("u1", vid(9), T1 + day, "watch"),
        ("u2", vid(15), T1 - day, "dislike"),
        ("u4", vid(25), T1 - 2 * day, "rating"),
    ]
    rows = [(u, v, ts, kind, None, 4.0 if kind == "rating" else None) for u, v, ts, kind in events]
    io.write_table(spark.createDataFrame(rows, C.INTERACTIONS_SCHEMA), lake.raw(C.INTERACTIONS))

    train = [(u, i, v, h or []) for u, i, _, h in USER_ROWS for v in (h or [])]
    train_schema = "user_id string, user_idx long, video_idx long, history_video_idx array<long>"
    io.write_table(spark.createDataFrame(train, train_schema), lake.training("train"))

    model_path = model_artifacts.version_path(lake, MODEL_VERSION)
    save_query_model(f"{model_path}/{model_artifacts.QUERY_DIR}")
    embeddings = [(vid(i), i, VIDEOS[i].tolist()) for i in range(1, NUM_VIDEOS + 1)]
    embedding_schema = "video_id string, video_idx long, embedding array<float>"
    io.write_table(
        spark.createDataFrame(embeddings, embedding_schema),
        f"{model_path}/{model_artifacts.EMBEDDINGS_DIR}",
    )
    io.write_json(
        spark,
        f"{model_path}/metadata.json",
        {"version": MODEL_VERSION, "history_length": HISTORY_LENGTH},
    )
    model_artifacts.write_latest(spark, lake, MODEL_VERSION)


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """A tiny lake with a query model, an index built by build_index and its summary."""
    root = tmp_path_factory.mktemp("candidates") / "lake"
    config = load_config(
        overrides=[
            f"lake.root={root}",
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            "data.size=tiny",
            "candidates.snapshots=[validation]",
            "candidates.num_candidates=5",
            "candidates.overfetch=2",
            "candidates.co_visitation=3",
            "candidates.popular_region=2",
            "candidates.fresh=2",
            "candidates.batch_size=2",
            "candidates.partitions=6",
            "mining.num_negatives=4",
            "mining.skip_top=2",
        ]
    )
    run = Run(spark=spark, config=config)
    write_lake(spark, run.lake)
    summary = jobs.build_index.run(run)
    return run, summary


@pytest.fixture(scope="module")
def generated(built):
    run, _ = built
    summary = jobs.generate_candidates.run(run)
    path = f"{run.lake.candidates()}/validation"
    return io.read_table(run.spark, path), summary


def test_build_index_writes_version(built):
    run, summary = built
    assert summary["method"] == "brute_force"
    assert summary["num_videos"] == NUM_VIDEOS
    assert summary["recall_query_source"] == "users"
    assert summary["recall_at_100"] == 1.0
    assert artifacts.latest_version(run.spark, run.lake) == run.run_id
    metadata = artifacts.read_metadata(run.spark, run.lake, run.run_id)
    assert metadata["two_tower"] == {
        "version": MODEL_VERSION,
        "history_length": HISTORY_LENGTH,
        "embedding_dim": DIM,
    }
    assert metadata["recall"]["queries"] == len(USER_ROWS)


def test_candidates_schema_and_versions(generated, built):
    candidates, _ = generated
    run, _ = built
    assert candidates.schema.fieldNames() == C.CANDIDATES_SCHEMA.fieldNames()
    # Parquet readers mark every column nullable, so compare the types only.
    types = [f.dataType.simpleString() for f in candidates.schema]
    assert types == [f.dataType.simpleString() for f in C.CANDIDATES_SCHEMA]
    versions = candidates.select(C.MODEL_VERSION, C.RUN_ID).distinct().collect()
    assert [tuple(row) for row in versions] == [(MODEL_VERSION, run.run_id)]


def rows_by_user(candidates):
    frame = candidates.toPandas()
    return {user: group for user, group in frame.groupby(C.USER_ID)}


def test_every_user_gets_candidates(generated):
    candidates, summary = generated
    by_user = rows_by_user(candidates)
    assert sorted(by_user) == [u for u, *_ in USER_ROWS]
    stats = summary["snapshots"]["validation"]
    assert stats["users"] == 6
    assert stats["users_without_history"] == 1
    assert stats["users_short_of_two_tower"] == 0
    assert sum(stats["primary_source"].values()) == stats["rows"]
    # Both fresh videos reach all 6 users; no user watched them.
    assert stats["found_by_source"][C.FRESH] == 12
    for user, rows in by_user.items():
        two_tower = rows[rows[C.SOURCES].map(lambda s: C.TWO_TOWER in s)]
        assert len(two_tower) == 5, user


def test_watched_and_unreleased_excluded(generated):
    by_user = rows_by_user(generated[0])
    for user, rows in by_user.items():
        candidate_ids = set(rows[C.VIDEO_ID])
        assert not candidate_ids & {vid(v) for v in WATCHED[user]}, user
        assert vid(30) not in candidate_ids, user
        assert rows[C.VIDEO_ID].is_unique, user
    # An impression (v02) and a watch after the snapshot (v09) exclude nothing.
    u1 = set(by_user["u1"][C.VIDEO_ID])
    assert {vid(2), vid(9)} <= u1


def test_two_tower_is_exact_top_allowed(generated):
    by_user = rows_by_user(generated[0])
    embeddings = unit_videos()
    for user, user_idx, _, history in USER_ROWS:
        scores = embeddings[1:] @ query_embedding(user_idx, history)
        allowed = [i + 1 for i in np.argsort(-scores) if i + 1 not in WATCHED[user] | UNRELEASED]
        rows = by_user[user]
        found = set(rows[rows[C.SOURCES].map(lambda s: C.TWO_TOWER in s)][C.VIDEO_ID])
        assert found == {vid(v) for v in allowed[:5]}, user


def test_scores_are_dot_products_and_ranked(generated):
    by_user = rows_by_user(generated[0])
    embeddings = unit_videos()
    for user, user_idx, _, history in USER_ROWS:
        rows = by_user[user].sort_values(C.RETRIEVAL_RANK)
        query = query_embedding(user_idx, history)
        expected = [float(embeddings[int(v[1:])] @ query) for v in rows[C.VIDEO_ID]]
        np.testing.assert_allclose(rows[C.RETRIEVAL_SCORE], expected, atol=1e-5)
        assert rows[C.RETRIEVAL_RANK].tolist() == list(range(1, len(rows) + 1))
        assert (np.diff(rows[C.RETRIEVAL_SCORE].to_numpy()) <= 0).all(), user


def test_extra_sources(generated):
    by_user = rows_by_user(generated[0])

    def found_by(user, source):
        rows = by_user[user]
        return set(rows[rows[C.SOURCES].map(lambda s: source in s)][C.VIDEO_ID])

    # Region r1 in the 30 days before T1: v03, v07, v12 have 2 users each, v20 has 1;
    # u3 watched v12 and v20, so its two are v03 and v07.
    assert found_by("u3", C.POPULAR_REGION) == {vid(3), vid(7)}
    # u1 watched v03, v07, v12: of the overfetched list only v20 is left.
    assert found_by("u1", C.POPULAR_REGION) == {vid(20)}
    # u6 has no region: every region counts, v03 and v07 (3 users each) lead.
    assert found_by("u6", C.POPULAR_REGION) == {vid(3), vid(7)}
    # v05's co-watchers: v03 and v07 (u5), similarity 1 / sqrt(3 * 2) each.
    assert found_by("u4", C.CO_VISITATION) == {vid(3), vid(7)}
    # v12's neighbours are v20 (in u3's history), v03 and v07.
    assert found_by("u3", C.CO_VISITATION) == {vid(3), vid(7)}
    assert found_by("u6", C.CO_VISITATION) == set()
    for user, *_ in USER_ROWS:
        assert found_by(user, C.FRESH) == {vid(v) for v in FRESH}, user


def test_primary_source_is_first_of_sources(generated):
    frame = generated[0].toPandas()
    order = {source: i for i, source in enumerate(C.CANDIDATE_SOURCES)}
    for source, listed in zip(frame[C.SOURCE], frame[C.SOURCES], strict=True):
        assert source == listed[0]
        assert [order[s] for s in listed] == sorted(order[s] for s in listed)


def test_index_loaded_once_per_worker(generated, built):
    _, summary = generated
    # Six partitions in batches of two users run on local[2]. Without the per-worker cache
    # every batch would load the index, but with it each of the two Python workers loads once.
    assert 1 <= summary["index_loads"] <= 2


def test_cached_bundle_loads_once(built):
    run, _ = built
    folder = artifacts.version_path(run.lake, run.run_id)
    calls = []
    first = serving.cached_bundle(folder, tf_threads=1, on_load=lambda: calls.append(1))
    second = serving.cached_bundle(folder, tf_threads=1, on_load=lambda: calls.append(1))
    assert first is second
    assert calls == [1]
    users = pd.DataFrame(
        [(u, i, "25-34", None, r, "en", h, T1) for u, i, r, h in USER_ROWS],
        columns=list(serving.QUERY_COLUMNS),
    )
    expected = np.stack([query_embedding(i, h) for _, i, _, h in USER_ROWS])
    np.testing.assert_allclose(first.encoder.encode(users), expected, atol=1e-6)


def test_mined_negatives_skip_top_non_positives(built):
    run, _ = built
    summary = jobs.mine_hard_negatives.run(run)
    mined = io.read_table(run.spark, run.lake.training("mined_negatives")).toPandas()
    assert summary["users"] == 5
    embeddings = unit_videos()
    for user, user_idx, _, history in USER_ROWS:
        rows = mined[mined[C.USER_ID] == user]
        if not history:
            assert rows.empty
            continue
        scores = embeddings[1:] @ query_embedding(user_idx, history)
        ranked = [i + 1 for i in np.argsort(-scores) if i + 1 not in set(history)]
        # mining.skip_top=2, mining.num_negatives=4: ranks 3 to 6 among non-positives.
        assert rows[C.VIDEO_IDX].tolist() == ranked[2:6], user
        assert set(rows[C.USER_IDX]) == {user_idx}


def small_index(num_videos=12, dim=4, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(num_videos, dim)).astype(np.float32)
    ids = np.array([vid(i) for i in range(1, num_videos + 1)])
    corpus, _ = build_corpus(ids, np.arange(1, num_videos + 1), vectors)
    return VideoIndex.build(corpus, plan_index(num_videos, dim, IndexConfig()), num_neighbors=4)


def test_search_excluding_retries_short_rows():
    index = small_index()
    queries = index.corpus.embeddings[:2].copy()
    # Row 0 excludes its own 5 nearest videos; with need=3 and overfetch=1 the first
    # search (k=4) finds none allowed, so the row is searched again.
    exact = np.argsort(-(index.corpus.embeddings @ queries[0]))
    excluded = pd.Series([index.corpus.video_idx[exact[:5]], None], dtype=object)
    exclusions = Exclusions(excluded, index)
    rows, positions, ordinals = search_excluding(index, queries, exclusions, need=3, overfetch=1)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert positions[:3].tolist() == exact[5:8].tolist()
    assert ordinals.tolist() == [0, 1, 2, 0, 1, 2]


def test_exclusions_everywhere_and_unknown():
    index = small_index()
    exclusions = Exclusions(pd.Series([[2, 99]], dtype=object), index, np.array([5, 77]))
    positions = np.array([0, 1, 4, 6, -1])
    # video_idx = position + 1: row 0 excludes 2 (position 1); 5 (position 4) everywhere;
    # -1 is ScaNN padding.
    mask = exclusions.allowed(np.zeros(5, dtype=np.int64), positions)
    assert mask.tolist() == [True, False, False, True, False]
    assert exclusions.max_excluded(np.array([0])) == 3


def test_first_per_row_hand_worked():
    rows = np.array([0, 0, 0, 0, 2, 2, 2])
    keep = np.array([True, False, True, True, False, True, True])
    selected, ordinals = first_per_row(rows, keep, limit=2)
    # Row 0 keeps entries 0 and 2 (ordinals 0, 1) but not entry 3 (ordinal 2).
    assert selected.tolist() == [True, False, True, False, False, True, True]
    assert ordinals.tolist() == [0, 1, 1, 2, 0, 0, 1]


def test_co_visitation_table_hand_worked(spark):
    users = spark.createDataFrame(
        [("a", [1, 2, 3]), ("b", [2, 1]), ("c", [3]), ("d", None)],
        "user_id string, history_video_idx array<long>",
    )
    table = sources.co_visitation_table(users, history_length=3, max_neighbors=1).toPandas()
    got = {(r.video_idx, r.neighbor_video_idx): round(r.similarity, 4) for r in table.itertuples()}
    # Watchers: 1 -> {a, b}, 2 -> {a, b}, 3 -> {a, c}. sim(1, 2) = 2 / sqrt(2 * 2) = 1;
    # sim(1, 3) = sim(2, 3) = 1 / sqrt(2 * 2) = 0.5. One neighbour each, ties by index.
    assert got == {(1, 2): 1.0, (2, 1): 1.0, (3, 1): 0.5}


def test_popular_window_and_region(spark):
    users = spark.createDataFrame(
        [("a", "r1", T1), ("b", "r1", T1), ("c", "r2", T1)],
        "user_id string, region string, as_of timestamp",
    )
    videos = spark.createDataFrame(
        [(vid(i), i) for i in (1, 2, 3)], "video_id string, video_idx long"
    )
    day = dt.timedelta(days=1)
    events = spark.createDataFrame(
        [
            ("a", vid(1), T1 - day, "watch", None, None),
            ("a", vid(1), T1 - 2 * day, "like", None, None),
            ("b", vid(2), T1 - day, "watch", None, None),
            ("b", vid(1), T1 - 40 * day, "watch", None, None),  # before the window
            ("b", vid(3), T1 + day, "watch", None, None),  # after the snapshot
            ("c", vid(3), T1 - day, "impression", None, None),  # not a watch event
            ("c", vid(2), T1 - day, "share", None, None),
        ],
        C.INTERACTIONS_SCHEMA,
    )
    args = (events, users, videos, 30.0, 5, ("watch", "like", "share"))
    regional = {r.region: r.popular_video_idx for r in sources.popular_by_region(*args).collect()}
    # r1: v01 (a) and v02 (b), one user each, ties by video_idx; r2: v02 (c).
    assert regional == {"r1": [1, 2], "r2": [2]}
    overall = sources.popular_overall(*args).first()[sources.POPULAR_VIDEO_IDX]
    assert overall == [2, 1]


def test_fresh_and_unreleased(spark):
    # v04 is uploaded a day after the snapshot: build_features clips its age to 0.
    day = dt.timedelta(days=1)
    ages = [(1, 0.5), (2, 3.0), (3, 10.0), (4, -1.0), (5, 0.5)]
    videos = spark.createDataFrame(
        [(i, max(age, 0.0), T1 - age * day, T1) for i, age in ages],
        "video_idx long, age_days double, upload_ts timestamp, as_of timestamp",
    )
    fresh = sources.fresh_videos(videos, max_age_days=7.0, count=5).first()
    # Newest first; v01 and v05 tie on age, so by video_idx; v04 is not out yet.
    assert fresh[sources.FRESH_VIDEO_IDX] == [1, 5, 2]
    assert [r.video_idx for r in sources.unreleased_videos(videos).collect()] == [4]
    empty = sources.fresh_videos(videos.where(F.lit(False)), 7.0, 5).first()
    assert empty[sources.FRESH_VIDEO_IDX] == []


def test_plan_is_serialisable_for_executors():
    # Executors rebuild the plan from metadata.json; a plan with every field set survives.
    plan = plan_index(50_000, 8, IndexConfig())
    assert IndexPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.integration
def test_trained_model_candidates(spark, tmp_path_factory):
    """build_index and generate_candidates on a model that train_two_tower really trained."""
    from two_tower_lake import CATEGORIES, category_of, write_two_tower_lake

    import jobs.train_two_tower
    from recsys_spark.models import (
        load_query_model,
        query_inputs_from_pandas,
        read_metadata,
        version_path,
    )

    root = str(tmp_path_factory.mktemp("trained") / "lake")
    facts = write_two_tower_lake(spark, root, with_users=True)
    config = load_config(
        overrides=[
            f"lake.root={root}",
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            "two_tower.epochs=2",
            "two_tower.batch_size=64",
            "two_tower.history_length=5",
            "two_tower.hidden_units=[32]",
            "two_tower.learning_rate=0.01",
            "two_tower.recall_k=5",
            "index.recall_snapshot=test",
            "candidates.snapshots=[test]",
            "candidates.num_candidates=10",
            "candidates.partitions=2",
        ]
    )
    run = Run(spark=spark, config=config)
    lake = run.lake
    events = [
        (f"u{user:03d}", f"v{video:03d}", ts, "watch", None, None)
        for user, timeline in facts["events"].items()
        for ts, video in timeline
    ]
    io.write_table(spark.createDataFrame(events, C.INTERACTIONS_SCHEMA), lake.raw(C.INTERACTIONS))
    model_version = jobs.train_two_tower.run(run)["model_version"]
    index_summary = jobs.build_index.run(run)
    assert index_summary["model_version"] == model_version
    jobs.generate_candidates.run(run)

    candidates = io.read_table(spark, f"{lake.candidates()}/test").toPandas()
    users = io.read_table(spark, lake.features("users", "test")).orderBy(C.USER_IDX).toPandas()
    assert set(candidates[C.USER_ID]) == set(users[C.USER_ID])
    watched = {
        (f"u{u:03d}", f"v{v:03d}") for u, timeline in facts["events"].items() for _, v in timeline
    }
    pairs = set(zip(candidates[C.USER_ID], candidates[C.VIDEO_ID], strict=True))
    assert not pairs & watched

    # Scores against the exported query SavedModel and embeddings, outside our code path.
    metadata = read_metadata(spark, lake, model_version)
    local = tmp_path_factory.mktemp("query")
    io.download_directory(spark, f"{version_path(lake, model_version)}/query", str(local / "q"))
    model = load_query_model(str(local / "q"))
    inputs = query_inputs_from_pandas(users, metadata["history_length"])
    queries = model.signatures["serving_default"](**inputs)["embedding"].numpy()
    embeddings = io.read_table(spark, f"{version_path(lake, model_version)}/embeddings").toPandas()
    vectors = {row.video_id: np.asarray(row.embedding) for row in embeddings.itertuples()}
    query_of = dict(zip(users[C.USER_ID], queries, strict=True))
    expected = [
        float(query_of[user] @ vectors[video])
        for user, video in zip(candidates[C.USER_ID], candidates[C.VIDEO_ID], strict=True)
    ]
    np.testing.assert_allclose(candidates[C.RETRIEVAL_SCORE], expected, atol=1e-4)

    # Each user prefers category (user_idx - 1) % 4: the model's top picks should show it.
    top = candidates[candidates[C.RETRIEVAL_RANK] <= 3]
    preferred = [
        category_of(int(video[1:])) == (int(user[1:]) - 1) % CATEGORIES
        for user, video in zip(top[C.USER_ID], top[C.VIDEO_ID], strict=True)
    ]
    # Chance is about 1/4 (4 categories) before watched videos are removed.
    assert np.mean(preferred) > 0.5, np.mean(preferred)


def test_new_version_skips_existing_build(spark, tmp_path):
    lake = io.Lake(str(tmp_path))
    assert artifacts.new_version(spark, lake, "r1") == "r1"
    (tmp_path / "models" / "index" / "r1").mkdir(parents=True)
    assert artifacts.new_version(spark, lake, "r1") == "r1-2"
