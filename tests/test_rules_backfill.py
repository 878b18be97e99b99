"""Backfill: active users, the regional pool, pool rows per user, and short lists."""

import datetime as dt

import pytest

from recsys_spark.columns import INTERACTIONS_SCHEMA, USERS_SCHEMA
from recsys_spark.config import load_config
from recsys_spark.postprocess import apply, backfill

AS_OF = "2026-06-30T00:00:00"
UTC = dt.UTC


def days_before(days):
    return dt.datetime(2026, 6, 30, tzinfo=UTC) - dt.timedelta(days=days)


def rules(*overrides):
    return load_config(overrides=["lake.root=/tmp/unused", *overrides]).rules


@pytest.fixture
def catalog(spark):
    # video, blocked_regions, misinformation, views_all
    return spark.createDataFrame(
        [
            ("p1", [], False, 10),
            ("p2", ["US"], False, 50),
            ("p3", [], True, 100),
            ("p4", [], None, 200),
            ("p5", [], False, 5),
            ("p6", ["DE"], False, 1),
        ],
        "video_id string, blocked_regions array<string>, misinformation boolean, views_all long",
    )


@pytest.fixture
def popularity(spark):
    return spark.createDataFrame(
        [("US", "p5", 3), ("US", "p1", 1), ("DE", "p1", 2), ("DE", "p2", 1)],
        "region string, video_id string, events long",
    )


@pytest.fixture
def regions(spark):
    return spark.createDataFrame([("US",), ("DE",), (None,)], "region string")


def pool_by_region(pool):
    result = {}
    for row in pool.orderBy("region", "pool_rank").collect():
        result.setdefault(row.region, []).append(
            (row.video_id, row.pool_rank, round(row.rule_score, 4), row.pool_truncated)
        )
    return result


def test_pool_ranks_per_region(catalog, regions, popularity):
    pool = backfill.backfill_pool(catalog, regions, popularity, rules(), size=3)
    result = pool_by_region(pool)
    # US: p2 blocked, p3 flagged; p5 (3 events), p1 (1), p6 (0 events, 1 view), then the
    # unreviewed p4 (demoted below reviewed videos) falls beyond the 3 kept.
    assert result["US"] == [
        ("p5", 1, 1.0, True),
        ("p1", 2, 0.6667, True),
        ("p6", 3, 0.3333, True),
    ]
    # DE: p6 blocked; p1 (2 events), p2 (1), p5 (0 in DE, 3 worldwide).
    assert result["DE"] == [("p1", 1, 1.0, True), ("p2", 2, 0.6667, True), ("p5", 3, 0.3333, True)]
    # No region: only videos available everywhere (p1, p4, p5); p1 and p5 both have 3
    # events worldwide, p1 has more views; p4 last as unreviewed. Nothing cut.
    assert result[None] == [
        ("p1", 1, 1.0, False),
        ("p5", 2, 0.6667, False),
        ("p4", 3, 0.3333, False),
    ]


def test_pool_drops_unreviewed_under_drop(catalog, regions, popularity):
    strict = rules("rules.misinformation.unreviewed=drop")
    result = pool_by_region(backfill.backfill_pool(catalog, regions, popularity, strict, size=3))
    assert [video for video, *_ in result[None]] == ["p1", "p5"]
    assert [truncated for *_, truncated in result["US"]] == [False, False, False]


def test_backfill_rows_skip_watched(spark, catalog, regions, popularity):
    pool = backfill.backfill_pool(catalog, regions, popularity, rules(), size=3)
    users = spark.createDataFrame(
        [("u1", "US", True), ("u2", None, False)],
        "user_id string, region string, has_candidates boolean",
    )
    watched = spark.createDataFrame([("u1", "p5")], "user_id string, video_id string")
    rows = backfill.backfill_rows(users, pool, watched).orderBy("user_id", "rule_score").collect()
    result = [(row.user_id, row.video_id, row.source, row.tier) for row in rows]
    assert result == [
        ("u1", "p6", "backfill_popular", 1),
        ("u1", "p1", "backfill_popular", 1),
        ("u2", "p4", "fallback_popular", 1),
        ("u2", "p5", "fallback_popular", 1),
        ("u2", "p1", "fallback_popular", 1),
    ]
    with_rewatch = backfill.backfill_rows(users, pool, None).where("user_id = 'u1'")
    assert with_rewatch.count() == 3


def test_regional_popularity_window(spark):
    users = spark.createDataFrame(
        [("a", None, "US", None, None, None, None), ("b", None, None, None, None, None, None)],
        USERS_SCHEMA,
    )
    events = spark.createDataFrame(
        [
            ("a", "v1", days_before(1), "watch", None, None),
            ("a", "v1", days_before(2), "impression", None, None),
            ("a", "v1", days_before(40), "watch", None, None),
            ("b", "v1", days_before(3), "like", None, None),
            ("a", "v2", days_before(-1), "watch", None, None),
        ],
        INTERACTIONS_SCHEMA,
    )
    counts = backfill.regional_popularity(events, users, AS_OF, 30, ["watch", "like"])
    result = sorted((row.region or "", row.video_id, row.events) for row in counts.collect())
    # Impressions, events older than 30 days and events after the snapshot do not count.
    assert result == [("", "v1", 1), ("US", "v1", 1)]


def test_active_users_window(spark):
    users = spark.createDataFrame(
        [
            ("a", days_before(300), "US", None, None, None, None),
            ("b", days_before(300), "US", None, None, None, None),
            ("c", days_before(2), "US", None, None, None, None),
            ("d", days_before(-1), "US", None, None, None, None),
            ("e", None, "US", None, None, None, None),
        ],
        USERS_SCHEMA,
    )
    events = spark.createDataFrame(
        [
            ("a", "v1", days_before(3), "watch", None, None),
            ("b", "v1", days_before(60), "watch", None, None),
        ],
        INTERACTIONS_SCHEMA,
    )
    everyone = backfill.active_users(users, events, AS_OF, None)
    # d signs up after the snapshot time.
    assert sorted(row.user_id for row in everyone.collect()) == ["a", "b", "c", "e"]
    recent = backfill.active_users(users, events, AS_OF, 30)
    # a had an event and c signed up in the last 30 days.
    assert sorted(row.user_id for row in recent.collect()) == ["a", "c"]


def test_apply_rules_backfill_and_short_lists(spark):
    catalog = spark.createDataFrame(
        [
            (
                f"x{i}",
                f"c{i}",
                f"cat{i}",
                blocked,
                False,
                None,
                100.0,
                views,
                False,
                False,
                None,
                None,
            )
            for i, blocked, views in [
                (1, [], 40),
                (2, ["Q"], 30),
                (3, ["Q"], 20),
                (4, ["Q"], 10),
            ]
        ],
        "video_id string, creator_id string, category string, blocked_regions array<string>, "
        "misinformation boolean, upload_ts timestamp, age_days double, views_all long, "
        "long_tail boolean, fresh boolean, cluster_id string, embedding array<float>",
    )
    users = spark.createDataFrame(
        [("s1", "R"), ("s2", "R"), ("s3", "Q")], "user_id string, region string"
    )
    watched = spark.createDataFrame(
        [("s2", "x1"), ("s2", "x2"), ("s2", "x3")], "user_id string, video_id string"
    )
    config_rules = rules("rules.fairness.min_long_tail_share=0.0")
    regions = spark.createDataFrame([("R",), ("Q",), (None,)], "region string")
    popularity = spark.createDataFrame([], "region string, video_id string, events long")
    pool = backfill.backfill_pool(catalog, regions, popularity, config_rules, size=2)
    inputs = apply.RuleInputs(
        catalog=catalog,
        users=users,
        watched=watched,
        pool=pool,
        active_users=spark.createDataFrame([("s3",)], "user_id string"),
    )
    scored = spark.createDataFrame(
        [("s1", "x1", "two_tower", 0.5), ("s2", "x3", "two_tower", 0.9)],
        "user_id string, video_id string, source string, score double",
    )
    result = apply.apply_rules(scored, inputs, config_rules, k=2, list_depth=2)
    lists = sorted(
        (row.user_id, row["rank"], row.video_id, row.source) for row in result.lists.collect()
    )
    audit = sorted(
        (
            (row.user_id, row.video_id, row.action, row.reason, row.list_size)
            for row in result.audit.collect()
        ),
        key=lambda row: (row[0], row[1] or ""),
    )

    # s1: its one candidate, then the best pool video of region R it does not have (x2;
    # the R pool keeps x1, x2 of four eligible videos). s2 watched its candidate and the
    # whole R pool. s3 has no candidate and region Q allows only x1.
    assert lists == [
        ("s1", 1, "x1", "two_tower"),
        ("s1", 2, "x2", "backfill_popular"),
        ("s3", 1, "x1", "fallback_popular"),
    ]
    assert audit == [
        ("s2", None, "short_list", "backfill_pool_limit", 0),
        ("s2", "x3", "removed", "already_watched", None),
        ("s3", None, "short_list", "no_eligible_videos", 1),
    ]
