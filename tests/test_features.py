"""Point-in-time user and video features, histories, vocabularies and non-finite values."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from recsys_spark import columns as C
from recsys_spark import vocab
from recsys_spark.cleaning import non_finite_counts, replace_non_finite
from recsys_spark.features import (
    USER_FEATURE_COLUMNS,
    VIDEO_FEATURE_COLUMNS,
    duration_bucket,
    duration_bucket_labels,
    title_tokens,
    user_features,
    video_catalog,
    video_features,
)
from recsys_spark.history import example_histories, snapshot_history
from recsys_spark.positives import clean_interactions, clean_videos, label_events
from recsys_spark.settings import PositivesConfig

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 3, 1, tzinfo=UTC)
EDGES = (60.0, 300.0, 1200.0, 3600.0)


def before(days: float = 0.0, hours: float = 0.0) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days, hours=hours)


def naive(instant: dt.datetime) -> dt.datetime:
    """Collected timestamps come back naive, in the (UTC) time zone of the test process."""
    return instant.astimezone(UTC).replace(tzinfo=None)


def video_rows(spark, rows):
    """rows: (video_id, title, tags, category, duration_s, upload_ts)."""
    full = [
        (vid, title, tags, category, "en", duration, upload, f"c-{vid}", [], None)
        for vid, title, tags, category, duration, upload in rows
    ]
    return spark.createDataFrame(full, C.VIDEOS_SCHEMA)


def id_map(spark, ids, id_column, index_column):
    return spark.createDataFrame(
        [(value, index + 1) for index, value in enumerate(ids)],
        f"{id_column} string, {index_column} long",
    )


def labeled(spark, rows, videos):
    events = spark.createDataFrame(rows, C.INTERACTIONS_SCHEMA)
    return label_events(clean_interactions(events), clean_videos(videos), PositivesConfig())


# --- tokens and buckets ---------------------------------------------------------------


def test_title_tokens_and_duration_buckets(spark):
    df = spark.createDataFrame(
        [("Toy Story (1995)", 30.0), ("L'Amour, déjà-vu!", 60.0), (None, None), ("  ", 7200.0)],
        "title string, duration double",
    )
    got = df.select(
        title_tokens(F.col("title")).alias("tokens"),
        title_tokens(F.col("title"), ["story", "l"]).alias("filtered"),
        duration_bucket(F.col("duration"), EDGES).alias("bucket"),
    ).collect()
    assert [row.tokens for row in got] == [
        ["toy", "story", "1995"],
        ["l", "amour", "déjà", "vu"],
        [],
        [],
    ]
    assert [row.filtered for row in got][:2] == [["toy", "1995"], ["amour", "déjà", "vu"]]
    # 60 is the first edge, so it opens the second bucket.
    assert [row.bucket for row in got] == ["0-60s", "60-300s", "unknown", "3600s+"]
    assert duration_bucket_labels(EDGES) == [
        "0-60s",
        "60-300s",
        "300-1200s",
        "1200-3600s",
        "3600s+",
        "unknown",
    ]


# --- video features -------------------------------------------------------------------


@pytest.fixture
def catalog_and_events(spark):
    videos = video_rows(
        spark,
        [
            ("v1", "Cats at Play", ["cats", "pets", "cats"], "pets", 100.0, before(10)),
            ("v2", None, None, None, None, None),
            ("v3", "News Today", ["news"], "news", 50.0, AS_OF + dt.timedelta(days=1)),
        ],
    )
    catalog = video_catalog(
        videos, id_map(spark, ["v1", "v2", "v3"], "video_id", "video_idx"), EDGES
    )
    rows = [
        ("u1", "v1", before(0.5), "watch", 50.0, None),  # fraction 0.5, 1 day window
        ("u2", "v1", before(3), "watch", 100.0, None),  # fraction 1.0, 7 day window
        ("u1", "v1", before(10), "like", None, None),  # a like is not a view
        ("u3", "v1", before(40), "rating", None, 5.0),  # a view older than 30 days
        ("u2", "v3", before(2), "watch", 0.0, None),  # fraction 0.0
        ("u9", "v1", AS_OF, "watch", 100.0, None),  # at as_of: not before it
        ("u9", "v2", AS_OF + dt.timedelta(days=1), "like", None, None),  # future
    ]
    return catalog, labeled(spark, rows, videos)


def test_video_features_hand_computed(spark, catalog_and_events):
    catalog, events = catalog_and_events
    got = video_features(catalog, events, AS_OF, rate_prior_views=1.0)
    assert tuple(got.columns) == VIDEO_FEATURE_COLUMNS

    # Global watch prior: fractions 0.5, 1.0, 0.0 -> 0.5. Like prior: 1 like / 4 views.
    # v1: watch-through (1.5 + 1 * 0.5) / (2 + 1) = 2/3; like rate (1 + 0.25) / (3 + 1).
    # v2: no events -> the priors, 0.5 and 0.25 / 1.
    # v3: watch-through (0 + 0.5) / (1 + 1) = 0.25; like rate (0 + 0.25) / (1 + 1).
    # age: v1 uploaded 10 days before; v2 unknown -> 0; v3 uploaded after as_of -> 0.
    expected = spark.createDataFrame(
        [
            (
                "v1",
                1,
                ["cats", "at", "play"],
                ["cats", "pets"],
                "60-300s",
                10.0,
                1,
                2,
                2,
                3,
                math.log1p(2),
                math.log1p(3),
                2 / 3,
                1.25 / 4,
            ),
            ("v2", 2, [], [], "unknown", 0.0, 0, 0, 0, 0, 0.0, 0.0, 0.5, 0.25),
            (
                "v3",
                3,
                ["news", "today"],
                ["news"],
                "0-60s",
                0.0,
                0,
                1,
                1,
                1,
                math.log1p(1),
                math.log1p(1),
                0.25,
                0.125,
            ),
        ],
        "video_id string, video_idx long, title_tokens array<string>, tags array<string>, "
        "duration_bucket string, age_days double, views_1d long, views_7d long, "
        "views_30d long, views_all long, log_views_7d double, log_views_all double, "
        "watch_through_rate double, like_rate double",
    )
    assertDataFrameEqual(got.select(*expected.columns), expected, rtol=1e-9)
    strings = got.select(C.TITLE, C.CATEGORY).where("video_id = 'v2'").first()
    assert tuple(strings) == ("", "")
    assert {naive(AS_OF)} == {row[C.AS_OF] for row in got.collect()}


def test_video_features_ignore_future_events(spark, catalog_and_events):
    catalog, events = catalog_and_events
    baseline = video_features(catalog, events, AS_OF, rate_prior_views=1.0)
    videos = video_rows(spark, [("v1", "x", [], "pets", 100.0, before(10))])
    planted = labeled(
        spark,
        [
            ("u5", "v1", AS_OF, "watch", 100.0, None),
            ("u5", "v1", AS_OF + dt.timedelta(seconds=1), "like", None, None),
            ("u6", "v3", AS_OF + dt.timedelta(days=2), "rating", None, 5.0),
            ("u6", "v2", AS_OF + dt.timedelta(days=3), "watch", 10.0, None),
        ],
        videos,
    )
    with_future = video_features(catalog, events.unionByName(planted), AS_OF, 1.0)
    assertDataFrameEqual(with_future, baseline)


# --- user features --------------------------------------------------------------------


@pytest.fixture
def user_inputs(spark):
    users = spark.createDataFrame(
        [
            ("u1", before(100), "EU", "en", "25-34", "F", {}),
            ("u2", before(3), None, None, None, None, {}),
        ],
        C.USERS_SCHEMA,
    )
    user_ids = id_map(spark, ["u1", "u2", "u3"], "user_id", "user_idx")
    videos = video_rows(
        spark,
        [
            ("v1", "a", [], "music", 100.0, before(60)),
            ("v2", "b", [], "news", 100.0, before(60)),
            ("v3", "c", [], "music", 100.0, before(60)),
            ("v4", "d", [], "music", 100.0, before(60)),
        ],
    )
    rows = [
        ("u1", "v1", before(0, 2), "watch", 80.0, None),  # positive, 1 day window
        ("u1", "v1", before(0, 1), "impression", None, None),  # not activity
        ("u1", "v2", before(5), "like", None, None),  # positive, 7 day window
        ("u1", "v3", before(20), "rating", None, 5.0),  # positive, 30 day window
        ("u1", "v4", before(40), "rating", None, 2.0),  # not positive, all time
    ]
    events = labeled(spark, rows, videos)
    firsts = (
        events.filter("is_positive")
        .groupBy(C.USER_ID, C.VIDEO_ID)
        .agg(F.min(C.EVENT_TS).alias(C.EVENT_TS))
        .join(id_map(spark, ["v1", "v2", "v3", "v4"], "video_id", "video_idx"), C.VIDEO_ID)
        .join(videos.select(C.VIDEO_ID, C.CATEGORY), C.VIDEO_ID)
    )
    return user_ids, users, videos, events, firsts


def compute_users(user_inputs, events=None, firsts=None):
    user_ids, users, _, base_events, base_firsts = user_inputs
    return user_features(
        user_ids,
        users,
        base_events if events is None else events,
        base_firsts if firsts is None else firsts,
        as_of=AS_OF,
        period_start=before(50),
        history_length=5,
    )


def test_user_features_hand_computed(spark, user_inputs):
    got = compute_users(user_inputs)
    assert tuple(got.columns) == USER_FEATURE_COLUMNS
    # u1: activity = watch (2 h), like (5 d), rating (20 d), rating (40 d); the impression
    # does not count. Positives: v1 music, v2 news, v3 music -> music 2/3, news 1/3.
    # u2: no events: global mean watch fraction 0.8, days since signup 3.
    # u3: not in the users table and no signup: days since period start (50).
    expected = spark.createDataFrame(
        [
            (
                "u1",
                1,
                "25-34",
                "F",
                "EU",
                "en",
                1,
                2,
                3,
                4,
                math.log1p(2),
                math.log1p(3),
                0.8,
                {"music": 2 / 3, "news": 1 / 3},
                ["v1", "v2", "v3"],
                [1, 2, 3],
                2 / 24,
                naive(AS_OF),
            ),
            ("u2", 2, "", "", "", "", 0, 0, 0, 0, 0.0, 0.0, 0.8, {}, [], [], 3.0, naive(AS_OF)),
            ("u3", 3, "", "", "", "", 0, 0, 0, 0, 0.0, 0.0, 0.8, {}, [], [], 50.0, naive(AS_OF)),
        ],
        "user_id string, user_idx long, age_bucket string, gender string, region string, "
        "language string, events_1d long, events_7d long, events_30d long, events_all long, "
        "log_events_7d double, log_events_30d double, avg_watch_fraction double, "
        "category_affinity map<string,double>, history_video_ids array<string>, "
        "history_video_idx array<long>, days_since_last_activity double, as_of timestamp",
    )
    assertDataFrameEqual(got, expected, rtol=1e-9)


def test_user_features_ignore_future_events(spark, user_inputs):
    _, _, videos, events, firsts = user_inputs
    baseline = compute_users(user_inputs)
    planted_rows = [
        ("u1", "v4", AS_OF, "like", None, None),
        ("u2", "v1", AS_OF + dt.timedelta(hours=1), "watch", 100.0, None),
        ("u3", "v2", AS_OF + dt.timedelta(days=5), "rating", None, 5.0),
    ]
    planted = labeled(spark, planted_rows, videos)
    planted_firsts = (
        planted.filter("is_positive")
        .select(C.USER_ID, C.VIDEO_ID, C.EVENT_TS)
        .join(id_map(spark, ["v1", "v2", "v3", "v4"], "video_id", "video_idx"), C.VIDEO_ID)
        .join(videos.select(C.VIDEO_ID, C.CATEGORY), C.VIDEO_ID)
    )
    got = compute_users(
        user_inputs,
        events.unionByName(planted),
        firsts.unionByName(planted_firsts),
    )
    assertDataFrameEqual(got, baseline)


def test_user_features_per_user_as_of(spark, user_inputs):
    user_ids, users, _, events, firsts = user_inputs
    # leave_last_n gives each user an own as_of: u1's is 10 days before the global one.
    per_user = spark.createDataFrame([("u1", before(10))], "user_id string, as_of timestamp")
    got = user_features(
        user_ids,
        users,
        events,
        firsts,
        as_of=AS_OF,
        period_start=before(50),
        history_length=5,
        per_user_as_of=per_user,
    )
    rows = {row[C.USER_ID]: row for row in got.collect()}
    # u1 counts only the ratings 20 and 40 days back, i.e. 10 and 30 days before its as_of.
    assert rows["u1"][C.AS_OF] == naive(before(10))
    assert rows["u1"][C.EVENTS_30D] == 2
    assert rows["u1"][C.EVENTS_7D] == 0
    assert rows["u1"][C.HISTORY_VIDEO_IDS] == ["v3"]
    assert rows["u1"][C.DAYS_SINCE_LAST_ACTIVITY] == pytest.approx(10.0)
    # u2 keeps the global as_of; with u1's watch now invisible there is no watch at all.
    assert rows["u2"][C.AS_OF] == naive(AS_OF)
    assert rows["u2"][C.AVG_WATCH_FRACTION] == 0.0


# --- histories ------------------------------------------------------------------------

FIRSTS_SCHEMA = "user_id string, video_id string, video_idx long, event_ts timestamp"


def test_snapshot_history_orders_ties_by_video_id(spark):
    firsts = spark.createDataFrame(
        [
            ("u1", "vb", 2, before(1)),
            ("u1", "va", 1, before(1)),  # same time as vb: ordered by video_id
            ("u1", "vc", 3, before(2)),
            ("u1", "vd", 4, before(3)),  # beyond length 3
            ("u1", "ve", 5, AS_OF),  # not strictly before as_of
        ],
        FIRSTS_SCHEMA,
    )
    got = snapshot_history(firsts, AS_OF, length=3).first()
    assert got[C.HISTORY_VIDEO_IDS] == ["va", "vb", "vc"]
    assert got[C.HISTORY_VIDEO_IDX] == [1, 2, 3]


def test_example_histories_strictly_before(spark):
    firsts = spark.createDataFrame(
        [
            ("u1", "v1", 1, before(5)),
            ("u1", "v2", 2, before(4)),
            ("u1", "v4", 4, before(3)),  # v3 and v4 share a timestamp
            ("u1", "v3", 3, before(3)),
            ("u1", "v5", 5, before(2)),
            ("u2", "v1", 1, before(1)),
        ],
        FIRSTS_SCHEMA,
    )
    examples = spark.createDataFrame(
        [
            ("u1", "v1", before(5)),  # first positive: empty history
            ("u1", "v3", before(3)),  # history v2, v1 but not v4 (same time)
            ("u1", "v4", before(3)),
            ("u1", "v5", before(2)),  # v3, v4 (ties by video_id), v2; cut at 3
            ("u1", "v2", before(1)),  # a repeat example at a time without first positives
            ("u2", "v1", before(1)),
        ],
        "user_id string, video_id string, event_ts timestamp",
    )
    got = example_histories(examples, firsts, length=3)
    expected = spark.createDataFrame(
        [
            ("u1", "v1", before(5), []),
            ("u1", "v3", before(3), [2, 1]),
            ("u1", "v4", before(3), [2, 1]),
            ("u1", "v5", before(2), [3, 4, 2]),
            ("u1", "v2", before(1), [5, 3, 4]),
            ("u2", "v1", before(1), []),
        ],
        "user_id string, video_id string, event_ts timestamp, history_video_idx array<long>",
    )
    assertDataFrameEqual(got.select(*expected.columns), expected)


def test_example_histories_ignore_future_positive(spark):
    firsts = spark.createDataFrame(
        [("u1", "v1", 1, before(5)), ("u1", "v2", 2, before(4))], FIRSTS_SCHEMA
    )
    examples = firsts.select(C.USER_ID, C.VIDEO_ID, C.EVENT_TS)
    baseline = example_histories(examples, firsts, length=4)
    planted = spark.createDataFrame(
        [("u1", "v9", 9, before(4)), ("u1", "v8", 8, before(1))], FIRSTS_SCHEMA
    )
    got = example_histories(examples, firsts.unionByName(planted), length=4)
    # v9 shares v2's timestamp and v8 is later: neither may reach the two examples.
    assertDataFrameEqual(got, baseline)


def test_history_agrees_between_snapshot_and_example(spark):
    firsts = spark.createDataFrame(
        [
            ("u1", "v1", 1, before(5)),
            ("u1", "v3", 3, before(4)),
            ("u1", "v2", 2, before(4)),
            ("u1", "v4", 4, before(2)),
            ("u1", "v5", 5, AS_OF),
        ],
        FIRSTS_SCHEMA,
    )
    example = spark.createDataFrame(
        [("u1", "v5", AS_OF)], "user_id string, video_id string, event_ts timestamp"
    )
    per_example = example_histories(example, firsts, length=3).first()[C.HISTORY_VIDEO_IDX]
    snapshot = snapshot_history(firsts, AS_OF, length=3).first()[C.HISTORY_VIDEO_IDX]
    assert per_example == snapshot == [4, 2, 3]


# --- non-finite values ----------------------------------------------------------------


def test_non_finite_values_counted_and_replaced(spark):
    df = spark.createDataFrame(
        [(1.0, float("nan")), (float("inf"), 2.0), (float("-inf"), None)], "a double, b double"
    )
    assert non_finite_counts(df, ["a", "b"]) == {"a": 2, "b": 1}
    cleaned = replace_non_finite(df, ["a", "b"], 0.0)
    assert [tuple(row) for row in cleaned.collect()] == [(1.0, 0.0), (0.0, 2.0), (0.0, None)]
    assert non_finite_counts(cleaned, ["a", "b"]) == {"a": 0, "b": 0}


def test_non_finite_inputs_give_finite_features(spark):
    videos = video_rows(
        spark,
        [
            ("v1", "a", [], "x", float("nan"), before(5)),
            ("v2", "b", [], "x", float("inf"), before(5)),
            ("v3", "c", [], "x", 100.0, before(5)),
        ],
    )
    rows = [
        ("u1", "v1", before(1), "watch", 50.0, None),
        ("u1", "v2", before(1), "watch", 50.0, None),
        ("u1", "v3", before(1), "watch", float("inf"), None),
        ("u1", "v3", before(1), "rating", None, float("nan")),
    ]
    events = labeled(spark, rows, videos)
    # Non-finite durations and watch times become unknown: no watch fraction, no positive.
    assert events.filter("is_positive").count() == 0
    assert events.filter(F.col("watch_fraction").isNotNull()).count() == 0
    catalog = video_catalog(
        clean_videos(videos), id_map(spark, ["v1", "v2", "v3"], "video_id", "video_idx"), EDGES
    )
    got = video_features(catalog, events, AS_OF, rate_prior_views=2.0)
    doubles = [f.name for f in got.schema.fields if isinstance(f.dataType, T.DoubleType)]
    assert non_finite_counts(got, doubles) == {name: 0 for name in doubles}
    assert [row[C.DURATION_BUCKET] for row in got.orderBy(C.VIDEO_IDX).collect()] == [
        "unknown",
        "unknown",
        "60-300s",
    ]


# --- vocabularies ---------------------------------------------------------------------


def test_vocabulary_order_min_count_and_invalid_values(spark):
    values = spark.createDataFrame(
        [(v,) for v in ["b", "a", "c", "a", "b", "d", "d", "", None, "x\ny", "x\ny", "e"]],
        "value string",
    )
    # Counts: a 2, b 2, d 2, c 1, e 1; "", null and the value with a line break are invalid.
    assert vocab.collect_vocabulary(vocab.count_values(values, 1)) == ["a", "b", "d", "c", "e"]
    assert vocab.collect_vocabulary(vocab.count_values(values, 2)) == ["a", "b", "d"]
    assert vocab.vocabulary_text(["a", "b"]) == "a\nb\n"
    assert vocab.vocabulary_text([]) == ""


def test_vocabulary_values_count_each_row_once(spark):
    videos = video_rows(
        spark,
        [
            ("v1", "Cat cat", ["pets", "pets", "cute"], "pets", 30.0, None),
            ("v2", "Dog", ["pets"], "pets", 400.0, None),
        ],
    )
    catalog = video_catalog(videos, id_map(spark, ["v1", "v2"], "video_id", "video_idx"), EDGES)
    users = spark.createDataFrame([("u1", None, "EU", "fr", "18-24", None, {})], C.USERS_SCHEMA)
    entries = vocab.collect_vocabularies(vocab.vocabulary_values(catalog, users), min_count=1)
    assert set(entries) == set(vocab.VOCABULARIES)
    assert entries["tag"] == ["pets", "cute"]
    assert entries["title_token"] == ["cat", "dog"]
    assert entries["language"] == ["en", "fr"]
    assert entries["gender"] == []
    assert entries["duration_bucket"] == ["0-60s", "300-1200s"]
    assert entries["category"] == ["pets"]


def test_vocabulary_file_matches_string_lookup(tmp_path):
    from recsys_spark.tf_env import tf

    path = tmp_path / "category.txt"
    path.write_text(vocab.vocabulary_text(["music", "news"]))
    lookup = tf.keras.layers.StringLookup(vocabulary=str(path), num_oov_indices=1)
    # Line i has index i + 1; unknown values and the "" written for missing ones get 0.
    assert lookup(tf.constant(["music", "news", "sports", ""])).numpy().tolist() == [1, 2, 0, 0]
