"""Recommend: score candidates, apply the post-processing rules, write the top k per user.

Reads ``candidates/<recommend.snapshot>`` scored by the selected ranker (or by
``retrieval_score`` when none is trained and ``recommend.scorer`` is ``auto``), the raw
tables, ``features/videos/<snapshot>`` and the two-tower video embeddings. Writes
``recommendations/run_date=<date>`` plus its audit and near-duplicate clusters (see
``recsys_spark.output``), and returns the rule effects for the run summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import posixpath
import sys
from typing import Any, Optional, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark import io, output
from recsys_spark.cli import job_main
from recsys_spark.columns import (
    AS_OF,
    INTERACTIONS,
    MODEL_VERSION,
    REGION,
    RETRIEVAL_SCORE,
    RUN_ID,
    SCORE,
    SOURCE,
    USER_ID,
    USERS,
    VIDEOS,
)
from recsys_spark.models import artifacts as two_tower
from recsys_spark.postprocess import apply, backfill, duplicates, fairness, watched
from recsys_spark.runs import Run
from recsys_spark.settings import Config, RecommendConfig

logger = logging.getLogger(__name__)

VIEWS = "views_all"
SHORT_LIST_EXAMPLES = 10


def read_scored_candidates(
    spark: SparkSession, lake: io.Lake, settings: RecommendConfig
) -> tuple[DataFrame, dict[str, Any]]:
    """Return the candidates with ``score`` and a description of the scorer used."""
    snapshot = settings.snapshot
    fallback_reason = None
    if settings.scorer != "retrieval":
        try:
            from recsys_spark.ranking.artifacts import resolve_version
            from recsys_spark.ranking.scoring import score_candidates

            version = resolve_version(spark, lake, settings.ranker_version)
            scored = score_candidates(spark, lake, snapshot, version)
            return scored, {"scorer": "ranker", "ranker_version": version}
        except (ImportError, FileNotFoundError) as error:
            if settings.scorer == "ranker":
                raise
            fallback_reason = f"{type(error).__name__}: {error}"
            logger.warning("No ranker to score with, using retrieval_score: %s", error)
    candidates = io.read_table(spark, lake.path("candidates", snapshot), f"candidates/{snapshot}")
    scorer = {"scorer": "retrieval_score", "ranker_version": None}
    if fallback_reason:
        scorer["fallback_reason"] = fallback_reason
    return candidates.withColumn(SCORE, F.col(RETRIEVAL_SCORE).cast("double")), scorer


def snapshot_time(video_features: DataFrame, snapshot: str) -> str:
    """Return the snapshot time (``as_of`` of the video features) as an ISO-8601 string."""
    if AS_OF not in video_features.columns:
        raise ValueError(
            f"features/videos/{snapshot} has no {AS_OF!r} column; rerun build_features."
        )
    row = video_features.agg(
        F.date_format(F.max(AS_OF), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").alias("as_of")
    ).first()
    if row["as_of"] is None:
        raise ValueError(f"features/videos/{snapshot} is empty; rerun build_features.")
    return row["as_of"]


def read_embeddings(
    spark: SparkSession, lake: io.Lake, version: Optional[str]
) -> tuple[Optional[DataFrame], Optional[str]]:
    """Return the two-tower video embeddings and their version, or (None, None) if absent."""
    try:
        version = version or two_tower.latest_version(spark, lake)
    except FileNotFoundError as error:
        logger.warning("No two-tower embeddings (%s); similarity uses categories only.", error)
        return None, None
    path = posixpath.join(two_tower.version_path(lake, version), two_tower.EMBEDDINGS_DIR)
    if not io.exists(spark, path):
        logger.warning("No embeddings at %s; similarity uses categories only.", path)
        return None, version
    return io.read_table(spark, path, "two-tower embeddings"), version


def candidates_model_version(scored: DataFrame) -> Optional[str]:
    """Return the two-tower version the candidates were generated with, if recorded."""
    if MODEL_VERSION not in scored.columns:
        return None
    row = scored.select(MODEL_VERSION).where(F.col(MODEL_VERSION).isNotNull()).first()
    return None if row is None else row[MODEL_VERSION]


def build_rule_inputs(
    spark: SparkSession,
    config: Config,
    lake: io.Lake,
    as_of: str,
    video_features: DataFrame,
    clusters: Optional[DataFrame],
    embeddings: Optional[DataFrame],
) -> apply.RuleInputs:
    """Read the raw tables and build every table the rules read besides the candidates.

    The catalog, the pool and the watched pairs are materialised (``localCheckpoint``)
    because every later step reads them; see ``apply.apply_rules`` for why checkpoints
    rather than caches. The embeddings for MMR are collected to the driver and broadcast.
    """
    rules, settings = config.rules, config.recommend
    users = io.read_table(spark, lake.raw(USERS), "raw users")
    videos = io.read_table(spark, lake.raw(VIDEOS), "raw videos")
    interactions = io.read_table(spark, lake.raw(INTERACTIONS), "raw interactions")

    catalog = apply.build_catalog(
        videos, video_features, as_of, rules, clusters, views=VIEWS
    ).localCheckpoint()
    watched_pairs = watched.watched_pairs(interactions, as_of, rules.watched_event_types)
    popularity = backfill.regional_popularity(
        interactions, users, as_of, settings.popularity_days, rules.watched_event_types
    )
    regions = users.select(REGION).unionByName(spark.createDataFrame([(None,)], f"{REGION} string"))
    pool = backfill.backfill_pool(
        catalog, regions, popularity, rules, settings.backfill_pool, views=VIEWS
    ).localCheckpoint()
    active = backfill.active_users(users, interactions, as_of, settings.active_days)
    vectors = None
    if embeddings is not None and rules.diversity.method == "mmr_embedding":
        vectors = spark.sparkContext.broadcast(fairness.UnitVectors.from_frame(embeddings))
    return apply.RuleInputs(
        catalog=catalog,
        users=users.select(USER_ID, REGION),
        watched=watched_pairs.localCheckpoint(),
        pool=pool,
        active_users=active,
        vectors=vectors,
    )


def summarize_lists(lists: DataFrame, audit: DataFrame, k: int) -> dict[str, Any]:
    """Count users, rows, full and short lists, rows per source and short-list reasons."""
    per_user = lists.groupBy(USER_ID).agg(F.count(F.lit(1)).alias("_rows"))
    counts = per_user.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("_rows").alias("rows"),
        F.sum((F.col("_rows") == k).cast("long")).alias("full"),
    ).first()
    per_source = lists.groupBy(SOURCE).agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct(USER_ID).alias("users")
    )
    sources = {row[SOURCE]: (int(row["rows"]), int(row["users"])) for row in per_source.collect()}
    short = audit.where(F.col(apply.ACTION) == apply.SHORT_LIST)
    reasons = {
        row[apply.REASON]: int(row["count"])
        for row in short.groupBy(apply.REASON).count().collect()
    }
    examples = []
    if reasons:
        examples = [
            row.asDict()
            for row in short.select(USER_ID, apply.REASON, apply.LIST_SIZE)
            .orderBy(USER_ID)
            .limit(SHORT_LIST_EXAMPLES)
            .collect()
        ]
    return {
        "users": int(counts["users"]),
        "rows": int(counts["rows"] or 0),
        "users_with_k": int(counts["full"] or 0),
        "short_lists": {
            "users": sum(reasons.values()),
            "reasons": reasons,
            "examples": examples,
        },
        "rows_per_source": {source: rows for source, (rows, _) in sorted(sources.items())},
        "fallback_users": sources.get(backfill.FALLBACK, (0, 0))[1],
        "backfilled_users": sources.get(backfill.BACKFILL, (0, 0))[1],
    }


def exposure(lists: DataFrame, catalog: DataFrame) -> dict[str, Optional[float]]:
    """Return the creator-exposure Gini (4 decimals) and the long-tail share of lists."""
    metrics = fairness.exposure_metrics(lists, catalog)
    share = metrics["long_tail_share"]
    return {
        "creator_gini": round(metrics["creator_gini"], 4),
        "long_tail_share": None if share is None else round(share, 4),
    }


def write_outputs(
    run: Run,
    lists: DataFrame,
    audit: DataFrame,
    clusters: Optional[DataFrame],
    model_version: str,
) -> dict[str, str]:
    """Write the audit, the clusters and, last, the recommendations of this run's date.

    The recommendations come last so that a reader who finds a new recommendations
    partition also finds the audit and clusters of the same run.
    """
    spark, lake = run.spark, run.lake
    generated_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    stamp = [
        F.lit(run.run_id).alias(RUN_ID),
        F.to_timestamp(F.lit(generated_at)).alias("generated_at"),
    ]
    paths = {
        "audit": output.write_partition(audit.select("*", *stamp), lake, output.AUDIT, run.date)
    }
    # With the rule off, an empty partition replaces the clusters of an earlier run.
    if clusters is None:
        clusters = spark.createDataFrame([], f"video_id string, {duplicates.CLUSTER_ID} string")
    paths["clusters"] = output.write_partition(
        clusters.select("video_id", duplicates.CLUSTER_ID, F.lit(run.run_id).alias(RUN_ID)),
        lake,
        output.CLUSTERS,
        run.date,
    )
    recommendations = output.to_recommendations(lists, run.run_id, model_version, generated_at)
    paths["output"] = output.write_partition(
        recommendations, lake, output.RECOMMENDATIONS, run.date
    )
    return paths


def log_summary(summary: dict[str, Any]) -> None:
    short = summary["short_lists"]
    logger.info(
        "Wrote %d recommendations for %d users to %s (%d users with k=%d, %d short, "
        "%d fallback, %d backfilled); audit in %s",
        summary["rows"],
        summary["users"],
        summary["output"],
        summary["users_with_k"],
        summary["k"],
        short["users"],
        summary["fallback_users"],
        summary["backfilled_users"],
        summary["audit"],
    )
    removed = {
        reason: effect["rows"] for reason, effect in summary["rules"].items() if effect["rows"]
    }
    logger.info("Rule effects (rows per reason): %s", removed or "none")


def run(run: Run) -> dict[str, Any]:
    spark, config, lake = run.spark, run.config, run.lake
    settings, rules = config.recommend, config.rules
    snapshot = settings.snapshot

    scored, scorer = read_scored_candidates(spark, lake, settings)
    # Scored once: the rules, the summary and the exposure before the rules read it.
    scored = scored.localCheckpoint()
    video_features = io.read_table(
        spark, lake.features("videos", snapshot), f"features/videos/{snapshot}"
    )
    as_of = snapshot_time(video_features, snapshot)
    candidates_version = candidates_model_version(scored)
    embeddings, two_tower_version = read_embeddings(
        spark, lake, settings.two_tower_version or candidates_version
    )
    model_version = scorer["ranker_version"] or candidates_version or two_tower_version
    if not model_version:
        raise ValueError(
            f"candidates/{snapshot} records no model_version and no model is trained; "
            "rerun generate_candidates."
        )
    logger.info(
        "Recommending from candidates/%s as of %s (scorer %s, two-tower %s)",
        snapshot,
        as_of,
        scorer["scorer"],
        two_tower_version,
    )

    clusters, cluster_stats = None, None
    if rules.duplicates.enabled:
        clusters, cluster_stats = duplicates.cluster_near_duplicates(
            video_features.select("video_id", duplicates.TITLE_TOKENS, "tags"),
            embeddings,
            rules.duplicates,
            config.seed,
        )
    inputs = build_rule_inputs(spark, config, lake, as_of, video_features, clusters, embeddings)
    result = apply.apply_rules(scored, inputs, rules, settings.k, settings.list_depth)
    # Each is written and then summarised by several queries.
    lists = result.lists.localCheckpoint()
    audit = result.audit.localCheckpoint()
    paths = write_outputs(run, lists, audit, clusters, model_version)

    summary: dict[str, Any] = {
        **paths,
        "run_date": run.date,
        "as_of": as_of,
        "snapshot": snapshot,
        "k": settings.k,
        "model_version": model_version,
        "two_tower_version": two_tower_version,
        **scorer,
        **summarize_lists(lists, audit, settings.k),
        "rules": apply.rule_effects(audit, scored.select(USER_ID)),
        "near_duplicates": None if cluster_stats is None else dataclasses.asdict(cluster_stats),
        "exposure": {
            "before_rules": exposure(apply.unfiltered_top_k(scored, settings.k), inputs.catalog),
            "after_rules": exposure(lists, inputs.catalog),
        },
    }
    log_summary(summary)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("recommend", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
