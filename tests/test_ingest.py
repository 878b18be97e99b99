"""Ingest: every quarantine reason, id maps, the Parquet source and whole-job runs."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from py4j.protocol import Py4JJavaError
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from jobs import ingest
from recsys_spark import columns as C
from recsys_spark import io, validation
from recsys_spark.config import ConfigError
from recsys_spark.id_maps import build_id_map
from recsys_spark.runs import Run
from recsys_spark.settings import IngestConfig
from recsys_spark.sources import parquet, read_source

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 1, tzinfo=UTC)
# Events from 2000-01-01 to NOW + 1 h are in range; watch time may reach 2x the duration.
BOUNDS = validation.Bounds.from_config(
    IngestConfig(min_event_ts="2000-01-01T00:00:00", max_future_skew_s=3600, max_watch_ratio=2.0),
    now=NOW,
)


def at(day, second=0):
    return dt.datetime(2025, 1, day, 0, 0, second)


def nullable(schema, *extra):
    """The canonical schema with every column nullable, plus string ``extra`` columns."""
    fields = [T.StructField(f.name, f.dataType, True) for f in schema.fields]
    return T.StructType(fields + [T.StructField(name, T.StringType(), True) for name in extra])


def reasons_by_label(classified):
    return {row.label: row.reason for row in classified.select("label", C.REASON).collect()}


USERS_SOURCE = nullable(C.USERS_SCHEMA, "_raw_signup_ts", "_raw_age_bucket", "_raw", "label")
VIDEOS_SOURCE = nullable(C.VIDEOS_SCHEMA, "_raw_upload_ts", "_raw", "label")
INTERACTIONS_SOURCE = nullable(C.INTERACTIONS_SCHEMA, "_raw_rating", "_raw", "label")


def user(label, user_id, signup_ts=None, region=None, raw_signup=None, raw_age=None, raw=None):
    return (
        user_id,
        signup_ts,
        region,
        None,
        None,
        None,
        None,
        raw_signup,
        raw_age,
        raw,
        label,
    )


def video(label, video_id, duration_s=None, upload_ts=None, raw_upload=None, raw=None):
    return (
        video_id, "t", [], None, None, duration_s, upload_ts, None, [], None, raw_upload, raw,
        label,
    )  # fmt: skip


@pytest.fixture
def users(spark):
    rows = [
        user("valid", "u1", at(1), "US-1"),
        # Same id, earlier signup: sorts first by column values, so it is the one kept.
        user("duplicate kept", "u2", at(1)),
        user("duplicate dropped", "u2", at(2)),
        user("unicode id", "ユーザー 1, α"),
        user("missing id", None),
        user("blank id", "   "),
        user("control character", "u\t3"),
        user("future signup", "u4", dt.datetime(2026, 1, 1, 2)),
        user("signup within skew", "u5", dt.datetime(2026, 1, 1, 0, 30)),
        user("unparseable signup", "u6", raw_signup="soon"),
        user("unparseable age", "u7", raw_age="x"),
        user("malformed", None, raw="u8|?"),
        # The valid copy wins over an invalid one with the same id.
        user("invalid copy", "u9", dt.datetime(2027, 1, 1)),
        user("valid copy", "u9", at(3)),
    ]
    return validation.classify_users(spark.createDataFrame(rows, USERS_SOURCE), BOUNDS)


@pytest.fixture
def videos(spark):
    rows = [
        video("valid", "v1", duration_s=100.0, upload_ts=at(1)),
        video("unknown duration", "v2"),
        video("zero duration", "v3", duration_s=0.0),
        video("negative duration", "v4", duration_s=-5.0),
        video("nan duration", "v5", duration_s=math.nan),
        video("future upload", "v6", upload_ts=dt.datetime(2026, 2, 1)),
        video("unparseable upload", "v7", raw_upload="next week"),
        video("duplicate", "v1", duration_s=100.0, upload_ts=at(2)),
        video("missing id", ""),
        video("malformed", None, raw="garbage"),
    ]
    return validation.classify_videos(spark.createDataFrame(rows, VIDEOS_SOURCE), BOUNDS)


def test_user_reasons(users):
    assert reasons_by_label(users) == {
        "valid": None,
        "duplicate kept": None,
        "duplicate dropped": "duplicate_user_id",
        "unicode id": None,
        "missing id": "missing_user_id",
        "blank id": "missing_user_id",
        "control character": "invalid_user_id",
        "future signup": "signup_ts_in_future",
        "signup within skew": None,
        "unparseable signup": "unparseable_signup_ts",
        "unparseable age": "unparseable_age_bucket",
        "malformed": "malformed_row",
        "invalid copy": "signup_ts_in_future",
        "valid copy": None,
    }


def test_video_reasons(videos):
    assert reasons_by_label(videos) == {
        "valid": None,
        "unknown duration": None,
        "zero duration": "invalid_duration_s",
        "negative duration": "invalid_duration_s",
        "nan duration": "invalid_duration_s",
        "future upload": "upload_ts_in_future",
        "unparseable upload": "unparseable_upload_ts",
        "duplicate": "duplicate_video_id",
        "missing id": "missing_video_id",
        "malformed": "malformed_row",
    }


def test_duplicate_kept_regardless_of_partitioning(spark, users):
    source = spark.createDataFrame(
        [user(f"copy {i}", "u1", at(1 + i % 3), f"R{i}") for i in range(12)],
        USERS_SOURCE,
    )
    reshuffled = source.orderBy(F.col("label").desc()).repartition(5)
    kept_labels = [
        validation.classify_users(df, BOUNDS).where(F.col(C.REASON).isNull()).select("label")
        for df in (source, reshuffled)
    ]
    # Copies 0, 3, 6, 9 share the earliest signup, and region R0 sorts first among them.
    assertDataFrameEqual(kept_labels[0], spark.createDataFrame([("copy 0",)], "label string"))
    assertDataFrameEqual(kept_labels[1], kept_labels[0])


def test_interaction_reasons(spark, users, videos):
    future = dt.datetime(2026, 1, 1, 2)
    within_skew = dt.datetime(2026, 1, 1, 0, 30)
    nan = math.nan
    rows = [
        # user, video, event_ts, event_type, watch_s, rating, _raw_rating, _raw, label
        ("u1", "v1", at(1), "watch", 50.0, None, None, None, "valid"),
        ("u1", "v1", at(1), "watch", 50.0, None, None, None, "exact duplicate"),
        ("u1", "v1", at(1), "watch", 50.0, None, None, None, "second duplicate"),
        (None, None, None, None, None, None, None, "a|b", "malformed"),
        ("u\x001", "v1", at(2), "watch", 1.0, None, None, None, "invalid user id"),
        ("  ", "v1", at(2), "watch", 1.0, None, None, None, "missing user id"),
        ("u1", "v\n1", at(2), "watch", 1.0, None, None, None, "invalid video id"),
        ("u1", None, at(2), "watch", 1.0, None, None, None, "missing video id"),
        ("u1", "v1", None, "watch", 1.0, None, None, None, "missing event_ts"),
        (
            "u1",
            "v1",
            dt.datetime(1999, 12, 31),
            "watch",
            1.0,
            None,
            None,
            None,
            "too early",
        ),
        ("u1", "v1", future, "watch", 1.0, None, None, None, "future"),
        ("u1", "v1", within_skew, "like", None, None, None, None, "within skew"),
        ("u1", "v1", at(3), "purchase", None, None, None, None, "unknown type"),
        ("u1", "v1", at(3), None, None, None, None, None, "missing type"),
        ("u1", "v1", at(4), "watch", -1.0, None, None, None, "negative watch"),
        ("u1", "v1", at(4), "watch", nan, None, None, None, "nan watch"),
        ("u1", "v1", at(5), "rating", None, None, "five", None, "unparseable rating"),
        ("u1", "v1", at(5), "rating", None, 5.5, None, None, "rating too high"),
        ("u1", "v1", at(5), "rating", None, 0.0, None, None, "rating too low"),
        ("u1", "v1", at(5), "rating", None, nan, None, None, "nan rating"),
        ("u1", "v1", at(5), "rating", None, None, None, None, "missing rating"),
        ("u1", "v1", at(5), "rating", None, 0.5, None, None, "lowest rating"),
        ("u404", "v1", at(6), "watch", 1.0, None, None, None, "unknown user"),
        ("u4", "v1", at(6), "watch", 1.0, None, None, None, "quarantined user"),
        ("u1", "v404", at(6), "watch", 1.0, None, None, None, "unknown video"),
        ("u1", "v3", at(6), "watch", 1.0, None, None, None, "quarantined video"),
        # v1 lasts 100 s and max_watch_ratio is 2, so 200 s is the limit.
        ("u1", "v1", at(7), "watch", 201.0, None, None, None, "watch too long"),
        ("u1", "v1", at(7, 1), "watch", 200.0, None, None, None, "watch at limit"),
        ("u1", "v2", at(7), "watch", 1e9, None, None, None, "duration unknown"),
        # Fails the time range, the type, the watch time, the rating and both references:
        # the time range comes first.
        ("u404", "v404", at(1).replace(year=1980), "x", -1.0, 9.0, None, None, "first"),
    ]
    source = spark.createDataFrame(rows, INTERACTIONS_SOURCE)
    classified = validation.classify_interactions(source, users, videos, BOUNDS)

    reasons = reasons_by_label(classified)
    # Which of three identical copies stays valid is arbitrary; exactly one does.
    copies = [reasons.pop(label) for label in ("valid", "exact duplicate", "second duplicate")]
    assert copies.count(None) == 1
    assert copies.count("duplicate_event") == 2
    assert reasons == {
        "malformed": "malformed_row",
        "invalid user id": "invalid_user_id",
        "missing user id": "missing_user_id",
        "invalid video id": "invalid_video_id",
        "missing video id": "missing_video_id",
        "missing event_ts": "missing_event_ts",
        "too early": "event_ts_out_of_range",
        "future": "event_ts_in_future",
        "within skew": None,
        "unknown type": "unknown_event_type",
        "missing type": "unknown_event_type",
        "negative watch": "invalid_watch_s",
        "nan watch": "invalid_watch_s",
        "unparseable rating": "unparseable_rating",
        "rating too high": "rating_out_of_range",
        "rating too low": "rating_out_of_range",
        "nan rating": "rating_out_of_range",
        "missing rating": "missing_rating",
        "lowest rating": None,
        "unknown user": "unknown_user",
        "quarantined user": "unknown_user",
        "unknown video": "unknown_video",
        "quarantined video": "unknown_video",
        "watch too long": "watch_s_exceeds_duration",
        "watch at limit": None,
        "duration unknown": None,
        "first": "event_ts_out_of_range",
    }


def test_quarantine_keeps_source_text(spark, users, videos):
    rows = [
        ("u1", "v1", at(1), "rating", None, None, "five", None, "unparseable"),
        (None, None, None, None, None, None, None, "1\t2", "malformed"),
        ("u1", "v1", at(1), "rating", None, 4.0, None, None, "valid"),
    ]
    source = spark.createDataFrame(rows, INTERACTIONS_SOURCE).drop("label")
    classified = validation.classify_interactions(source, users, videos, BOUNDS)
    quarantined = validation.quarantined_rows(classified, C.INTERACTIONS_SCHEMA, "run-1")
    # rating has source text, so it becomes a string column with "five" in it.
    expected = spark.createDataFrame(
        [
            (
                "u1",
                "v1",
                at(1),
                "rating",
                None,
                "five",
                None,
                "unparseable_rating",
                "run-1",
            ),
            (None, None, None, None, None, None, "1\t2", "malformed_row", "run-1"),
        ],
        "user_id string, video_id string, event_ts timestamp, event_type string, "
        "watch_s double, rating string, raw_line string, reason string, run_id string",
    )
    assertDataFrameEqual(quarantined, expected)
    valid = validation.valid_rows(classified, C.INTERACTIONS_SCHEMA)
    assert valid.columns == list(C.INTERACTIONS_SCHEMA.fieldNames())
    assert [row.rating for row in valid.collect()] == [4.0]


def test_id_map_dense_in_id_order(spark):
    ids = [
        "b",
        "a",
        "10",
        "9",
        "ユーザー",
        "user, with comma",
        "12345678901234567890",
        "a",
        None,
    ]
    df = spark.createDataFrame([(i,) for i in ids], "user_id string").repartition(3)
    # Spark orders strings by UTF-8 bytes, which is Python's code point order.
    expected = [(user_id, i + 1) for i, user_id in enumerate(sorted(set(ids) - {None}))]
    assert expected[:3] == [("10", 1), ("12345678901234567890", 2), ("9", 3)]
    assertDataFrameEqual(
        build_id_map(df, C.USER_ID, C.USER_IDX),
        spark.createDataFrame(expected, "user_id string, user_idx long"),
    )


def test_invariant_violation_raises(spark):
    source = spark.createDataFrame([("u1",), ("u2",)], "user_id string")

    def lose_a_row(df):
        return df.where(F.col(C.USER_ID) == "u1").withColumn(C.REASON, F.lit(None).cast("string"))

    with pytest.raises(RuntimeError, match="read 2 rows but validation returned 1"):
        ingest.classify_table(C.USERS, source, lose_a_row)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ingest.min_event_ts=yesterday", "is not an ISO timestamp"),
        ("ingest.max_future_skew_s=-1", "max_future_skew_s must be >= 0"),
        ("ingest.min_rating=6", "must not exceed ingest.max_rating"),
        ("ingest.max_watch_ratio=0", "max_watch_ratio must be positive"),
        ("ingest.max_user_tags=-2", "max_user_tags must be >= 0"),
    ],
)
def test_ingest_config_rejects_bad_bounds(make_config, override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(override)


# --- Parquet source -------------------------------------------------------------------


def canonical_frames(spark, user_ids, video_ids, events):
    users = spark.createDataFrame(
        [(u, at(1), "US-1", "en", "25-34", None, {"plan": "free"}) for u in user_ids],
        C.USERS_SCHEMA,
    )
    videos = spark.createDataFrame(
        [(v, "title", ["a"], "cat", "en", 60.0, at(1), "c1", [], False) for v in video_ids],
        C.VIDEOS_SCHEMA,
    )
    interactions = spark.createDataFrame(events, nullable(C.INTERACTIONS_SCHEMA))
    return {C.USERS: users, C.VIDEOS: videos, C.INTERACTIONS: interactions}


def write_source(folder, frames):
    for name, df in frames.items():
        df.write.mode("overwrite").parquet(str(folder / name))


def test_parquet_conform_casts_lossless_types(spark):
    df = spark.createDataFrame(
        [(12345678901, 7, 3, dt.date(2025, 1, 2), "watch", 9.5)],
        "user_id long, video_id int, rating int, event_ts date, event_type string, watch_s float",
    )
    conformed = parquet.conform(df, C.INTERACTIONS_SCHEMA, "t")
    row = conformed.collect()[0]
    assert row.asDict() == {
        "user_id": "12345678901", "video_id": "7", "event_ts": dt.datetime(2025, 1, 2),
        "event_type": "watch", "watch_s": 9.5, "rating": 3.0,
    }  # fmt: skip


def test_parquet_extras_optional(spark):
    users = canonical_frames(spark, ["u1"], [], [])[C.USERS].drop(C.EXTRAS)
    conformed = parquet.conform(users.withColumn("unused", F.lit(1)), C.USERS_SCHEMA, "users")
    assert conformed.columns == C.USERS_SCHEMA.fieldNames()
    assert conformed.first()[C.EXTRAS] is None


def test_parquet_missing_column_named(spark, tmp_path):
    frames = canonical_frames(spark, ["u1"], ["v1"], [("u1", "v1", at(1), "watch", 1.0, None)])
    frames[C.VIDEOS] = frames[C.VIDEOS].drop(C.DURATION_S)
    write_source(tmp_path, frames)
    with pytest.raises(ValueError, match=r"videos: missing column 'duration_s' of type double"):
        parquet.read_parquet_tables(spark, str(tmp_path))


def test_parquet_wrong_type_named(spark, tmp_path):
    frames = canonical_frames(spark, ["u1"], ["v1"], [])
    frames[C.INTERACTIONS] = spark.createDataFrame(
        [("u1", "v1", "2025-01-01", "watch", 1.0, None)],
        "user_id string, video_id string, event_ts string, event_type string, "
        "watch_s double, rating double",
    )
    write_source(tmp_path, frames)
    with pytest.raises(
        ValueError,
        match=r"interactions: column 'event_ts' has type string, expected timestamp",
    ):
        parquet.read_parquet_tables(spark, str(tmp_path))


def test_parquet_missing_table_and_path(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        parquet.read_parquet_tables(spark, str(tmp_path / "nowhere"))
    frames = canonical_frames(spark, ["u1"], ["v1"], [])
    del frames[C.INTERACTIONS]
    write_source(tmp_path, frames)
    with pytest.raises(FileNotFoundError, match=r"interactions not found"):
        parquet.read_parquet_tables(spark, str(tmp_path))


def rewrite_without(table_folder, column):
    """Rewrite the table's one data file with pyarrow, dropping ``column``.

    pyarrow keeps the schema metadata, Spark's row metadata key included, so Spark still
    lists the column. The checksum file Hadoop wrote beside the original is removed,
    because Hadoop's local file system would otherwise reject the rewritten file.
    """
    (data_file,) = Path(table_folder).glob("part-*.parquet")
    rewritten = pq.read_table(data_file).drop_columns([column])
    assert parquet.SPARK_SCHEMA_KEY.encode() in rewritten.schema.metadata
    replace_file(data_file, rewritten)
    return data_file


def replace_file(data_file, table):
    """Overwrite a Parquet file with pyarrow, removing the checksum Hadoop would reject."""
    pq.write_table(table, data_file)
    (data_file.parent / f".{data_file.name}.crc").unlink()


def test_parquet_stale_spark_metadata_named(spark, tmp_path):
    frames = canonical_frames(spark, ["u1"], ["v1"], [("u1", "v1", at(1), "watch", 1.0, None)])
    frames[C.INTERACTIONS] = frames[C.INTERACTIONS].coalesce(1)
    write_source(tmp_path, frames)
    data_file = rewrite_without(tmp_path / C.INTERACTIONS, C.VIDEO_ID)
    # Spark reads its schema from the stale key, so it still lists the dropped column.
    assert C.VIDEO_ID in spark.read.parquet(str(tmp_path / C.INTERACTIONS)).columns

    with pytest.raises(ValueError) as error:
        parquet.read_parquet_tables(spark, str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path / C.INTERACTIONS}: file ")
    assert data_file.name in message
    assert "does not store column 'video_id' (string)" in message
    assert parquet.SPARK_SCHEMA_KEY in message
    assert "Columns stored in the file: event_ts, event_type, rating, user_id, watch_s." in message
    assert message.endswith("Rewrite the file with the video_id column.")


def test_parquet_stale_spark_metadata_changed_type_named(spark, tmp_path):
    frames = canonical_frames(spark, ["u1"], ["v1"], [("u1", "v1", at(1), "watch", 1.0, None)])
    frames[C.INTERACTIONS] = frames[C.INTERACTIONS].coalesce(1)
    write_source(tmp_path, frames)
    (data_file,) = (tmp_path / C.INTERACTIONS).glob("part-*.parquet")
    table = pq.read_table(data_file)
    at_index = table.schema.get_field_index(C.WATCH_S)
    # Another tool rewrote watch_s as text and kept Spark's row metadata (watch_s double).
    table = table.set_column(at_index, C.WATCH_S, table[C.WATCH_S].cast(pa.string()))
    replace_file(data_file, table)
    assert dict(spark.read.parquet(str(tmp_path / C.INTERACTIONS)).dtypes)[C.WATCH_S] == "double"

    with pytest.raises(ValueError) as error:
        parquet.read_parquet_tables(spark, str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path / C.INTERACTIONS}: file ")
    assert data_file.name in message
    assert "stores column 'watch_s' as string" in message
    assert "lists it as double, so Spark would fail to read it" in message
    assert message.endswith(
        "Rewrite the file with watch_s as double, or every file of the table with one type."
    )


def test_parquet_every_local_footer_checked(spark, tmp_path):
    events = [("u1", "v1", at(i), "watch", float(i), None) for i in range(1, 11)]
    frames = canonical_frames(spark, ["u1"], ["v1"], events)
    # Ten files, more than the sample read on a remote file system.
    frames[C.INTERACTIONS] = frames[C.INTERACTIONS].repartition(10)
    write_source(tmp_path, frames)
    files = sorted((tmp_path / C.INTERACTIONS).glob("part-*.parquet"))
    assert len(files) == 10
    last = files[-1]
    replace_file(last, pq.read_table(last).drop_columns([C.WATCH_S]))

    with pytest.raises(ValueError, match=rf"file .*{last.name} does not store column 'watch_s'"):
        parquet.read_parquet_tables(spark, str(tmp_path))


@pytest.mark.parametrize(
    "stored, listed, readable",
    [
        (pa.int32(), T.LongType(), True),
        (pa.int64(), T.IntegerType(), False),
        (pa.float32(), T.DoubleType(), True),
        (pa.float64(), T.FloatType(), False),
        (pa.string(), T.DoubleType(), False),
        (pa.timestamp("ns"), T.TimestampType(), True),
        (pa.list_(pa.string()), T.ArrayType(T.StringType()), True),
        (pa.list_(pa.string()), T.StringType(), False),
        (pa.large_string(), T.StringType(), True),
    ],
)
def test_parquet_readable_as(stored, listed, readable):
    assert parquet._readable_as(stored, listed) is readable


def test_parquet_stored_columns_readers_agree(spark, tmp_path):
    frames = canonical_frames(spark, ["u1"], [], [])
    write_source(tmp_path, {C.USERS: frames[C.USERS].coalesce(1)})
    data_file = rewrite_without(tmp_path / C.USERS, C.REGION)
    uri = spark.read.parquet(str(tmp_path / C.USERS)).inputFiles()[0]
    expected = [name for name in C.USERS_SCHEMA.fieldNames() if name != C.REGION]
    # pyarrow reads local files; the Hadoop reader serves every other file system.
    assert parquet.stored_columns(spark, uri) == expected
    assert parquet._hadoop_stored_columns(spark, uri) == expected
    data_file.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="is not a readable Parquet file"):
        parquet.stored_columns(spark, uri)
    with pytest.raises(ValueError, match="is not a readable Parquet file"):
        parquet._hadoop_stored_columns(spark, uri)


def test_parquet_partition_column_accepted(spark, tmp_path):
    events = [("u1", "v1", at(1), "watch", 1.0, None), ("u1", "v1", at(2), "like", None, None)]
    frames = canonical_frames(spark, ["u1"], ["v1"], events)
    write_source(tmp_path, {C.USERS: frames[C.USERS], C.VIDEOS: frames[C.VIDEOS]})
    # The files under event_type=watch/ and event_type=like/ do not store event_type.
    frames[C.INTERACTIONS].write.partitionBy(C.EVENT_TYPE).parquet(str(tmp_path / C.INTERACTIONS))
    tables = parquet.read_parquet_tables(spark, str(tmp_path))
    assertDataFrameEqual(tables[C.INTERACTIONS], frames[C.INTERACTIONS])


def test_read_source_synthetic_schemas(spark, make_config):
    tables = read_source(spark, make_config("data.source=synthetic"))
    for name in C.TABLES:
        assert tables[name].schema.simpleString() == C.SCHEMAS[name].simpleString(), name


# --- whole job ----------------------------------------------------------------------


def run_ingest(spark, make_config, *overrides):
    run = Run(spark=spark, config=make_config(*overrides))
    return run, ingest.run(run)


def test_ingest_job_keeps_ids_unchanged(spark, make_config, tmp_path):
    user_ids = [
        "ユーザー 1",
        "user, with comma",
        " spaced ",
        "12345678901234567890",
        "4294967296",
    ]
    video_ids = ["vidéo/1", "v 2"]
    events = [(u, video_ids[i % 2], at(1, i), "watch", 10.0, None) for i, u in enumerate(user_ids)]
    events += [("nobody", "v 2", at(2), "like", None, None)]  # unknown_user
    events += [events[0]]  # duplicate_event
    write_source(tmp_path / "source", canonical_frames(spark, user_ids, video_ids, events))

    run, summary = run_ingest(
        spark, make_config, "data.source=parquet", f"data.path={tmp_path / 'source'}"
    )

    assert summary["tables"][C.INTERACTIONS] == {
        "read": 7,
        "loaded": 5,
        "quarantined": 2,
        "reasons": {"duplicate_event": 1, "unknown_user": 1},
    }
    for name in C.TABLES:
        counts = summary["tables"][name]
        assert counts["loaded"] + counts["quarantined"] == counts["read"]
    assert summary["id_maps"] == {C.USERS: 5, C.VIDEOS: 2}

    lake = run.lake
    raw_users = spark.read.parquet(lake.raw(C.USERS))
    assert sorted(row.user_id for row in raw_users.collect()) == sorted(user_ids)
    raw_events = spark.read.parquet(lake.raw(C.INTERACTIONS))
    assert sorted(row.user_id for row in raw_events.collect()) == sorted(user_ids)
    id_map = spark.read.parquet(lake.id_map(C.USERS)).orderBy(C.USER_IDX).collect()
    assert [row.user_idx for row in id_map] == [1, 2, 3, 4, 5]
    assert sorted(row.user_id for row in id_map) == sorted(user_ids)
    quarantine = spark.read.parquet(lake.quarantine(C.INTERACTIONS)).collect()
    assert sorted(row.reason for row in quarantine) == [
        "duplicate_event",
        "unknown_user",
    ]
    assert {row.run_id for row in quarantine} == {run.run_id}


def test_ingest_job_movielens_quirks(spark, make_config, tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    lines = {
        "ratings.dat": [
            "1::10::5::978300760",
            "1::10::5::978300760",
            "1::20::4::978300761",
            "2::10::9::978300762",
            "3::10::4::soon",
            "1::99::3::978300763",
        ],
        "movies.dat": ["10::Heat (1995)::Action", "20::Léon (1994)::Crime|Drama"],
        "users.dat": ["1::F::25::4::10001", "2::M::35::1::T8H1N"],
    }
    for name, content in lines.items():
        (folder / name).write_bytes(("\n".join(content) + "\n").encode("ISO-8859-1"))

    run, summary = run_ingest(spark, make_config, "data.source=movielens", f"data.path={folder}")

    # Line 2 repeats line 1, and rating 9 is above 5. "soon" is no Unix time, a check that
    # runs before the one for user 3, who is not in users.dat. Movie 99 is not in movies.dat.
    assert summary["tables"][C.INTERACTIONS]["reasons"] == {
        "duplicate_event": 1,
        "rating_out_of_range": 1,
        "unknown_video": 1,
        "unparseable_event_ts": 1,
    }
    assert summary["tables"][C.INTERACTIONS]["loaded"] == 2
    quarantine = spark.read.parquet(run.lake.quarantine(C.INTERACTIONS))
    unparseable = quarantine.where(F.col(C.REASON) == "unparseable_event_ts").collect()
    assert [row.event_ts for row in unparseable] == ["soon"]
    videos = spark.read.parquet(run.lake.raw(C.VIDEOS)).orderBy(C.VIDEO_ID).collect()
    assert [row.title for row in videos] == ["Heat (1995)", "Léon (1994)"]


def lake_tables(run):
    return [
        path
        for name in C.TABLES
        for path in (run.lake.raw(name), run.lake.quarantine(name), run.lake.id_map(name))
        if name in (C.USERS, C.VIDEOS) or path != run.lake.id_map(name)
    ]


def leftover_folders(run):
    """Staging and set-aside folders under the ingest outputs, which must not outlive a run."""
    return [
        name
        for folder in ("raw", "quarantine", "id_maps")
        for name in io.list_dir(run.spark, run.lake.path(folder))
        if name.startswith((io.STAGING_PREFIX, io.PREVIOUS_PREFIX))
    ]


def test_failed_ingest_keeps_previous_tables(spark, make_config, tmp_path):
    good = tmp_path / "good"
    events = [("u1", "v1", at(1), "watch", 10.0, None), ("u1", "v2", at(2), "like", None, None)]
    events += [("u404", "v1", at(3), "like", None, None)]  # unknown_user, so quarantine/ has a row
    write_source(good, canonical_frames(spark, ["u1", "u2"], ["v1", "v2"], events))
    run, _ = run_ingest(spark, make_config, "data.source=parquet", f"data.path={good}")
    paths = lake_tables(run)
    assert len(paths) == 8
    before = {path: spark.read.parquet(path).collect() for path in paths}
    assert len(before[run.lake.quarantine(C.INTERACTIONS)]) == 1

    missing_column = canonical_frames(spark, ["u9"], ["v9"], [])
    missing_column[C.INTERACTIONS] = spark.createDataFrame(
        [("u9", at(1), "watch", 1.0, None)],
        "user_id string, event_ts timestamp, event_type string, watch_s double, rating double",
    )
    # Different users and videos, and every event refers to a user that is not in users/.
    all_invalid = canonical_frames(
        spark, ["u9"], ["v9"], [("u404", "v9", at(1), "watch", 1.0, None)] * 2
    )
    stale_metadata = canonical_frames(
        spark, ["u9"], ["v9"], [("u9", "v9", at(1), "watch", 1.0, None)]
    )
    stale_metadata[C.INTERACTIONS] = stale_metadata[C.INTERACTIONS].coalesce(1)
    bad_sources = {
        "missing column": (missing_column, "missing column 'video_id'"),
        "all invalid": (all_invalid, r"No valid interactions .* reasons \{'unknown_user': 2\}"),
        "stale metadata": (stale_metadata, "does not store column 'video_id'"),
    }
    for label, (frames, message) in bad_sources.items():
        source = tmp_path / label.replace(" ", "_")
        write_source(source, frames)
        if label == "stale metadata":
            rewrite_without(source / C.INTERACTIONS, C.VIDEO_ID)
        with pytest.raises(ValueError, match=message):
            run_ingest(spark, make_config, "data.source=parquet", f"data.path={source}")
        for path in paths:
            assertDataFrameEqual(spark.read.parquet(path), before[path])
        assert leftover_folders(run) == [], label


def test_write_tables_failed_check_writes_nothing(spark, tmp_path):
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    old = spark.createDataFrame([(1,)], "x int")
    io.write_tables({first: old, second: old})
    new = spark.createDataFrame([(2,), (3,)], "x int")
    checked = {}

    def reject(staged):
        for path, staging in staged.items():
            checked[path] = spark.read.parquet(staging).count()
        raise RuntimeError("rejected")

    with pytest.raises(RuntimeError, match="rejected"):
        io.write_tables({first: new, second: new}, check=reject)
    # The check saw both new tables in staging, and neither replaced the old one.
    assert checked == {first: 2, second: 2}
    assertDataFrameEqual(spark.read.parquet(first), old)
    assertDataFrameEqual(spark.read.parquet(second), old)
    assert io.list_dir(spark, str(tmp_path)) == ["first", "second"]


def test_commit_directories_undoes_on_failure(spark, tmp_path):
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    old = spark.createDataFrame([(1,)], "x int")
    io.write_tables({first: old, second: old})
    staging = str(tmp_path / "staging-first")
    spark.createDataFrame([(2,)], "x int").write.parquet(staging)
    # The second staging folder does not exist, so its rename fails after the first one
    # has replaced its destination, which then gets its previous version back. Hadoop's
    # local file system raises FileNotFoundException there rather than returning false.
    with pytest.raises(Py4JJavaError, match="absent does not exist"):
        io.commit_directories(spark, {first: staging, second: str(tmp_path / "absent")})
    assertDataFrameEqual(spark.read.parquet(first), old)
    assertDataFrameEqual(spark.read.parquet(second), old)
    assert io.list_dir(spark, str(tmp_path)) == ["first", "second"]


@pytest.mark.integration
def test_ingest_movielens_100k(spark, make_config, movielens_100k):
    run, summary = run_ingest(
        spark, make_config, "data.source=movielens", f"data.path={movielens_100k}"
    )
    expected = {C.USERS: 943, C.VIDEOS: 1682, C.INTERACTIONS: 100000}
    for name, count in expected.items():
        assert summary["tables"][name] == {
            "read": count, "loaded": count, "quarantined": 0, "reasons": {}
        }  # fmt: skip
    assert summary["id_maps"] == {C.USERS: 943, C.VIDEOS: 1682}
    video_map = spark.read.parquet(run.lake.id_map(C.VIDEOS))
    assert video_map.agg(F.max(C.VIDEO_IDX)).first()[0] == 1682
