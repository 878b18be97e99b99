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
