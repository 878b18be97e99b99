"""MovieLens source: every release layout and its quirks, from small files written here."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from recsys_spark import columns as C
from recsys_spark.sources import movielens, source_columns

LATIN_1 = "ISO-8859-1"
GENRES = movielens.GENRES_100K


def write(folder, name, lines, encoding="utf-8"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(("\n".join(lines) + "\n").encode(encoding))


def read(spark, folder, max_user_tags=None):
    tables = movielens.read_movielens(spark, str(folder), max_user_tags=max_user_tags)
    return {name: source_columns(df, C.SCHEMAS[name]) for name, df in tables.items()}


def by_id(df, id_column):
    return {row[id_column]: row.asDict() for row in df.collect()}


def ts(text):
    return dt.datetime.fromisoformat(text)


def flags(*names):
    return "|".join("1" if genre in names else "0" for genre in GENRES)


@pytest.fixture
def ml_100k(tmp_path):
    folder = tmp_path / "ml-100k"
    write(
        folder,
        "u.data",
        [
            "1\t10\t4\t881250949",
            "2\t40\t5\t0",
            "3\t20\tx\t881250951",
            "1\t20\t3",
            "4294967296123\t10\t2\t881250952",
        ],
        LATIN_1,
    )
    write(
        folder,
        "u.item",
        [
            f"10|Café Society (1995)|01-Jan-1995||http://x|{flags('Comedy', 'Drama')}",
            f"20|Heat (1995)||||{flags('unknown')}",
            f"30|Untitled|31-Feb-1995||http://y|{flags('Action')}",
            f"40|A | B (1990)|||http://z|{flags('Film-Noir')}",
            "50|Short|x",
            f"6x|Bad id (1999)|||http://w|{flags('War')}",
        ],
        LATIN_1,
    )
    write(
        folder,
        "u.user",
        [
            "1|24|M|technician|85711",
            "2|17|F|student|T8H1N",
            "3|56|M|retired|02138-1234",
            "4|abc|F|writer|",
            "4294967296123|30|M|other|99999",
        ],
        LATIN_1,
    )
    return folder


def test_100k_interactions_parse_ratings(spark, ml_100k):
    interactions = read(spark, ml_100k)[C.INTERACTIONS]
    rows = interactions.orderBy(F.col("_raw").asc_nulls_first(), C.USER_ID, C.VIDEO_ID)
    rows = rows.collect()
    # 881250949 s after the epoch is 1997-12-04 15:55:49 UTC.
    assert rows[0].asDict() == {
        "user_id": "1", "video_id": "10", "event_ts": ts("1997-12-04 15:55:49"),
        "event_type": "rating", "watch_s": None, "rating": 4.0, "_raw_user_id": None,
        "_raw_video_id": None, "_raw_event_ts": None, "_raw_rating": None, "_raw": None,
    }  # fmt: skip
    assert rows[1].event_ts == ts("1970-01-01 00:00:00")
    assert rows[2].rating is None
    assert rows[2]._raw_rating == "x"
    # A 43-bit id stays the exact string; it is not cast to a 32-bit integer.
    assert rows[3].user_id == "4294967296123"
    assert rows[4]._raw == "1\t20\t3"


def test_100k_videos_genres_dates_latin1(spark, ml_100k):
    videos = by_id(read(spark, ml_100k)[C.VIDEOS], C.VIDEO_ID)
    cafe = videos["10"]
    assert cafe["title"] == "Café Society (1995)"
    assert cafe["category"] == "Comedy"
    assert cafe["tags"] == ["comedy", "drama"]
    assert cafe["upload_ts"] == ts("1995-01-01")
    assert cafe["blocked_regions"] == []
    assert cafe["misinformation"] is None
    assert cafe["duration_s"] is None
    assert cafe["creator_id"] is None
    # No release date: the year in the title; the "unknown" genre is no genre.
    assert videos["20"]["upload_ts"] == ts("1995-01-01")
    assert videos["20"]["category"] is None
    assert videos["20"]["tags"] == []
    # A malformed date and no year in the title leave upload_ts null.
    assert videos["30"]["upload_ts"] is None
    # A "|" inside a title keeps the title whole.
    assert videos["40"]["title"] == "A | B (1990)"
    assert videos["40"]["tags"] == ["film-noir"]
    assert videos[None]["_raw_video_id"] == "6x"
    malformed = [row for row in videos.values() if row["_raw"] is not None]
    assert [row["_raw"] for row in malformed] == ["50|Short|x"]


def test_100k_users_demographics(spark, ml_100k):
    users = by_id(read(spark, ml_100k)[C.USERS], C.USER_ID)
    assert users["1"]["age_bucket"] == "18-24"
    assert users["1"]["gender"] == "M"
    assert users["1"]["region"] == "US-8"
    assert users["1"]["extras"] == {
        "age": "24",
        "occupation": "technician",
        "zip_code": "85711",
    }
    # A Canadian postal code is not a US zip code.
    assert users["2"]["region"] == "other"
    assert users["2"]["age_bucket"] == "<18"
    assert users["3"]["region"] == "US-0"
    assert users["3"]["age_bucket"] == "56+"
    assert users["4"]["age_bucket"] is None
    assert users["4"]["_raw_age_bucket"] == "abc"
    assert users["4"]["region"] is None
    assert users["4"]["extras"] == {"age": "abc", "occupation": "writer"}
    assert users["4294967296123"]["signup_ts"] is None
    assert users["4294967296123"]["language"] is None


def test_1m_dat_layout(spark, tmp_path):
    folder = tmp_path / "ml-1m"
    write(
        folder,
        "ratings.dat",
        ["1::10::5::978300760", "2::10::3::978300761::9"],
        LATIN_1,
    )
    write(
        folder,
        "movies.dat",
        [
            "10::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi",
            "20::Odd::Title: Part:: (1980)::Drama",
            "30::Amélie (2001)::Comedy|Romance",
            "40 no separators",
        ],
        LATIN_1,
    )
    write(
        folder,
        "users.dat",
        ["1::F::1::10::48067", "2::M::56::25::70072-1234", "3::M::7::0::x"],
    )
    tables = read(spark, folder)

    videos = by_id(tables[C.VIDEOS], C.VIDEO_ID)
    assert videos["10"]["title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert videos["10"]["tags"] == ["action", "sci-fi"]
    assert videos["10"]["upload_ts"] == ts("1977-01-01")
    # "::" inside a title: the id ends at the first separator, genres start at the last.
    assert videos["20"]["title"] == "Odd::Title: Part:: (1980)"
    assert videos["20"]["category"] == "Drama"
    assert videos["30"]["title"] == "Amélie (2001)"
    assert videos[None]["_raw"] == "40 no separators"

    users = by_id(tables[C.USERS], C.USER_ID)
    assert users["1"]["age_bucket"] == "<18"
    assert users["1"]["gender"] == "F"
    assert users["1"]["extras"] == {"occupation": "K-12 student", "zip_code": "48067"}
    assert users["1"]["region"] == "US-4"
    assert users["2"]["age_bucket"] == "56+"
    # Occupation codes run from 0 to 20; another code is kept as its text.
    assert users["2"]["extras"]["occupation"] == "25"
    assert users["2"]["region"] == "US-7"
    # 7 is not one of the 1M age codes, so it is unparseable.
    assert users["3"]["_raw_age_bucket"] == "7"
    assert users["3"]["extras"] == {"occupation": "other", "zip_code": "x"}

    ratings = by_id(tables[C.INTERACTIONS], C.USER_ID)
    assert ratings["1"]["event_ts"] == ts("2000-12-31 22:12:40")
    # A fifth field stays in the timestamp field, which then fails to parse.
    assert ratings["2"]["_raw_event_ts"] == "978300761::9"


def test_10m_dat_without_users_adds_tags(spark, tmp_path):
    folder = tmp_path / "ml-10M100K"
    write(folder, "ratings.dat", ["1::10::4.5::1230000000", "7::20::0.5::1230000001"])
    write(
        folder,
        "movies.dat",
        ["10::Heat (1995)::Action", "20::Misérables (1998)::Drama"],
        LATIN_1,
    )
    write(
        folder,
        "tags.dat",
        [
            "1::10::Pacino::1230000000",
            "7::10::pacino ::1230000002",
            "7::10::heist::1230000003",
            "7::10::a::b::1230000004",
            "7::99::orphan::1230000005",
            "7::10::::1230000006",
            "bad line",
        ],
        LATIN_1,
    )
    tables = read(spark, folder)

    expected_users = [(user_id,) + (None,) * 6 for user_id in ("1", "7")]
    assertDataFrameEqual(tables[C.USERS], spark.createDataFrame(expected_users, C.USERS_SCHEMA))
    videos = by_id(tables[C.VIDEOS], C.VIDEO_ID)
    # Genres first, then user tags by count (pacino 2) and text (a::b, heist). The blank
    # tag and the tag of movie 99, which is not in movies.dat, are skipped.
    assert videos["10"]["tags"] == ["action", "pacino", "a::b", "heist"]
    assert videos["20"]["tags"] == ["drama"]
    assert videos["20"]["title"] == "Misérables (1998)"
    ratings = by_id(tables[C.INTERACTIONS], C.USER_ID)
    assert ratings["1"]["rating"] == 4.5
    assert ratings["7"]["rating"] == 0.5


def test_user_tags_capped_per_movie(spark, tmp_path):
    folder = tmp_path / "ml-10M100K"
    write(folder, "ratings.dat", ["1::10::4::1230000000"])
    write(folder, "movies.dat", ["10::Heat (1995)::Action"])
    write(folder, "tags.dat", ["1::10::b::1", "2::10::b::2", "1::10::c::3", "1::10::a::4"])
    videos = by_id(read(spark, folder, max_user_tags=2)[C.VIDEOS], C.VIDEO_ID)
    # b (2 uses) first, then a before c by text; c falls beyond the cap of 2.
    assert videos["10"]["tags"] == ["action", "b", "a"]


def test_csv_layout_quotes_and_headers(spark, tmp_path):
    folder = tmp_path / "ml-latest-small"
    write(
        folder,
        "ratings.csv",
        [
            "userId,movieId,rating,timestamp",
            "1,1,4.0,964982703",
            "1,2,3.5,964981247",
            "2,3,oops",
        ],
    )
    write(
        folder,
        "movies.csv",
        [
            "movieId,title,genres",
            '1,"American President, The (1995)",Comedy|Drama|Romance',
            '2,"Dr. ""Strangelove"" (1964)",Comedy|War',
            "3,Nothing Known,(no genres listed)",
            "4,Babylon 5 (1993–1998),Sci-Fi",
        ],
    )
    write(folder, "tags.csv", ["userId,movieId,tag,timestamp", '1,1,"politics, US",1'])
    write(folder, "links.csv", ["movieId,imdbId,tmdbId", "1,0112346,9087"])
    tables = read(spark, folder)

    videos = by_id(tables[C.VIDEOS], C.VIDEO_ID)
    assert videos["1"]["title"] == "American President, The (1995)"
    assert videos["1"]["category"] == "Comedy"
    assert videos["1"]["tags"] == ["comedy", "drama", "romance", "politics, us"]
    assert videos["2"]["title"] == 'Dr. "Strangelove" (1964)'
    assert videos["2"]["upload_ts"] == ts("1964-01-01")
    assert videos["3"]["category"] is None
    assert videos["3"]["tags"] == []
    assert videos["3"]["upload_ts"] is None
    # A year range in the title dates the movie at its first year.
    assert videos["4"]["upload_ts"] == ts("1993-01-01")

    ratings = tables[C.INTERACTIONS].orderBy(C.USER_ID, C.VIDEO_ID).collect()
    assert [row.rating for row in ratings] == [4.0, 3.5, None]
    assert ratings[2]._raw == "2,3,oops"
    assert [row.user_id for row in tables[C.USERS].orderBy(C.USER_ID).collect()] == [
        "1",
        "2",
    ]


def test_missing_folder_names_path(spark, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        movielens.read_movielens(spark, str(missing))


def test_unrecognised_folder_lists_files(spark, tmp_path):
    write(tmp_path / "other", "notes.txt", ["hello"])
    with pytest.raises(ValueError, match=r"not a MovieLens release folder.*notes\.txt"):
        movielens.read_movielens(spark, str(tmp_path / "other"))


def test_missing_movies_file_named(spark, tmp_path):
    write(tmp_path / "ml", "ratings.dat", ["1::10::5::978300760"])
    with pytest.raises(FileNotFoundError, match=r"movies\.dat"):
        movielens.read_movielens(spark, str(tmp_path / "ml"))


def test_wrong_field_count_names_file(spark, tmp_path):
    folder = tmp_path / "ml-100k"
    write(folder, "u.data", ["1\t10\t4"])
    write(folder, "u.item", [f"10|Heat (1995)|||url|{flags('Action')}"])
    with pytest.raises(ValueError, match=r"u\.data: the first line has 3 fields"):
        movielens.read_movielens(spark, str(folder))


def test_wrong_csv_header_names_column(spark, tmp_path):
    folder = tmp_path / "ml-25m"
    write(folder, "ratings.csv", ["user,movieId,rating,timestamp", "1,1,4.0,964982703"])
    write(folder, "movies.csv", ["movieId,title,genres", "1,Heat (1995),Action"])
    with pytest.raises(ValueError, match=r"ratings\.csv: missing column\(s\) userId"):
        movielens.read_movielens(spark, str(folder))


def test_year_from_title_cases(spark):
    titles = [
        ("Heat (1995)", ts("1995-01-01")),
        ("Heat (1995) ", ts("1995-01-01")),
        ("Show (2006– )", ts("2006-01-01")),
        ("Brazil (1985) (Director's Cut)", None),
        ("(1995) remake", None),
        ("Year (0000)", None),
        ("", None),
    ]
    df = spark.createDataFrame([(title,) for title, _ in titles], "title string")
    years = df.select(movielens.year_from_title(F.col("title")).alias("year")).collect()
    assert [row.year for row in years] == [expected for _, expected in titles]
