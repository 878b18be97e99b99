"""Chain the rules: scale scores, tag removals, drop near-duplicates, build lists, backfill.

Order of the steps, each on every candidate row of every user:

1. Scale each user's ranker scores to [0, 1] (min-max; 1 when all are equal), so the
   boosts, penalties and MMR weights mean the same for every ranker.
2. Row rules, first match wins: ``not_in_catalog`` (unknown, or uploaded after the
   snapshot time), ``region_blocked`` / ``region_unknown``, ``misinformation_flagged`` /
   ``misinformation_unreviewed`` (under ``drop``), ``already_watched``.
3. ``rule_score`` = scaled score - ``demote_penalty`` for unreviewed videos under
   ``demote`` + the freshness boost.
4. ``near_duplicate``: among the rows left, only the best ``rule_score`` per
   (user, cluster) stays.
5. The list step (:func:`recsys_spark.postprocess.fairness.select_lists`) on each user's
   ``list_depth`` best rows: caps (``creator_cap``, ``category_cap``), minimum
   long-tail and fresh counts, MMR.
6. Users with fewer than k rows, and active users without candidates, run the list step
   again on all their eligible candidates plus the backfill pool
   (:mod:`recsys_spark.postprocess.backfill`). A list still short gets a ``short_list``
   audit row with reason ``no_eligible_videos`` or ``backfill_pool_limit``.

Every removed or demoted candidate row becomes an audit row with its reason code; the
audit covers candidates only, not the backfill pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from pyspark import Broadcast
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import (
    BLOCKED_REGIONS,
    CATEGORY,
    CREATOR_ID,
    MISINFORMATION,
    RANK,
    REGION,
    SCORE,
    SOURCE,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.postprocess import (
    backfill,
    duplicates,
    fairness,
    freshness,
    misinformation,
    region,
    timestamp_literal,
    watched,
)
from recsys_spark.postprocess.fairness import (
    FRESH,
    LONG_TAIL,
    REASON,
    RULE_SCORE,
    TIER,
)
from recsys_spark.settings import RulesConfig

logger = logging.getLogger(__name__)

NOT_IN_CATALOG = "not_in_catalog"
NO_ELIGIBLE_VIDEOS = "no_eligible_videos"
BACKFILL_POOL_LIMIT = "backfill_pool_limit"

# Audit actions.
REMOVED = "removed"
DEMOTED = "demoted"
SHORT_LIST = "short_list"
ACTION = "action"
LIST_SIZE = "list_size"

# Every reason code of a removed or demoted candidate row, in the order the rules run.
RULE_REASONS = (
    NOT_IN_CATALOG,
    region.BLOCKED,
    region.UNKNOWN_REGION,
    misinformation.FLAGGED,
    misinformation.UNREVIEWED,
    watched.WATCHED,
    duplicates.NEAR_DUPLICATE,
    fairness.CREATOR_CAP,
    fairness.CATEGORY_CAP,
)
SHORT_LIST_REASONS = (NO_ELIGIBLE_VIDEOS, BACKFILL_POOL_LIMIT)

AUDIT_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        # Null on short_list rows.
        T.StructField(VIDEO_ID, T.StringType(), True),
        # removed | demoted | short_list
        T.StructField(ACTION, T.StringType(), False),
        T.StructField(REASON, T.StringType(), False),
        T.StructField(RULE_SCORE, T.DoubleType(), True),
        T.StructField(SOURCE, T.StringType(), True),
        # Rows in the user's list; short_list rows only.
        T.StructField(LIST_SIZE, T.IntegerType(), True),
    ]
)

AGE_DAYS = freshness.AGE_DAYS
NEW_CREATOR = "new_creator"
_SCALED = "_scaled"
_DEMOTED = "_demoted"
_WATCHED = "_watched"
_IN_CATALOG = "_in_catalog"
_CLUSTER = "_cluster"


@dataclass(frozen=True)
class RuleInputs:
    """The tables the rules read besides the scored candidates.

    Attributes:
      catalog: Output of :func:`build_catalog`.
      users: ``user_id``, ``region`` (the raw users table).
      watched: ``user_id``, ``video_id`` pairs watched before the snapshot time.
      pool: Output of :func:`recsys_spark.postprocess.backfill.backfill_pool`.
      active_users: ``user_id`` of users owed a list even without candidates.
      vectors: A broadcast :class:`~recsys_spark.postprocess.fairness.UnitVectors` for MMR
        on embeddings, or None to compare categories only.
    """

    catalog: DataFrame
    users: DataFrame
    watched: DataFrame
    pool: DataFrame
    active_users: DataFrame
    vectors: Optional[Broadcast] = None


@dataclass(frozen=True)
class RuleOutput:
    """The final lists and the audit rows of one run of the rules."""

    # user_id, video_id, rank, score, source, tier
    lists: DataFrame
    # AUDIT_SCHEMA
    audit: DataFrame


def build_catalog(
    videos: DataFrame,
    video_features: DataFrame,
    as_of: str,
    rules: RulesConfig,
    clusters: Optional[DataFrame] = None,
    views: str = "views_all",
) -> DataFrame:
    """Join what the rules need per video: moderation, age, popularity flags, cluster.

    Args:
      videos: The raw videos table (moderation flags are read here, as validate_output
        does).
      video_features: ``features/videos/<snapshot>``: ``video_id``, ``age_days``, the
        ``views`` column. Videos absent from it, or uploaded after ``as_of``, are left out.
      as_of: The snapshot time (ISO-8601, session time zone).
      rules: Freshness and fairness settings.
      clusters: ``video_id``, ``cluster_id`` from the near-duplicate step, or None.
      views: Name of the all-time view count column of ``video_features``.

    Returns:
      Columns ``video_id``, ``creator_id``, ``category``, ``blocked_regions``,
      ``misinformation``, ``upload_ts``, ``age_days``, ``views``, ``long_tail`` (long tail
      or new creator), ``fresh`` and ``cluster_id`` (nullable).
    """
    uploaded = F.col(UPLOAD_TS).isNull() | (F.col(UPLOAD_TS) <= timestamp_literal(as_of))
    catalog = (
        videos.where(uploaded)
        .select(VIDEO_ID, CREATOR_ID, CATEGORY, BLOCKED_REGIONS, MISINFORMATION, UPLOAD_TS)
        .join(video_features.select(VIDEO_ID, AGE_DAYS, views), VIDEO_ID)
    )
    tail = fairness.long_tail_videos(catalog, rules.fairness.head_share, views)
    new = fairness.new_creator_videos(catalog, as_of, rules.fairness.new_creator_days)
    catalog = (
        catalog.join(tail, VIDEO_ID, "left")
        .join(new, VIDEO_ID, "left")
        .withColumn(LONG_TAIL, F.coalesce(F.col(LONG_TAIL) | F.col(NEW_CREATOR), F.lit(False)))
        .withColumn(FRESH, freshness.is_fresh(rules.freshness.fresh_days))
        .drop(NEW_CREATOR)
    )
    if clusters is None:
        catalog = catalog.withColumn(duplicates.CLUSTER_ID, F.lit(None).cast("string"))
    else:
        catalog = catalog.join(clusters.select(VIDEO_ID, duplicates.CLUSTER_ID), VIDEO_ID, "left")
    return catalog


def scale_scores(candidates: DataFrame, score: str = SCORE, output_col: str = _SCALED) -> DataFrame:
    """Add ``output_col``: each user's ``score`` min-max scaled to [0, 1].

    A user whose candidates all have the same score gets 1.0 for every row. Null scores
    become 0 (the bottom of the list).
    """
    user = Window.partitionBy(USER_ID)
    low, high = F.min(score).over(user), F.max(score).over(user)
    scaled = F.when(high > low, (F.col(score) - low) / (high - low)).otherwise(F.lit(1.0))
    return candidates.withColumn(output_col, F.coalesce(scaled, F.lit(0.0)))


def tag_row_rules(scored: DataFrame, inputs: RuleInputs, rules: RulesConfig) -> DataFrame:
    """Join the rule inputs to every candidate row and tag its reason and ``rule_score``.

    Args:
      scored: Candidates with ``user_id``, ``video_id``, ``source``, ``score``.
      inputs: The rule inputs.
      rules: The rules config.

    Returns:
      The candidate rows with the catalog columns, ``region``, ``reason`` (null when the
      row is still eligible), ``_demoted`` and ``rule_score``.
    """
    rows = scale_scores(scored)
    catalog = inputs.catalog.withColumn(_IN_CATALOG, F.lit(True))
    rows = rows.join(catalog, VIDEO_ID, "left").join(
        inputs.users.select(USER_ID, REGION), USER_ID, "left"
    )

    reasons = [F.when(F.col(_IN_CATALOG).isNull(), F.lit(NOT_IN_CATALOG))]
    if rules.region.enabled:
        reasons.append(region.region_reason())
    demoted = F.lit(False)
    if rules.misinformation.enabled:
        reasons.append(misinformation.misinformation_reason(rules.misinformation.unreviewed))
        demoted = misinformation.misinformation_demoted(rules.misinformation.unreviewed)
    if rules.rewatch == "remove":
        rows = watched.mark_watched(rows, inputs.watched, _WATCHED)
        reasons.append(watched.watched_reason(rules.rewatch, _WATCHED))
    reason = F.coalesce(*reasons)

    rule_score = F.col(_SCALED) - F.when(
        demoted, F.lit(rules.misinformation.demote_penalty)
    ).otherwise(F.lit(0.0))
    if rules.freshness.enabled:
        rule_score = rule_score + freshness.freshness_boost(
            rules.freshness.boost, rules.freshness.half_life_days
        )
    return (
        rows.withColumn(REASON, reason)
        .withColumn(_DEMOTED, F.coalesce(demoted, F.lit(False)) & reason.isNull())
        .withColumn(RULE_SCORE, rule_score)
        .drop(_IN_CATALOG, _WATCHED)
    )


def tag_near_duplicates(rows: DataFrame, enabled: bool) -> DataFrame:
    """Tag ``near_duplicate`` on every eligible row but the best of its (user, cluster).

    Best means the lowest ``tier``, then the highest ``rule_score``, then the smallest
    video id. Rows already carrying a reason take no part.
    """
    if not enabled:
        return rows
    eligible = F.col(REASON).isNull()
    order = Window.partitionBy(USER_ID, _CLUSTER, eligible).orderBy(
        F.col(TIER).asc(), F.col(RULE_SCORE).desc(), F.col(VIDEO_ID).asc()
    )
    return (
        rows.withColumn(_CLUSTER, duplicates.cluster_key())
        .withColumn(
            REASON,
            F.when(
                eligible & (F.row_number().over(order) > 1),
                F.lit(duplicates.NEAR_DUPLICATE),
            ).otherwise(F.col(REASON)),
        )
        .drop(_CLUSTER)
    )


def _audit_from_rows(rows: DataFrame) -> DataFrame:
    action = F.when(F.col(REASON).isNotNull(), F.lit(REMOVED)).otherwise(F.lit(DEMOTED))
    return rows.where(F.col(REASON).isNotNull() | F.col(_DEMOTED)).select(
        USER_ID,
        VIDEO_ID,
        action.alias(ACTION),
        F.coalesce(F.col(REASON), F.lit(misinformation.UNREVIEWED)).alias(REASON),
        F.col(RULE_SCORE),
        F.col(SOURCE),
        F.lit(None).cast("int").alias(LIST_SIZE),
    )


# Catalog columns carried to the list steps; cluster_id serves the second pass's dedup.
_LIST_COLUMNS = (CREATOR_ID, CATEGORY, LONG_TAIL, FRESH, duplicates.CLUSTER_ID)


def list_step_input(rows: DataFrame) -> DataFrame:
    """Select the columns the list step reads from tagged candidate or pool rows."""
    columns = [USER_ID, VIDEO_ID, F.col(TIER).cast("int").alias(TIER), RULE_SCORE, SOURCE]
    return rows.select(*columns, *_LIST_COLUMNS)


def _users_owed(scored: DataFrame, active_users: DataFrame) -> DataFrame:
    """Return ``user_id``, ``has_candidates`` of users with candidates and active users."""
    with_candidates = (
        scored.select(USER_ID).distinct().withColumn(backfill.HAS_CANDIDATES, F.lit(True))
    )
    without = (
        active_users.select(USER_ID)
        .distinct()
        .join(with_candidates, USER_ID, "left_anti")
        .withColumn(backfill.HAS_CANDIDATES, F.lit(False))
    )
    return with_candidates.unionByName(without)


def _list_sizes(selected: DataFrame, name: str) -> DataFrame:
    return (
        selected.where(F.col(RANK).isNotNull()).groupBy(USER_ID).agg(F.count(F.lit(1)).alias(name))
    )


def _second_pass_input(
    eligible: DataFrame, short: DataFrame, inputs: RuleInputs, rules: RulesConfig
) -> DataFrame:
    """Union the short users' eligible candidates with their pool rows, one per cluster."""
    pool_rows = backfill.backfill_rows(
        short, inputs.pool, inputs.watched if rules.rewatch == "remove" else None
    ).join(inputs.catalog.select(VIDEO_ID, *_LIST_COLUMNS), VIDEO_ID)
    short_candidates = eligible.join(short.select(USER_ID), USER_ID, "left_semi").select(
        USER_ID, VIDEO_ID, TIER, RULE_SCORE, SOURCE, *_LIST_COLUMNS
    )
    pool_rows = pool_rows.join(
        short_candidates.select(USER_ID, VIDEO_ID), [USER_ID, VIDEO_ID], "left_anti"
    ).select(*short_candidates.columns)
    both = short_candidates.unionByName(pool_rows).withColumn(REASON, F.lit(None).cast("string"))
    return tag_near_duplicates(both, rules.duplicates.enabled).where(F.col(REASON).isNull())


def _short_list_audit(short: DataFrame, second: DataFrame, pool: DataFrame, k: int) -> DataFrame:
    """Return a ``short_list`` audit row per user still below k after the backfill."""
    truncated = backfill.pool_truncated_by_user(short, pool)
    return (
        short.select(USER_ID)
        .join(_list_sizes(second, "_size"), USER_ID, "left")
        .join(truncated, USER_ID, "left")
        .where(F.coalesce(F.col("_size"), F.lit(0)) < k)
        .select(
            USER_ID,
            F.lit(None).cast("string").alias(VIDEO_ID),
            F.lit(SHORT_LIST).alias(ACTION),
            F.when(
                F.coalesce(F.col(backfill.POOL_TRUNCATED), F.lit(False)), F.lit(BACKFILL_POOL_LIMIT)
            )
            .otherwise(F.lit(NO_ELIGIBLE_VIDEOS))
            .alias(REASON),
            F.lit(None).cast("double").alias(RULE_SCORE),
            F.lit(None).cast("string").alias(SOURCE),
            F.coalesce(F.col("_size"), F.lit(0)).cast("int").alias(LIST_SIZE),
        )
    )


def _cap_audit(selected: DataFrame) -> DataFrame:
    return selected.where(F.col(REASON).isNotNull()).select(
        USER_ID,
        VIDEO_ID,
        F.lit(REMOVED).alias(ACTION),
        REASON,
        RULE_SCORE,
        SOURCE,
        F.lit(None).cast("int").alias(LIST_SIZE),
    )


def apply_rules(
    scored: DataFrame,
    inputs: RuleInputs,
    rules: RulesConfig,
    k: int,
    list_depth: int,
) -> RuleOutput:
    """Apply every rule to the scored candidates and complete the lists from the pool.

    Runs Spark jobs: the tagged candidates, the first list step's output, the short users
    and the second list step's output are materialised with ``localCheckpoint``, because
    several later steps read each of them. A cached frame with this deep a plan costs
    Spark seconds of planning per query that reads it; a checkpoint cuts the plan.

    Note:
      ``localCheckpoint`` keeps the data on the executors, so losing an executor fails the
      job instead of recomputing the lost part.

    Args:
      scored: Candidates with ``user_id``, ``video_id``, ``source``, ``score`` (higher is
        better).
      inputs: The rule inputs.
      rules: The rules config.
      k: List length.
      list_depth: Best eligible rows per user passed to the first list step.

    Returns:
      The lists (``user_id``, ``video_id``, ``rank``, ``score`` (= ``rule_score``),
      ``source``, ``tier``) and the audit rows (:data:`AUDIT_SCHEMA`).
    """
    params = fairness.list_params(k, rules)
    tagged = tag_row_rules(scored.withColumn(TIER, F.lit(0)), inputs, rules)
    tagged = (
        tag_near_duplicates(tagged, rules.duplicates.enabled)
        .select(USER_ID, VIDEO_ID, TIER, SOURCE, RULE_SCORE, REASON, _DEMOTED, *_LIST_COLUMNS)
        .localCheckpoint()
    )
    eligible = tagged.where(F.col(REASON).isNull()).drop(REASON)

    best_first = Window.partitionBy(USER_ID).orderBy(F.col(RULE_SCORE).desc(), F.col(VIDEO_ID))
    top = eligible.withColumn("_position", F.row_number().over(best_first)).where(
        F.col("_position") <= list_depth
    )
    first = fairness.select_lists(list_step_input(top), params, inputs.vectors).localCheckpoint()

    short = (
        _users_owed(scored, inputs.active_users)
        .join(_list_sizes(first, "_listed"), USER_ID, "left")
        .where(F.coalesce(F.col("_listed"), F.lit(0)) < k)
        .select(USER_ID, backfill.HAS_CANDIDATES)
        .join(inputs.users.select(USER_ID, REGION), USER_ID, "left")
        .localCheckpoint()
    )
    second_input = _second_pass_input(eligible, short, inputs, rules)
    second = fairness.select_lists(
        list_step_input(second_input), params, inputs.vectors
    ).localCheckpoint()

    final_first = first.join(short.select(USER_ID), USER_ID, "left_anti")
    lists = (
        final_first.unionByName(second)
        .where(F.col(RANK).isNotNull())
        .select(USER_ID, VIDEO_ID, RANK, F.col(RULE_SCORE).alias(SCORE), SOURCE, TIER)
    )
    audit = (
        _audit_from_rows(tagged)
        .unionByName(_cap_audit(final_first))
        .unionByName(_cap_audit(second.where(F.col(TIER) == 0)))
        .unionByName(_short_list_audit(short, second, inputs.pool, k))
    )
    return RuleOutput(lists=lists, audit=audit)


def unfiltered_top_k(scored: DataFrame, k: int) -> DataFrame:
    """Return each user's k best candidates by ``score`` with no rule applied (``video_id``).

    The "before" side of the exposure metrics in the run summary.
    """
    order = Window.partitionBy(USER_ID).orderBy(F.col(SCORE).desc(), F.col(VIDEO_ID))
    return (
        scored.withColumn("_position", F.row_number().over(order))
        .where(F.col("_position") <= k)
        .select(USER_ID, VIDEO_ID)
    )


def rule_effects(audit: DataFrame, users: DataFrame) -> dict[str, Any]:
    """Summarise the audit: per reason, rows removed or demoted and their spread per user.

    Runs one Spark job. The per-user spread is over every user in ``users`` (users the rule
    did not touch count as 0); the median and p90 are approximate (``percentile_approx``
    with accuracy 10000).

    Args:
      audit: Audit rows (:data:`AUDIT_SCHEMA`).
      users: Column ``user_id``: the users the candidates belong to.

    Returns:
      ``{reason: {"action", "rows", "users", "per_user": {"min", "median", "p90", "max"}}}``
      for every reason code in :data:`RULE_REASONS`, including those with no row.
    """
    spark = audit.sparkSession
    reasons = spark.createDataFrame([(reason,) for reason in RULE_REASONS], f"{REASON} string")
    per_user = (
        audit.where(F.col(ACTION) != SHORT_LIST)
        .groupBy(USER_ID, REASON)
        .agg(F.count(F.lit(1)).alias("_rows"), F.first(ACTION).alias(ACTION))
    )
    grid = users.select(USER_ID).distinct().crossJoin(F.broadcast(reasons))
    table = (
        grid.join(per_user, [USER_ID, REASON], "left")
        .withColumn("_rows", F.coalesce(F.col("_rows"), F.lit(0)))
        .groupBy(REASON)
        .agg(
            F.sum("_rows").alias("rows"),
            F.sum((F.col("_rows") > 0).cast("long")).alias("users"),
            F.max(ACTION).alias(ACTION),
            F.min("_rows").alias("min"),
            F.percentile_approx("_rows", 0.5, 10000).alias("median"),
            F.percentile_approx("_rows", 0.9, 10000).alias("p90"),
            F.max("_rows").alias("max"),
        )
        .collect()
    )
    effects = {}
    for row in table:
        effects[row[REASON]] = {
            "action": row[ACTION]
            or (DEMOTED if row[REASON] == misinformation.UNREVIEWED else REMOVED),
            "rows": int(row["rows"] or 0),
            "users": int(row["users"] or 0),
            "per_user": {name: int(row[name] or 0) for name in ("min", "median", "p90", "max")},
        }
    return {reason: effects.get(reason) for reason in RULE_REASONS}
