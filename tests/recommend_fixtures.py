"""A tiny lake for the recommend and validate_output tests: raw tables, video features,
test candidates and two-tower embeddings, with every rule's case planted.

Snapshot time ``AS_OF`` = 2026-06-30 00:00 UTC. The catalog (creator, category, blocked
regions, misinformation flag, age in days, all-time views):

  v01 c1 music   []     False   100d 100   "cat piano song"        near-duplicate of v02
  v02 c1 music   []     False   100d  90   "cat piano song live"
  v03 c2 news    [US]   False    50d  80   blocked in US
  v04 c3 news    []     True     30d  70   flagged misinformation
  v05 c4 sports  []     None     20d  60   unreviewed
  v06 c5 sports  []     False    10d  50
  v07 c6 cooking []     False     1d   5   fresh
  v08 c7 travel  [DE]   False   200d  40   blocked in DE
  v09 c8 comedy  []     False   300d  30   no title tokens and no tags
  v10 c9 science []     False     5d   3
  v11 c10 science []    False   400d   2
  v12 c11 music  []     False    40d   1
  v13 c12 music  []     False    0d   0   uploaded after AS_OF (the features list it)

Users: u1 (US), u2 (DE), u3 (no region), u4 (US, no candidates: fallback list),
u5 (US, signed up after AS_OF: not active), u6 (US, every candidate already watched).
"""

from __future__ import annotations

import datetime as dt
import posixpath

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark import io

AS_OF = "2026-06-30T00:00:00"
AS_OF_DATETIME = dt.datetime(2026, 6, 30, tzinfo=dt.UTC)
TWO_TOWER_VERSION = "tt-test"


def at(days_before: float) -> dt.datetime:
    """Return the instant ``days_before`` days before the snapshot time (UTC)."""
    return AS_OF_DATETIME - dt.timedelta(days=days_before)


# video_id, creator, category, blocked, misinformation, age_days, views_all, title, tags
CATALOG = [
    ("v01", "c1", "music", [], False, 100.0, 100, "cat piano song", ["piano"]),
    ("v02", "c1", "music", [], False, 100.0, 90, "cat piano song live", ["piano"]),
    ("v03", "c2", "news", ["US"], False, 50.0, 80, "election night recap", ["politics"]),
    ("v04", "c3", "news", [], True, 30.0, 70, "moon landing hoax", ["space"]),
    ("v05", "c4", "sports", [], None, 20.0, 60, "goal of the season", ["football"]),
    ("v06", "c5", "sports", [], False, 10.0, 50, "tennis final highlights", ["tennis"]),
    ("v07", "c6", "cooking", [], False, 1.0, 5, "pasta recipe", ["food"]),
    ("v08", "c7", "travel", ["DE"], False, 200.0, 40, "alps hiking", ["hiking"]),
    ("v09", "c8", "comedy", [], False, 300.0, 30, "", []),
    ("v10", "c9", "science", [], False, 5.0, 3, "black holes explained", ["space"]),
    ("v11", "c10", "science", [], False, 400.0, 2, "deep sea creatures", ["ocean"]),
    ("v12", "c11", "music", [], False, 40.0, 1, "jazz evening", ["jazz"]),
]
LATE_VIDEO = ("v13", "c12", "music", [], False, "late upload", ["music"])

USERS = [
    ("u1", at(300), "US"),
    ("u2", at(300), "DE"),
    ("u3", at(300), None),
    ("u4", at(300), "US"),
    ("u5", AS_OF_DATETIME + dt.timedelta(days=1), "US"),
    ("u6", at(300), "US"),
]

# user_id, video_id, retrieval_score
CANDIDATES = [
    ("u1", "v01", 0.9),
    ("u1", "v02", 0.85),
    ("u1", "v03", 0.8),
    ("u1", "v04", 0.7),
    ("u1", "v05", 0.6),
    ("u1", "v06", 0.5),
    ("u1", "v12", 0.1),
    ("u1", "v13", 0.05),
    ("u2", "v08", 0.9),
    ("u2", "v01", 0.8),
    ("u2", "v06", 0.7),
    ("u2", "v07", 0.6),
    ("u3", "v03", 0.9),
    ("u3", "v08", 0.8),
    ("u3", "v06", 0.7),
    ("u3", "v07", 0.6),
    ("u3", "v10", 0.5),
    ("u6", "v06", 0.9),
    ("u6", "v10", 0.8),
]

# user_id, video_id, days before AS_OF, event_type
INTERACTIONS = [
    ("u1", "v12", 2.0, "watch"),
    ("u1", "v11", 3.0, "impression"),
    ("u2", "v06", 1.0, "like"),
    ("u6", "v06", 1.0, "watch"),
    ("u6", "v10", 2.0, "rating"),
    # Popularity in the 30 days before AS_OF, for the backfill pool.
    ("u2", "v10", 4.0, "watch"),
    ("u2", "v11", 5.0, "watch"),
    ("u4", "v11", 40.0, "watch"),
    # After AS_OF: not watched as of the snapshot, and not popular.
    ("u1", "v06", -1.0, "watch"),
]

EMBEDDING_SCHEMA = T.StructType(
    [
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.VIDEO_IDX, T.LongType(), False),
        T.StructField("embedding", T.ArrayType(T.FloatType(), False), False),
    ]
)

VIDEO_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.TITLE_TOKENS, T.ArrayType(T.StringType(), False), True),
        T.StructField(C.TAGS, T.ArrayType(T.StringType(), False), True),
        T.StructField(C.AGE_DAYS, T.DoubleType(), True),
        T.StructField(C.VIEWS_ALL, T.LongType(), False),
        T.StructField(C.AS_OF, T.TimestampType(), False),
    ]
)

CANDIDATES_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField(C.VIDEO_ID, T.StringType(), False),
        T.StructField(C.SOURCE, T.StringType(), False),
        T.StructField(C.SOURCES, T.ArrayType(T.StringType(), False), False),
        T.StructField(C.RETRIEVAL_SCORE, T.DoubleType(), False),
        T.StructField(C.RETRIEVAL_RANK, T.IntegerType(), False),
        T.StructField(C.MODEL_VERSION, T.StringType(), False),
        T.StructField(C.RUN_ID, T.StringType(), False),
    ]
)


def embedding_of(video_id: str) -> list[float]:
    """Return a 20-d embedding: a category axis plus a per-video axis (shared by v01, v02).

    Two videos of one category have cosine 1 / 1.25 = 0.8; v01 and v02 have cosine 1.
    """
    categories = ["music", "news", "sports", "cooking", "travel", "comedy", "science"]
    category = next(row[2] for row in CATALOG if row[0] == video_id)
    vector = [0.0] * 20
    vector[categories.index(category)] = 1.0
    own_axis = 1 if video_id == "v02" else int(video_id[1:])
    vector[7 + own_axis] = 0.5
    return vector


def write_tiny_lake(spark: SparkSession, root: str) -> None:
    """Write the tiny lake described in the module docstring under ``root``."""
    lake = io.Lake(root)
    videos = [
        (video, title, tags, category, None, None, at(age), creator, blocked, flag)
        for video, creator, category, blocked, flag, age, _, title, tags in CATALOG
    ]
    late_video, late_creator, late_category, blocked, flag, title, tags = LATE_VIDEO
    videos.append(
        (
            late_video,
            title,
            tags,
            late_category,
            None,
            None,
            AS_OF_DATETIME + dt.timedelta(days=2),
            late_creator,
            blocked,
            flag,
        )
    )
    io.write_table(spark.createDataFrame(videos, C.VIDEOS_SCHEMA), lake.raw(C.VIDEOS))
    users = [(user, signup, region, None, None, None, None) for user, signup, region in USERS]
    io.write_table(spark.createDataFrame(users, C.USERS_SCHEMA), lake.raw(C.USERS))
    events = [
        (user, video, at(days), kind, None, 4.0 if kind == "rating" else None)
        for user, video, days, kind in INTERACTIONS
    ]
    io.write_table(spark.createDataFrame(events, C.INTERACTIONS_SCHEMA), lake.raw(C.INTERACTIONS))

    features = [
        (video, [token for token in title.split() if token], tags, age, views, AS_OF_DATETIME)
        for video, _, _, _, _, age, views, title, tags in CATALOG
    ]
    features.append((late_video, ["late", "upload"], ["music"], 0.0, 0, AS_OF_DATETIME))
    io.write_table(
        spark.createDataFrame(features, VIDEO_FEATURES_SCHEMA), lake.features("videos", "test")
    )

    ranked = {}
    for user, video, score in CANDIDATES:
        ranked.setdefault(user, []).append((video, score))
    candidates = [
        (user, video, "two_tower", ["two_tower"], score, position + 1, TWO_TOWER_VERSION, "r0")
        for user, pairs in ranked.items()
        for position, (video, score) in enumerate(sorted(pairs, key=lambda p: -p[1]))
    ]
    io.write_table(
        spark.createDataFrame(candidates, CANDIDATES_SCHEMA), lake.path("candidates", "test")
    )

    embeddings = [
        (video, index + 1, embedding_of(video)) for index, (video, *_) in enumerate(CATALOG)
    ]
    model = lake.models("two_tower", TWO_TOWER_VERSION)
    io.write_table(
        spark.createDataFrame(embeddings, EMBEDDING_SCHEMA), posixpath.join(model, "embeddings")
    )
    io.write_text(spark, posixpath.join(lake.models("two_tower"), "LATEST"), TWO_TOWER_VERSION)
