"""MovieLens releases as a source: ratings, movies, users and tags in canonical tables.

Any public release unpacked into a local or Hadoop folder works; the layout is recognised
by its files:

- ``u.data``, ``u.item``, ``u.user``: 100K (tab- and ``|``-separated, ISO-8859-1).
- ``ratings.dat``, ``movies.dat``, ``users.dat``: 1M (``::``-separated, ISO-8859-1).
- ``ratings.dat``, ``movies.dat``, ``tags.dat``: 10M, which has no user file.
- ``ratings.csv``, ``movies.csv``, ``tags.csv``, ``links.csv``: 20M, 25M, 32M, latest and
  latest-small (UTF-8 CSV with a header row and quoted titles).

Ratings become ``rating`` interactions. Movies become videos: the category is the first
genre, and the tags are the lower-case genres followed by the most frequent user tags.
Users come from the user file where the release has one, otherwise from the user ids of
the ratings with null demographics. Every file is read with Spark, so the 25M and 32M
releases work like the small ones.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.sources import RAW_LINE
from recsys_spark.sources import text as tx

logger = logging.getLogger(__name__)

LATIN_1 = "ISO-8859-1"
UTF_8 = "UTF-8"

# The 19 genre flags at the end of each u.item line, in the order of the 100K u.genre file.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Genre values that mean "no genre": 100K's first flag and the CSV releases' placeholder.
NO_GENRE = ("unknown", "(no genres listed)")

# users.dat in 1M codes age and occupation as numbers, with these meanings in its README.
AGE_BUCKETS_1M = {
    "1": "<18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55",
    "56": "56+",
}  # fmt: skip
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

# Keys of the users' extras map.
EXTRA_AGE = "age"
EXTRA_OCCUPATION = "occupation"
EXTRA_ZIP_CODE = "zip_code"

# The year at the end of a title: "Heat (1995)", "Babylon 5 (1993-1998)", "Show (2006- )".
_TITLE_YEAR = r"\(((?:18|19|20)[0-9]{2})(?:\s*[-\u2013]\s*(?:[0-9]{4})?\s*)?\)\s*$"
# A movies.dat line: the id up to the first "::", the genres after the last "::", and the
# title between them, which may itself contain "::".
_MOVIE_DAT = r"^(.*?)::(.*)::(.*)$"
# A tags.dat line: user, movie, the tag (which may contain "::") and the timestamp.
_TAG_DAT = r"^(.*?)::(.*?)::(.*)::(.*)$"
_US_ZIP = r"^[0-9]{5}(-[0-9]{4})?$"


@dataclass(frozen=True)
class Layout:
    """The files of one MovieLens release format inside a folder (full paths)."""

    name: str
    ratings: str
    movies: str
    users: str | None
    tags: str | None


def detect_layout(spark: SparkSession, path: str) -> Layout:
    """Recognise the release format of the folder ``path`` by its files.

    Raises:
      FileNotFoundError: ``path`` does not exist, or the ratings file of the recognised
        format is there but its movies file is not.
      ValueError: The folder contains no MovieLens ratings file.
    """
    if not io.exists(spark, path):
        raise FileNotFoundError(
            f"MovieLens folder {path} not found. Set data.path to the folder of an unpacked "
            "release, for example --set data.path=/data/ml-100k."
        )
    names = set(io.list_dir(spark, path))

    def file(name: str) -> str:
        return posixpath.join(path, name)

    def optional(name: str) -> str | None:
        return file(name) if name in names else None

    if "u.data" in names:
        layout = Layout("100k", file("u.data"), file("u.item"), optional("u.user"), None)
    elif "ratings.dat" in names:
        layout = Layout(
            "dat", file("ratings.dat"), file("movies.dat"), optional("users.dat"),
            optional("tags.dat"),
        )  # fmt: skip
    elif "ratings.csv" in names:
        layout = Layout("csv", file("ratings.csv"), file("movies.csv"), None, optional("tags.csv"))
    else:
        found = ", ".join(sorted(names)[:20]) or "nothing"
        raise ValueError(
            f"{path} is not a MovieLens release folder: expected u.data (100K), ratings.dat "
            f"(1M, 10M) or ratings.csv (20M and later), found {found}. Point data.path at the "
            "folder that contains the ratings file."
        )
    if posixpath.basename(layout.movies) not in names:
        raise FileNotFoundError(
            f"{layout.movies} not found: a MovieLens folder with "
            f"{posixpath.basename(layout.ratings)} also needs "
            f"{posixpath.basename(layout.movies)}."
        )
    return layout


def read_movielens(
    spark: SparkSession, path: str, max_user_tags: int | None = None
) -> dict[str, DataFrame]:
    """Read the MovieLens release in the folder ``path`` as canonical source tables.

    Args:
      spark: The session.
      path: Folder of an unpacked release (local path or any Hadoop file system URI).
      max_user_tags: The most frequent user tags kept per movie; None keeps all.

    Returns:
      ``users``, ``videos`` and ``interactions`` in the contract of
      :mod:`recsys_spark.sources`.

    Raises:
      FileNotFoundError: The folder or its movies file is missing.
      ValueError: The folder is not a release, or a file has the wrong columns.
    """
    layout = detect_layout(spark, path)
    logger.info("MovieLens %s layout in %s", layout.name, path)
    if layout.name == "100k":
        ratings = _ratings_100k(spark, layout.ratings)
        movies = _movies_100k(spark, layout.movies)
        users = _users_100k(spark, layout.users) if layout.users else None
        tags = None
    elif layout.name == "dat":
        ratings = _ratings_dat(spark, layout.ratings)
        movies = _movies_dat(spark, layout.movies)
        users = _users_1m(spark, layout.users) if layout.users else None
        tags = _tags_dat(spark, layout.tags) if layout.tags else None
    else:
        ratings = _ratings_csv(spark, layout.ratings)
        movies = _movies_csv(spark, layout.movies)
        users = None
        tags = _tags_csv(spark, layout.tags) if layout.tags else None

    if tags is not None:
        movies = _add_user_tags(movies, _top_user_tags(tags, max_user_tags))
    if users is None:
        users = _users_from_ratings(ratings)
    return {C.USERS: users, C.VIDEOS: movies, C.INTERACTIONS: ratings}


# --- reading files ------------------------------------------------------------------


def _read_delimited(
    spark: SparkSession,
    path: str,
    separator: str,
    names: tuple[str, ...],
    at_least: bool,
) -> DataFrame:
    """Read a headerless file whose lines split on ``separator`` into ``names``' fields.

    The first line is checked, so a file of another format stops here instead of
    quarantining every row. With ``at_least``, lines may have more fields than ``names``.

    Note:
      A damaged first line stops the read as well, although later damaged lines are only
      quarantined.
    """
    lines = tx.read_lines(spark, path, LATIN_1)
    first = lines.head(1)
    if first:
        found = len(first[0][tx.LINE].split(separator))
        if found < len(names) or (found > len(names) and not at_least):
            expected = f"{'at least ' if at_least else ''}{len(names)}"
            raise ValueError(
                f"{path}: the first line has {found} fields separated by {separator!r}, "
                f"expected {expected} ({separator.join(names)}). Check that data.path is an "
                "unmodified MovieLens release."
            )
    return lines


def _read_csv(spark: SparkSession, path: str, expected: tuple[str, ...]) -> DataFrame:
    """Read a CSV file with a header row, every column as a string, plus ``_raw``.

    ``_raw`` contains the whole line where it has the wrong number of fields or an
    unclosed quote. Titles such as ``"Cat, The ""Big"" (2001)"`` follow RFC 4180 quoting.

    Raises:
      ValueError: The header lacks one of ``expected``'s columns.
    """
    header = spark.read.option("header", "true").option("encoding", UTF_8).csv(path).columns
    missing = [name for name in expected if name not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected a header row with "
            f"{','.join(expected)}, found {','.join(header) or 'an empty file'}."
        )
    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in header]
        + [T.StructField(RAW_LINE, T.StringType())]
    )
    return (
        spark.read.schema(schema)
        .option("header", "true")
        .option("encoding", UTF_8)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", RAW_LINE)
        .csv(path)
    )


def _malformed(line: Column, well_formed: Column) -> Column:
    return F.when(~well_formed, line).alias(RAW_LINE)


# --- interactions -----------------------------------------------------------------


def _interactions(user: Column, movie: Column, rating: Column, seconds: Column) -> list[Column]:
    return [
        *tx.integer_id(user, C.USER_ID),
        *tx.integer_id(movie, C.VIDEO_ID),
        *tx.unix_seconds(seconds, C.EVENT_TS),
        F.lit("rating").alias(C.EVENT_TYPE),
        F.lit(None).cast(T.DoubleType()).alias(C.WATCH_S),
        *tx.double(rating, C.RATING),
    ]


def _ratings_100k(spark: SparkSession, path: str) -> DataFrame:
    names = ("user id", "item id", "rating", "timestamp")
    line = F.col(tx.LINE)
    parts = tx.split_exact(line, "\t", len(names))
    return _read_delimited(spark, path, "\t", names, at_least=False).select(
        *_interactions(*(tx.field(parts, i) for i in range(1, 5))),
        _malformed(line, F.size(parts) == len(names)),
    )


def _ratings_dat(spark: SparkSession, path: str) -> DataFrame:
    names = ("UserID", "MovieID", "Rating", "Timestamp")
    line = F.col(tx.LINE)
    parts = tx.split_exact(line, "::", len(names))
    return _read_delimited(spark, path, "::", names, at_least=False).select(
        *_interactions(*(tx.field(parts, i) for i in range(1, 5))),
        _malformed(line, F.size(parts) == len(names)),
    )


def _ratings_csv(spark: SparkSession, path: str) -> DataFrame:
    df = _read_csv(spark, path, ("userId", "movieId", "rating", "timestamp"))
    return df.select(
        *_interactions(F.col("userId"), F.col("movieId"), F.col("rating"), F.col("timestamp")),
        F.col(RAW_LINE),
    )


# --- videos -----------------------------------------------------------------------


def _videos(
    movie: Column, title: Column, genres: Column, upload_ts: Column, malformed: Column
) -> list[Column]:
    """Return the videos columns for a movie whose genres are an array of names.

    The category is the first genre; the tags are every genre in lower case. Both leave
    out the "no genre" markers.
    """
    real_genres = F.filter(genres, lambda genre: ~genre.isin(*NO_GENRE))
    return [
        *tx.integer_id(movie, C.VIDEO_ID),
        tx.nonblank(title).alias(C.TITLE),
        F.transform(real_genres, F.lower).alias(C.TAGS),
        F.try_element_at(real_genres, F.lit(1)).alias(C.CATEGORY),
        F.lit(None).cast(T.StringType()).alias(C.LANGUAGE),
        F.lit(None).cast(T.DoubleType()).alias(C.DURATION_S),
        upload_ts.alias(C.UPLOAD_TS),
        F.lit(None).cast(T.StringType()).alias(C.CREATOR_ID),
        F.array().cast(T.ArrayType(T.StringType())).alias(C.BLOCKED_REGIONS),
        F.lit(None).cast(T.BooleanType()).alias(C.MISINFORMATION),
        malformed,
    ]


def year_from_title(title: Column) -> Column:
    """Return Jan 1 of the year at the end of a title, or null when there is none."""
    year = F.regexp_extract(title, _TITLE_YEAR, 1)
    return F.try_to_timestamp(F.concat(year, F.lit("-01-01")), F.lit("yyyy-MM-dd"))


def _split_genres(genres: Column) -> Column:
    return F.filter(F.split(genres, r"\|"), lambda genre: genre != "")


def _movies_100k(spark: SparkSession, path: str) -> DataFrame:
    """Read u.item: id|title|release date|video release date|IMDb URL|19 genre flags."""
    names = (
        "movie id",
        "movie title",
        "release date",
        "video release date",
        "IMDb URL",
    )
    names += tuple(GENRES_100K)
    line = F.col(tx.LINE)
    parts = F.split(line, r"\|", -1)
    count = F.size(parts)
    # A title containing "|" spreads over extra fields; the other 23 fields are fixed.
    title = F.array_join(F.slice(parts, 2, F.greatest(count - 23, F.lit(1))), "|")
    release = F.when(count >= 24, F.try_element_at(parts, count - 21))
    flags = F.slice(parts, -len(GENRES_100K), len(GENRES_100K))
    genre_names = F.array(*[F.lit(name) for name in GENRES_100K])
    genres = F.filter(
        F.transform(flags, lambda flag, i: F.when(flag == "1", genre_names[i])),
        lambda genre: genre.isNotNull(),
    )
    upload_ts = F.coalesce(F.try_to_timestamp(release, F.lit("d-MMM-yyyy")), year_from_title(title))
    return _read_delimited(spark, path, "|", names, at_least=True).select(
        *_videos(tx.field(parts, 1), title, genres, upload_ts, _malformed(line, count >= 24))
    )


def _movies_dat(spark: SparkSession, path: str) -> DataFrame:
    """Read movies.dat: MovieID::Title::Genres, where the title may contain "::"."""
    names = ("MovieID", "Title", "Genres")
    line = F.col(tx.LINE)
    title = F.regexp_extract(line, _MOVIE_DAT, 2)
    return _read_delimited(spark, path, "::", names, at_least=True).select(
        *_videos(
            F.regexp_extract(line, _MOVIE_DAT, 1),
            title,
            _split_genres(F.regexp_extract(line, _MOVIE_DAT, 3)),
            year_from_title(title),
            _malformed(line, line.rlike(_MOVIE_DAT)),
        )
    )


def _movies_csv(spark: SparkSession, path: str) -> DataFrame:
    df = _read_csv(spark, path, ("movieId", "title", "genres"))
    return df.select(
        *_videos(
            F.col("movieId"),
            F.col("title"),
            _split_genres(F.coalesce(F.col("genres"), F.lit(""))),
            year_from_title(F.col("title")),
            F.col(RAW_LINE),
        )
    )


# --- user tags --------------------------------------------------------------------


def _tags_dat(spark: SparkSession, path: str) -> DataFrame:
    """Read tags.dat (UserID::MovieID::Tag::Timestamp) as ``video_id``, ``tag``."""
    names = ("UserID", "MovieID", "Tag", "Timestamp")
    line = F.col(tx.LINE)
    return _read_delimited(spark, path, "::", names, at_least=True).select(
        F.regexp_extract(line, _TAG_DAT, 2).alias(C.VIDEO_ID),
        F.regexp_extract(line, _TAG_DAT, 3).alias("tag"),
    )


def _tags_csv(spark: SparkSession, path: str) -> DataFrame:
    df = _read_csv(spark, path, ("userId", "movieId", "tag", "timestamp"))
    return df.where(F.col(RAW_LINE).isNull()).select(
        F.col("movieId").alias(C.VIDEO_ID), F.col("tag")
    )


def _top_user_tags(tags: DataFrame, max_user_tags: int | None) -> DataFrame:
    """Return each movie's distinct lower-case user tags, most frequent first.

    Ties are broken by the tag's text. Tag lines without a tag or a numeric movie id are
    skipped: they only ever add tags, so they are not quarantined.

    Returns:
      ``video_id``, ``_user_tags`` (array<string>, at most ``max_user_tags`` long).
    """
    cleaned = tags.select(F.col(C.VIDEO_ID), F.lower(F.trim(F.col("tag"))).alias("tag")).where(
        F.col(C.VIDEO_ID).rlike(r"^[0-9]+$") & (F.col("tag") != "")
    )
    counted = cleaned.groupBy(C.VIDEO_ID, "tag").count()
    # Sorting (-count, tag) structs puts the most frequent first, ties in text order.
    ranked = counted.groupBy(C.VIDEO_ID).agg(
        F.sort_array(F.collect_list(F.struct((-F.col("count")).alias("order"), "tag"))).alias(
            "_ranked"
        )
    )
    user_tags = F.transform(F.col("_ranked"), lambda entry: entry["tag"])
    if max_user_tags is not None:
        user_tags = F.slice(user_tags, 1, max_user_tags)
    return ranked.select(C.VIDEO_ID, user_tags.alias("_user_tags"))


def _add_user_tags(movies: DataFrame, user_tags: DataFrame) -> DataFrame:
    """Append each movie's user tags to its genre tags, without repeating a tag."""
    joined = movies.join(user_tags, on=C.VIDEO_ID, how="left")
    tags = F.array_distinct(
        F.concat(
            F.col(C.TAGS),
            F.coalesce(F.col("_user_tags"), F.array().cast("array<string>")),
        )
    )
    return joined.withColumn(C.TAGS, tags).drop("_user_tags").select(*movies.columns)


# --- users ------------------------------------------------------------------------


def region_from_zip(zip_code: Column) -> Column:
    """Return ``US-<first digit>`` for a US zip code, ``other`` for other text, else null."""
    return (
        F.when(tx.is_blank(zip_code), None)
        .when(zip_code.rlike(_US_ZIP), F.concat(F.lit("US-"), F.substring(zip_code, 1, 1)))
        .otherwise(F.lit("other"))
    )


def age_bucket(age: Column) -> Column:
    """Return the 1M release's age bucket for an age in years (null for null)."""
    return (
        F.when(age < 18, "<18")
        .when(age < 25, "18-24")
        .when(age < 35, "25-34")
        .when(age < 45, "35-44")
        .when(age < 50, "45-49")
        .when(age < 56, "50-55")
        .when(age.isNotNull(), "56+")
    )


def _users(
    user: Column,
    age_bucket_text: Column,
    age_bucket_value: Column,
    gender: Column,
    extras: dict[str, Column],
    malformed: Column,
) -> list[Column]:
    extras_map = F.create_map(
        *[item for key, value in extras.items() for item in (F.lit(key), value)]
    )
    return [
        *tx.integer_id(user, C.USER_ID),
        F.lit(None).cast(T.TimestampType()).alias(C.SIGNUP_TS),
        region_from_zip(extras[EXTRA_ZIP_CODE]).alias(C.REGION),
        F.lit(None).cast(T.StringType()).alias(C.LANGUAGE),
        *tx.with_raw(age_bucket_text, age_bucket_value, C.AGE_BUCKET),
        tx.nonblank(gender).alias(C.GENDER),
        F.map_filter(extras_map, lambda _, value: value.isNotNull()).alias(C.EXTRAS),
        malformed,
    ]


def _users_100k(spark: SparkSession, path: str) -> DataFrame:
    """Read u.user: user id|age|gender|occupation|zip code, with the age in years."""
    names = ("user id", "age", "gender", "occupation", "zip code")
    line = F.col(tx.LINE)
    parts = tx.split_exact(line, "|", len(names))
    age = tx.field(parts, 2)
    years = F.when(age.rlike(r"^[0-9]{1,3}$"), age.cast(T.IntegerType()))
    extras = {
        EXTRA_AGE: tx.nonblank(age),
        EXTRA_OCCUPATION: tx.nonblank(tx.field(parts, 4)),
        EXTRA_ZIP_CODE: tx.nonblank(tx.field(parts, 5)),
    }
    return _read_delimited(spark, path, "|", names, at_least=False).select(
        *_users(
            tx.field(parts, 1),
            age,
            age_bucket(years),
            tx.field(parts, 3),
            extras,
            _malformed(line, F.size(parts) == len(names)),
        )
    )


def _users_1m(spark: SparkSession, path: str) -> DataFrame:
    """Read users.dat: UserID::Gender::Age::Occupation::Zip-code, age and job as codes."""
    names = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
    line = F.col(tx.LINE)
    parts = tx.split_exact(line, "::", len(names))
    age_code = tx.field(parts, 3)
    occupation_code = tx.field(parts, 4)
    buckets = F.create_map(*[F.lit(x) for pair in AGE_BUCKETS_1M.items() for x in pair])
    occupations = F.array(*[F.lit(name) for name in OCCUPATIONS_1M])
    known_code = F.when(
        occupation_code.rlike(r"^[0-9]{1,2}$"),
        F.try_element_at(occupations, occupation_code.cast(T.IntegerType()) + 1),
    )
    # An occupation code outside 0-20 is kept as its text rather than dropped.
    occupation = F.coalesce(known_code, tx.nonblank(occupation_code))
    extras = {
        EXTRA_OCCUPATION: occupation,
        EXTRA_ZIP_CODE: tx.nonblank(tx.field(parts, 5)),
    }
    return _read_delimited(spark, path, "::", names, at_least=False).select(
        *_users(
            tx.field(parts, 1),
            age_code,
            F.try_element_at(buckets, age_code),
            tx.field(parts, 2),
            extras,
            _malformed(line, F.size(parts) == len(names)),
        )
    )


def _users_from_ratings(ratings: DataFrame) -> DataFrame:
    """Return one user per distinct valid user id in the ratings, demographics null."""
    ids = ratings.where(F.col(C.USER_ID).isNotNull()).select(C.USER_ID).distinct()
    return ids.select(
        F.col(C.USER_ID),
        F.lit(None).cast(T.TimestampType()).alias(C.SIGNUP_TS),
        F.lit(None).cast(T.StringType()).alias(C.REGION),
        F.lit(None).cast(T.StringType()).alias(C.LANGUAGE),
        F.lit(None).cast(T.StringType()).alias(C.AGE_BUCKET),
        F.lit(None).cast(T.StringType()).alias(C.GENDER),
        F.lit(None).cast(T.MapType(T.StringType(), T.StringType())).alias(C.EXTRAS),
    )
