"""The synthetic generator: determinism, schemas, and the structure later stages rely on."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from recsys_spark import columns as C
from recsys_spark.config import ConfigError, load_config
from recsys_spark.synthetic import SyntheticSpec, generate, ground_truth
from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.catalog import GroupedSampler

# Small blocks split the tiny tier (200 users, 150 videos) into 4 user blocks and 3 video
# blocks, so the partitioning tests move blocks between tasks.
TINY = ("data.size=tiny", "synthetic.block_size=64")
END = pd.Timestamp("2026-06-30T00:00:00")
DAYS = 120


def make_tiny_config(root, *overrides):
    return load_config(
        overrides=[
            f"lake.root={root}",
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            *TINY,
            *overrides,
        ]
    )


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    return make_tiny_config(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def tiny_tables(spark, tiny_config):
    """The tiny tier with seed 42, as the lazy DataFrames that generate returns."""
    return generate(spark, tiny_config)


@pytest.fixture(scope="module")
def tiny_rows(tiny_tables):
    """The collected rows of every tiny table: the reference of the determinism tests."""
    return {name: df.collect() for name, df in tiny_tables.items()}


@pytest.fixture(scope="module")
def tiny(spark, tiny_config, tiny_tables):
    """The tiny tables and their ground truth (``truth_<name>``) as pandas frames."""
    frames = {name: df.toPandas() for name, df in tiny_tables.items()}
    truth = ground_truth(spark, tiny_config)
    frames.update({f"truth_{name}": df.toPandas() for name, df in truth.items()})
    return frames


def watches(tiny) -> pd.DataFrame:
    events = tiny[C.INTERACTIONS]
    return events[events[C.EVENT_TYPE] == "watch"]


# Determinism


def test_generate_schemas_equal_canonical(tiny_tables):
    assert sorted(tiny_tables) == sorted(C.TABLES)
    for name, df in tiny_tables.items():
        assert df.schema == C.SCHEMAS[name], name


def test_same_seed_gives_identical_tables(spark, tmp_path, tiny_rows):
    again = generate(spark, make_tiny_config(tmp_path))
    for name in C.TABLES:
        assertDataFrameEqual(again[name], tiny_rows[name])


def test_recomputation_gives_identical_rows(tiny_tables, tiny_rows):
    # Every action recomputes every partition of the lazy DataFrame.
    for name in C.TABLES:
        assertDataFrameEqual(tiny_tables[name], tiny_rows[name])


@pytest.mark.parametrize("partitions", [1, 3])
def test_partition_count_changes_nothing(spark, tmp_path, tiny_rows, partitions):
    tables = generate(spark, make_tiny_config(tmp_path, f"synthetic.partitions={partitions}"))
    assert tables[C.INTERACTIONS].rdd.getNumPartitions() == partitions
    for name in C.TABLES:
        assertDataFrameEqual(tables[name], tiny_rows[name])


def test_different_seed_gives_different_tables(spark, tmp_path, tiny_rows):
    other = generate(spark, make_tiny_config(tmp_path, "seed=43"))
    for name in C.TABLES:
        other_rows = Counter(map(str, other[name].collect()))
        assert other_rows != Counter(map(str, tiny_rows[name])), name


# Sizes and ids


def test_tiny_tier_sizes(tiny):
    assert len(tiny[C.USERS]) == 200
    assert len(tiny[C.VIDEOS]) == 150
    # About 5,000 events: the budget is met in expectation, not exactly.
    assert 3_500 <= len(tiny[C.INTERACTIONS]) <= 6_500


def test_ids_unique_and_referenced(tiny):
    users, videos, events = tiny[C.USERS], tiny[C.VIDEOS], tiny[C.INTERACTIONS]
    assert users[C.USER_ID].is_unique
    assert videos[C.VIDEO_ID].is_unique
    assert users[C.USER_ID].str.fullmatch(r"u\d{5}").all()
    assert videos[C.VIDEO_ID].str.fullmatch(r"v\d{5}").all()
    assert videos[C.CREATOR_ID].str.fullmatch(r"c\d{5}").all()
    assert events[C.USER_ID].isin(users[C.USER_ID]).all()
    assert events[C.VIDEO_ID].isin(videos[C.VIDEO_ID]).all()


# Events


def test_event_types_and_values(tiny):
    events = tiny[C.INTERACTIONS]
    counts = events[C.EVENT_TYPE].value_counts()
    assert set(counts.index) == {"impression", "watch", "like", "dislike", "share"}
    assert counts["impression"] > counts["watch"] > counts["like"] > counts["share"]
    assert events[C.RATING].isna().all()
    is_watch = events[C.EVENT_TYPE] == "watch"
    assert events.loc[is_watch, C.WATCH_S].notna().all()
    assert (events.loc[is_watch, C.WATCH_S] > 0).all()
    assert events.loc[~is_watch, C.WATCH_S].isna().all()


def test_unwatched_impressions_present(tiny):
    events = tiny[C.INTERACTIONS]
    pairs = events[[C.USER_ID, C.VIDEO_ID]]
    impressed = set(map(tuple, pairs[events[C.EVENT_TYPE] == "impression"].values))
    watched = set(map(tuple, pairs[events[C.EVENT_TYPE] == "watch"].values))
    assert len(impressed - watched) > 0.2 * len(impressed)
    # Every watch follows an impression of the same video to the same user.
    assert watched <= impressed


def test_watch_time_mostly_within_duration(tiny):
    watched = watches(tiny).merge(tiny[C.VIDEOS][[C.VIDEO_ID, C.DURATION_S]])
    within = (watched[C.WATCH_S] <= watched[C.DURATION_S]).mean()
    assert within > 0.9
    assert within < 1.0


def test_events_within_period(tiny):
    events = tiny[C.INTERACTIONS]
    assert events[C.EVENT_TS].min() >= END - pd.Timedelta(days=DAYS)
    assert events[C.EVENT_TS].max() < END


def test_no_event_before_upload_or_signup(tiny):
    events = (
        tiny[C.INTERACTIONS]
        .merge(tiny[C.USERS][[C.USER_ID, C.SIGNUP_TS]])
        .merge(tiny[C.VIDEOS][[C.VIDEO_ID, C.UPLOAD_TS]])
    )
    assert (events[C.EVENT_TS] > events[C.UPLOAD_TS]).all()
    assert (events[C.EVENT_TS] > events[C.SIGNUP_TS]).all()
    # Some users sign up and some videos are uploaded during the period, so the checks
    # above constrain the draws.
    assert (tiny[C.USERS][C.SIGNUP_TS] > END - pd.Timedelta(days=DAYS)).any()
    assert (tiny[C.VIDEOS][C.UPLOAD_TS] > END - pd.Timedelta(days=DAYS)).any()


# Regions, flags and re-uploads


def test_blocked_videos_never_reach_blocked_region(tiny):
    videos = tiny[C.VIDEOS]
    blocked = videos[videos[C.BLOCKED_REGIONS].map(len) > 0]
    assert len(blocked) > 0
    events = tiny[C.INTERACTIONS].merge(tiny[C.USERS][[C.USER_ID, C.REGION]])
    events = events.merge(blocked[[C.VIDEO_ID, C.BLOCKED_REGIONS]])
    # Blocked videos are still shown elsewhere, so the check below has rows to test.
    assert len(events) > 0
    violations = [
        region in list(regions)
        for region, regions in zip(events[C.REGION], events[C.BLOCKED_REGIONS], strict=True)
    ]
    assert not any(violations)


def test_misinformation_flags(tiny):
    flags = tiny[C.VIDEOS][C.MISINFORMATION]
    flagged = flags.eq(True).sum()
    reviewed_clean = flags.eq(False).sum()
    unreviewed = flags.isna().sum()
    assert flagged > 0
    assert unreviewed > 0
    assert reviewed_clean > flagged + unreviewed


def test_near_duplicates_are_later_reuploads(tiny):
    pairs = tiny["truth_near_duplicates"]
    assert len(pairs) > 0
    videos = tiny[C.VIDEOS]
    merged = pairs.merge(videos, on=C.VIDEO_ID).merge(
        videos, left_on="original_video_id", right_on=C.VIDEO_ID, suffixes=("", "_original")
    )
    assert len(merged) == len(pairs)
    for row in merged.itertuples():
        assert row.category == row.category_original
        assert row.language == row.language_original
        assert row.creator_id != row.creator_id_original
        assert row.upload_ts > row.upload_ts_original
        tokens = set(re.findall(r"\w+", row.title.lower()))
        original_tokens = set(re.findall(r"\w+", row.title_original.lower()))
        assert len(tokens & original_tokens) / len(tokens | original_tokens) >= 0.5
        assert len(set(row.tags) & set(row.tags_original)) >= 3


def test_titles_contain_topic_words(tiny):
    words = {
        topic: set(topic_words)
        for topics in vocab.CATEGORY_TOPICS.values()
        for topic, topic_words in topics.items()
    }
    merged = tiny[C.VIDEOS].merge(tiny["truth_videos"][[C.VIDEO_ID, "topic"]])
    for title, topic in zip(merged[C.TITLE], merged["topic"], strict=True):
        assert set(re.findall(r"\w+", title.lower())) & words[topic], title


# Learnable structure


def test_popularity_heavy_tailed(tiny):
    counts = watches(tiny)[C.VIDEO_ID].value_counts()
    top_tenth = counts.iloc[: len(tiny[C.VIDEOS]) // 10].sum()
    assert top_tenth / counts.sum() > 0.4


def test_user_activity_skewed(tiny):
    counts = tiny[C.INTERACTIONS][C.USER_ID].value_counts()
    assert counts.iloc[: len(tiny[C.USERS]) // 10].sum() / counts.sum() > 0.25


def test_watches_follow_latent_tastes(tiny):
    tastes = tiny["truth_user_tastes"]
    favorites = set(zip(tastes[C.USER_ID], tastes["topic"], strict=True))
    watched = watches(tiny).merge(tiny["truth_videos"][[C.VIDEO_ID, "topic"]])
    users, topics = watched[C.USER_ID].to_numpy(), watched["topic"].to_numpy()
    matched = np.mean([pair in favorites for pair in zip(users, topics, strict=True)])
    shuffled_topics = np.random.default_rng(0).permutation(topics)
    shuffled = np.mean([pair in favorites for pair in zip(users, shuffled_topics, strict=True)])
    assert matched > 2 * shuffled


def test_watches_prefer_own_language(tiny):
    watched = watches(tiny).merge(tiny[C.USERS][[C.USER_ID, C.LANGUAGE]])
    watched = watched.merge(
        tiny[C.VIDEOS][[C.VIDEO_ID, C.LANGUAGE]], on=C.VIDEO_ID, suffixes=("", "_video")
    )
    same = watched[C.LANGUAGE] == watched["language_video"]
    shuffled = watched[C.LANGUAGE].to_numpy() == np.random.default_rng(0).permutation(
        watched["language_video"].to_numpy()
    )
    assert same.mean() > 0.5
    assert same.mean() > shuffled.mean() + 0.2


def test_watches_favor_fresh_videos(tiny):
    watched = watches(tiny).merge(tiny[C.VIDEOS][[C.VIDEO_ID, C.UPLOAD_TS]])
    age = watched[C.EVENT_TS] - watched[C.UPLOAD_TS]
    fresh = (age < pd.Timedelta(days=7)).mean()
    # Baseline: the same watch times paired with random videos already uploaded by then.
    shuffled_upload = np.random.default_rng(0).permutation(watched[C.UPLOAD_TS].to_numpy())
    shuffled_age = watched[C.EVENT_TS].to_numpy() - shuffled_upload
    shuffled_age = shuffled_age[shuffled_age > np.timedelta64(0)]
    shuffled_fresh = (shuffled_age < np.timedelta64(7, "D")).mean()
    assert fresh > 1.5 * shuffled_fresh


def test_ground_truth_tastes_consistent(tiny):
    tastes = tiny["truth_user_tastes"]
    per_user = tastes.groupby(C.USER_ID)
    assert set(tastes[C.USER_ID]) == set(tiny[C.USERS][C.USER_ID])
    assert per_user.size().between(1, 4).all()
    assert (per_user["weight"].sum() <= 1.0 + 1e-9).all()
    top = tastes[tastes["rank"] == 1].set_index(C.USER_ID)["weight"]
    assert (top >= per_user["weight"].max().loc[top.index]).all()
    truth = tiny["truth_videos"].merge(tiny[C.VIDEOS][[C.VIDEO_ID, C.CATEGORY]])
    topic_category = {
        topic: category for category, topics in vocab.CATEGORY_TOPICS.items() for topic in topics
    }
    assert (truth["topic"].map(topic_category) == truth[C.CATEGORY]).all()


# The sampler and the settings


def test_sampler_draws_uploaded_before_by_weight():
    # Group 0: videos 0, 1, 2 uploaded at t = 10, 20, 30 with weights 1, 2, 3.
    # Group 1: video 3 uploaded at t = 5 with weight 1.
    sampler = GroupedSampler.build(
        group=np.array([0, 0, 0, 1]),
        num_groups=2,
        upload_s=np.array([10, 20, 30, 5]),
        weight=np.array([1.0, 2.0, 3.0, 1.0]),
        origin_s=0,
    )

    def draw(group, time_s, uniform):
        return sampler.draw(np.array([group]), np.array([time_s]), np.array([uniform]))[0]

    # Before t = 25 group 0 offers videos 0 and 1 with masses [0, 1) and [1, 3).
    assert draw(0, 25, 0.0) == 0
    assert draw(0, 25, 0.30) == 0
    assert draw(0, 25, 0.34) == 1
    assert draw(0, 25, 0.99) == 1
    # Strictly before: at t = 10 video 0 is not uploaded yet.
    assert draw(0, 10, 0.5) == -1
    assert draw(0, 31, 0.99) == 2
    assert draw(1, 6, 0.5) == 3
    assert draw(1, 5, 0.5) == -1


def test_sampler_frequencies_follow_weights():
    sampler = GroupedSampler.build(
        group=np.zeros(3, dtype=np.int64),
        num_groups=1,
        upload_s=np.array([1, 2, 3]),
        weight=np.array([1.0, 2.0, 7.0]),
        origin_s=0,
    )
    count = 20_000
    uniform = np.random.default_rng(0).random(count)
    drawn = sampler.draw(np.zeros(count, dtype=np.int64), np.full(count, 10), uniform)
    shares = np.bincount(drawn, minlength=3) / count
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.7], atol=0.01)


def test_spec_resolves_tier_and_overrides(tmp_path):
    spec = SyntheticSpec.from_config(make_tiny_config(tmp_path, "synthetic.users=50"))
    assert (spec.users, spec.videos, spec.events, spec.topics) == (50, 150, 5_000, 12)
    # 2026-06-30T00:00:00Z is 1_782_777_600 s after the epoch; 120 days are 10_368_000 s.
    assert spec.end_s == 1_782_777_600
    assert spec.start_s == 1_782_777_600 - 10_368_000
    assert spec.user_blocks == 1
    assert spec.video_blocks == 3
    assert spec.folder_name() == "tiny-seed42"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("synthetic.topics=65", "at most 64"),
        ("seed=-1", "non-negative"),
        ("synthetic.end_ts=yesterday", "ISO 8601"),
    ],
)
def test_spec_rejects_invalid_settings(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        SyntheticSpec.from_config(make_tiny_config(tmp_path, override))


@pytest.mark.parametrize(
    "override",
    ["synthetic.duplicate_share=1.5", "synthetic.block_size=0", "synthetic.users=-3"],
)
def test_config_rejects_invalid_synthetic_values(tmp_path, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        make_tiny_config(tmp_path, override)


# The job


@pytest.mark.integration
def test_generate_job_writes_tables(spark, tmp_path):
    from jobs import generate as generate_job

    lake = tmp_path / "lake"
    overrides = [
        f"lake.root={lake}",
        "spark.master=local[2]",
        "spark.shuffle_partitions=2",
        *TINY,
    ]
    argv = [part for override in overrides for part in ("--set", override)]
    assert generate_job.main(argv) == 0

    folder = lake / "synthetic" / "tiny-seed42"
    for name in C.TABLES:
        written = spark.read.parquet(str(folder / name))
        assert [field.name for field in written.schema] == C.SCHEMAS[name].fieldNames()
    (summary_file,) = (lake / "runs").glob("*/summary.json")
    rows = json.loads(summary_file.read_text())["stages"]["generate"]["rows"]
    assert rows[C.USERS] == 200
    assert rows[C.VIDEOS] == 150
    assert rows["ground_truth.videos"] == 150
    assert rows["ground_truth.near_duplicates"] > 0
    assert rows[C.INTERACTIONS] == spark.read.parquet(str(folder / C.INTERACTIONS)).count()
