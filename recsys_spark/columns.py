"""Canonical column names, table schemas and the default seed.

Every stage reads and writes these names, so a rename happens here and nowhere else.
IDs are strings exactly as the source gives them; dense integer indices (``*_idx``) are
internal to the models and come from the id maps written by ingest.
"""

from pyspark.sql import types as T

DEFAULT_SEED = 42

# Canonical table names, also the folder names under ``<lake.root>/raw``.
USERS = "users"
VIDEOS = "videos"
INTERACTIONS = "interactions"
TABLES = (USERS, VIDEOS, INTERACTIONS)

# users
USER_ID = "user_id"
SIGNUP_TS = "signup_ts"
REGION = "region"
LANGUAGE = "language"
AGE_BUCKET = "age_bucket"
GENDER = "gender"
EXTRAS = "extras"

# videos
VIDEO_ID = "video_id"
TITLE = "title"
TAGS = "tags"
CATEGORY = "category"
DURATION_S = "duration_s"
UPLOAD_TS = "upload_ts"
CREATOR_ID = "creator_id"
BLOCKED_REGIONS = "blocked_regions"
MISINFORMATION = "misinformation"

# interactions
EVENT_TS = "event_ts"
EVENT_TYPE = "event_type"
WATCH_S = "watch_s"
RATING = "rating"

EVENT_TYPES = ("impression", "watch", "like", "dislike", "share", "rating")

# dense indices (id maps); index 0 is reserved for ids the models have not seen
USER_IDX = "user_idx"
VIDEO_IDX = "video_idx"
OOV_INDEX = 0

# quarantine and run bookkeeping
REASON = "reason"
RUN_ID = "run_id"
MODEL_VERSION = "model_version"
RUN_DATE = "run_date"
GENERATED_AT = "generated_at"

# candidates, ranking and recommendations
SCORE = "score"
SOURCE = "source"
RANK = "rank"
LABEL = "label"

# candidates/<snapshot> (generate_candidates)
SOURCES = "sources"
RETRIEVAL_SCORE = "retrieval_score"
RETRIEVAL_RANK = "retrieval_rank"
# Summed co-visitation similarity of a candidate to the user's recent positives.
CO_VISITATION_SCORE = "co_visitation_score"
# Candidate sources, in the priority order that picks a candidate's primary ``source``.
TWO_TOWER = "two_tower"
CO_VISITATION = "co_visitation"
POPULAR_REGION = "popular_region"
FRESH = "fresh"
CANDIDATE_SOURCES = (TWO_TOWER, CO_VISITATION, POPULAR_REGION, FRESH)

# splits and feature snapshots (build_features, build_training_set)
SPLIT = "split"
TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SPLITS = (TRAIN, VALIDATION, TEST)
# Snapshot names under features/{users,videos}/: state as of t1 and as of t2.
SNAPSHOTS = (VALIDATION, TEST)
AS_OF = "as_of"

# user features
EVENTS_1D = "events_1d"
EVENTS_7D = "events_7d"
EVENTS_30D = "events_30d"
EVENTS_ALL = "events_all"
LOG_EVENTS_7D = "log_events_7d"
LOG_EVENTS_30D = "log_events_30d"
AVG_WATCH_FRACTION = "avg_watch_fraction"
CATEGORY_AFFINITY = "category_affinity"
HISTORY_VIDEO_IDS = "history_video_ids"
HISTORY_VIDEO_IDX = "history_video_idx"
DAYS_SINCE_LAST_ACTIVITY = "days_since_last_activity"

# video features
TITLE_TOKENS = "title_tokens"
DURATION_BUCKET = "duration_bucket"
AGE_DAYS = "age_days"
VIEWS_1D = "views_1d"
VIEWS_7D = "views_7d"
VIEWS_30D = "views_30d"
VIEWS_ALL = "views_all"
LOG_VIEWS_7D = "log_views_7d"
LOG_VIEWS_30D = "log_views_30d"
LOG_VIEWS_ALL = "log_views_all"
WATCH_THROUGH_RATE = "watch_through_rate"
LIKE_RATE = "like_rate"

# item frequencies and training rows
COUNT = "count"
PROBABILITY = "probability"
HOUR_OF_DAY = "hour_of_day"
DAY_OF_WEEK = "day_of_week"
SAMPLING_PROBABILITY = "sampling_probability"
NEGATIVE_VIDEO_IDX = "negative_video_idx"
NEGATIVE_TYPES = "negative_types"
NEGATIVE_SOURCES = ("random", "popular", "impression", "mined")

USERS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(SIGNUP_TS, T.TimestampType(), True),
        T.StructField(REGION, T.StringType(), True),
        T.StructField(LANGUAGE, T.StringType(), True),
        T.StructField(AGE_BUCKET, T.StringType(), True),
        T.StructField(GENDER, T.StringType(), True),
        # Source-specific attributes (MovieLens occupation, zip code, ...).
        T.StructField(EXTRAS, T.MapType(T.StringType(), T.StringType()), True),
    ]
)

VIDEOS_SCHEMA = T.StructType(
    [
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(TITLE, T.StringType(), True),
        T.StructField(TAGS, T.ArrayType(T.StringType(), False), True),
        T.StructField(CATEGORY, T.StringType(), True),
        T.StructField(LANGUAGE, T.StringType(), True),
        T.StructField(DURATION_S, T.DoubleType(), True),
        T.StructField(UPLOAD_TS, T.TimestampType(), True),
        T.StructField(CREATOR_ID, T.StringType(), True),
        # Empty array: available everywhere.
        T.StructField(BLOCKED_REGIONS, T.ArrayType(T.StringType(), False), True),
        # Null: not reviewed.
        T.StructField(MISINFORMATION, T.BooleanType(), True),
    ]
)

INTERACTIONS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(EVENT_TS, T.TimestampType(), False),
        T.StructField(EVENT_TYPE, T.StringType(), False),
        T.StructField(WATCH_S, T.DoubleType(), True),
        T.StructField(RATING, T.DoubleType(), True),
    ]
)

SCHEMAS = {
    USERS: USERS_SCHEMA,
    VIDEOS: VIDEOS_SCHEMA,
    INTERACTIONS: INTERACTIONS_SCHEMA,
}

# Output of the generate_candidates job, one table per snapshot.
CANDIDATES_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(SOURCE, T.StringType(), False),
        T.StructField(SOURCES, T.ArrayType(T.StringType(), False), False),
        # Dot product of the user's query embedding and the video's embedding.
        T.StructField(RETRIEVAL_SCORE, T.DoubleType(), False),
        # 1-based within the user, by retrieval_score (ties by video_id).
        T.StructField(RETRIEVAL_RANK, T.IntegerType(), False),
        # Summed co-visitation similarity to the user's recent positives, 0 when none.
        T.StructField(CO_VISITATION_SCORE, T.DoubleType(), False),
        T.StructField(MODEL_VERSION, T.StringType(), False),
        T.StructField(RUN_ID, T.StringType(), False),
    ]
)

# Output of the recommend job, partitioned by run_date.
RECOMMENDATIONS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(RANK, T.IntegerType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(SCORE, T.DoubleType(), False),
        T.StructField(SOURCE, T.StringType(), False),
        T.StructField(RUN_ID, T.StringType(), False),
        T.StructField(MODEL_VERSION, T.StringType(), False),
        T.StructField(GENERATED_AT, T.TimestampType(), False),
    ]
)
