"""Backfill: complete short lists, and give users without candidates a fallback list.

The pool is, per region, the ``backfill_pool`` most popular videos that pass the
region and misinformation rules for that region. Users without a region share a pool of
videos available everywhere. Popularity counts watched-type events of users in the region
over the ``popularity_days`` before the snapshot time, then global events of that period,
then the catalog's all-time views; unreviewed videos under ``demote`` come after reviewed
ones. A user's pool rows leave out what they already watched (under ``rewatch: remove``),
and the list step then applies the near-duplicate, cap and share rules to them as to any
candidate.

Backfill rows get source ``backfill_popular`` in a list that also has ranked candidates,
and ``fallback_popular`` for a user with no candidate at all (a user unknown to the
models). Their ``rule_score`` is ``1 - (pool_rank - 1) / backfill_pool``, in (0, 1].
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import (
    BLOCKED_REGIONS,
    EVENT_TS,
    EVENT_TYPE,
    MISINFORMATION,
    REGION,
    SIGNUP_TS,
    SOURCE,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.postprocess import timestamp_literal
from recsys_spark.postprocess.fairness import RULE_SCORE, TIER
from recsys_spark.postprocess.misinformation import (
    misinformation_demoted,
    misinformation_reason,
)
from recsys_spark.postprocess.region import region_reason
from recsys_spark.settings import RulesConfig

BACKFILL = "backfill_popular"
FALLBACK = "fallback_popular"
POOL_RANK = "pool_rank"
# True when the region had more eligible videos than the pool keeps.
POOL_TRUNCATED = "pool_truncated"
HAS_CANDIDATES = "has_candidates"

BACKFILL_TIER = 1


def _days_before(as_of: str, days: float) -> Column:
    return timestamp_literal(as_of) - F.make_dt_interval(secs=F.lit(float(days) * 86400.0))


def active_users(
    users: DataFrame, interactions: DataFrame, as_of: str, active_days: Optional[int]
) -> DataFrame:
    """Return the users owed a list even without candidates.

    Args:
      users: The raw users table (``user_id``, ``signup_ts``).
      interactions: The raw interactions (``user_id``, ``event_ts``).
      as_of: The snapshot time (ISO-8601, session time zone).
      active_days: A user is active with an event or a signup in this many days before
        ``as_of``; None: every user who signed up by ``as_of`` (or has no signup time).

    Returns:
      Column ``user_id``, distinct.
    """
    end = timestamp_literal(as_of)
    signed_up = users.where(F.col(SIGNUP_TS).isNull() | (F.col(SIGNUP_TS) <= end))
    if active_days is None:
        return signed_up.select(USER_ID).distinct()
    start = _days_before(as_of, active_days)
    recent_events = interactions.where((F.col(EVENT_TS) >= start) & (F.col(EVENT_TS) < end)).select(
        USER_ID
    )
    recent_signups = signed_up.where(F.col(SIGNUP_TS) >= start).select(USER_ID)
    recent = recent_events.unionByName(recent_signups).distinct()
    return signed_up.select(USER_ID).join(recent, USER_ID, "left_semi").distinct()


def regional_popularity(
    interactions: DataFrame,
    users: DataFrame,
    as_of: str,
    days: int,
    event_types,
) -> DataFrame:
    """Count watched-type events per (region, video) in the ``days`` before ``as_of``.

    Returns:
      Columns ``region`` (null for users without a region), ``video_id``, ``events``.
    """
    window = interactions.where(
        (F.col(EVENT_TS) >= _days_before(as_of, days))
        & (F.col(EVENT_TS) < timestamp_literal(as_of))
        & F.col(EVENT_TYPE).isin(list(event_types))
    )
    return (
        window.join(users.select(USER_ID, REGION), USER_ID, "left")
        .groupBy(REGION, VIDEO_ID)
        .agg(F.count(F.lit(1)).alias("events"))
    )


def backfill_pool(
    catalog: DataFrame,
    regions: DataFrame,
    popularity: DataFrame,
    rules: RulesConfig,
    size: int,
    views: str = "views_all",
) -> DataFrame:
    """Rank, per region, the videos a user of that region may be shown.

    Args:
      catalog: Videos that exist at the snapshot time: ``video_id``, ``blocked_regions``,
        ``misinformation`` and the all-time ``views`` column.
      regions: Column ``region``: every user region to build a pool for (null included).
      popularity: Output of :func:`regional_popularity`.
      rules: The region and misinformation settings are applied.
      size: Videos kept per region.
      views: Name of the catalog's all-time view count column.

    Returns:
      Columns ``region``, ``video_id``, ``pool_rank`` (1-based), ``rule_score`` and
      ``pool_truncated``.
    """
    global_events = popularity.groupBy(VIDEO_ID).agg(F.sum("events").alias("_global"))
    regional = popularity.select(REGION, VIDEO_ID, F.col("events").alias("_regional"))
    # Every (region, catalog video) pair; the null region is matched null-safely.
    pairs = (
        regions.select(REGION)
        .distinct()
        .crossJoin(catalog.select(VIDEO_ID, BLOCKED_REGIONS, MISINFORMATION, views))
        .alias("pair")
        .join(
            regional.alias("regional"),
            F.col(f"pair.{REGION}").eqNullSafe(F.col(f"regional.{REGION}"))
            & (F.col(f"pair.{VIDEO_ID}") == F.col(f"regional.{VIDEO_ID}")),
            "left",
        )
        .select("pair.*", "regional._regional")
    )

    reasons = []
    if rules.region.enabled:
        reasons.append(region_reason(F.col(REGION), F.col(BLOCKED_REGIONS)))
    demoted = F.lit(False)
    if rules.misinformation.enabled:
        reasons.append(misinformation_reason(rules.misinformation.unreviewed))
        demoted = misinformation_demoted(rules.misinformation.unreviewed)
    eligible = pairs
    if reasons:
        eligible = pairs.where(F.coalesce(*reasons).isNull())

    by_popularity = Window.partitionBy(REGION).orderBy(
        demoted.asc(),
        F.coalesce(F.col("_regional"), F.lit(0)).desc(),
        F.coalesce(F.col("_global"), F.lit(0)).desc(),
        F.coalesce(F.col(views), F.lit(0)).desc(),
        F.col(VIDEO_ID).asc(),
    )
    ranked = (
        eligible.join(global_events, VIDEO_ID, "left")
        .withColumn(POOL_RANK, F.row_number().over(by_popularity))
        .withColumn("_eligible", F.count(F.lit(1)).over(Window.partitionBy(REGION)))
    )
    return ranked.where(F.col(POOL_RANK) <= size).select(
        REGION,
        VIDEO_ID,
        POOL_RANK,
        (1.0 - (F.col(POOL_RANK) - 1) / F.lit(float(size))).alias(RULE_SCORE),
        (F.col("_eligible") > size).alias(POOL_TRUNCATED),
    )


def backfill_rows(users: DataFrame, pool: DataFrame, watched: Optional[DataFrame]) -> DataFrame:
    """Return each user's pool rows, without the videos they watched.

    Args:
      users: Columns ``user_id``, ``region`` (nullable) and ``has_candidates`` (boolean).
      pool: Output of :func:`backfill_pool`.
      watched: ``user_id``, ``video_id`` pairs to leave out, or None to keep them
        (``rules.rewatch: allow``).

    Returns:
      Columns ``user_id``, ``video_id``, ``tier`` (1), ``rule_score``, ``source``,
      ``pool_truncated``.
    """
    rows = (
        users.alias("user")
        .join(
            pool.alias("pool"),
            F.col(f"user.{REGION}").eqNullSafe(F.col(f"pool.{REGION}")),
        )
        .select(
            F.col(f"user.{USER_ID}").alias(USER_ID),
            F.col(f"pool.{VIDEO_ID}").alias(VIDEO_ID),
            F.lit(BACKFILL_TIER).alias(TIER),
            F.col(f"pool.{RULE_SCORE}").alias(RULE_SCORE),
            F.when(F.col(f"user.{HAS_CANDIDATES}"), F.lit(BACKFILL))
            .otherwise(F.lit(FALLBACK))
            .alias(SOURCE),
            F.col(f"pool.{POOL_TRUNCATED}").alias(POOL_TRUNCATED),
        )
    )
    if watched is not None:
        rows = rows.join(watched.select(USER_ID, VIDEO_ID), [USER_ID, VIDEO_ID], "left_anti")
    return rows


def pool_truncated_by_user(users: DataFrame, pool: DataFrame) -> DataFrame:
    """Return ``user_id``, ``pool_truncated``: whether the user's regional pool was cut.

    Args:
      users: Columns ``user_id``, ``region`` (nullable).
      pool: Output of :func:`backfill_pool`.
    """
    per_region = pool.groupBy(REGION).agg(F.max(POOL_TRUNCATED).alias(POOL_TRUNCATED))
    return (
        users.alias("user")
        .join(
            per_region.alias("pool"),
            F.col(f"user.{REGION}").eqNullSafe(F.col(f"pool.{REGION}")),
            "left",
        )
        .select(F.col(f"user.{USER_ID}").alias(USER_ID), F.col(f"pool.{POOL_TRUNCATED}"))
    )
