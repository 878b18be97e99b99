"""Per-stage lists and facts for the evaluation: retrieval, ranker, rules, the ANN index.

The lists are ranked (user, video, rank) rows that :mod:`recsys_spark.evaluation.metrics`
scores, one per pipeline stage:

- ``retrieval``: every candidate in ``retrieval_rank`` order (all sources merged);
- ``two_tower``: only the two-tower candidates, by ``retrieval_score``;
- ``ranked``: every candidate by the ranker's ``score``, before any rule;
- ``final``: the recommendations, after the rules.

:func:`ann_tradeoff` and :func:`rule_effects` read the index metadata and the run summary,
which other jobs write as JSON, and return only what the report plots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import (
    RANK,
    RETRIEVAL_RANK,
    RETRIEVAL_SCORE,
    SCORE,
    SOURCES,
    TWO_TOWER,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.evaluation.metrics import rank_by_score, require_columns

STAGES = ("two_tower", "retrieval", "ranked", "final")


def retrieval_lists(candidates: DataFrame) -> DataFrame:
    """Return every candidate ranked by ``retrieval_rank``: ``user_id``, ``video_id``, ``rank``."""
    require_columns(candidates, [USER_ID, VIDEO_ID, RETRIEVAL_RANK], "candidates")
    return candidates.select(USER_ID, VIDEO_ID, F.col(RETRIEVAL_RANK).cast("int").alias(RANK))


def two_tower_lists(candidates: DataFrame, k: int | None = None) -> DataFrame:
    """Return the two-tower candidates ranked by ``retrieval_score`` (ties by video id).

    A candidate counts as two-tower when ``sources`` contains ``two_tower``, also when
    another source is its primary ``source``.
    """
    require_columns(candidates, [USER_ID, VIDEO_ID, SOURCES, RETRIEVAL_SCORE], "candidates")
    two_tower = candidates.where(F.array_contains(SOURCES, TWO_TOWER))
    return rank_by_score(two_tower, score_col=RETRIEVAL_SCORE, k=k).select(USER_ID, VIDEO_ID, RANK)


def ranked_lists(scored: DataFrame, k: int | None = None) -> DataFrame:
    """Return scored candidates ranked by ``score`` (ties by video id), before any rule."""
    require_columns(scored, [USER_ID, VIDEO_ID, SCORE], "scored candidates")
    return rank_by_score(scored, k=k).select(USER_ID, VIDEO_ID, RANK)


def final_lists(recommendations: DataFrame) -> DataFrame:
    """Return the recommendations' ``user_id``, ``video_id``, ``rank``."""
    require_columns(recommendations, [USER_ID, VIDEO_ID, RANK], "recommendations")
    return recommendations.select(USER_ID, VIDEO_ID, F.col(RANK).cast("int").alias(RANK))


def candidate_recall(candidates: DataFrame, relevant: DataFrame) -> DataFrame:
    """Compute the share of each user's relevant items found anywhere in their candidates.

    This is the ceiling that retrieval sets for every later stage.

    Returns:
      One row: ``candidate_recall`` (mean over users with a relevant item; users without
      candidates count 0) and ``users`` (how many users that is).
    """
    require_columns(candidates, [USER_ID, VIDEO_ID], "candidates")
    require_columns(relevant, [USER_ID, VIDEO_ID], "relevant items")
    pairs = relevant.select(USER_ID, VIDEO_ID).distinct()
    found = candidates.select(USER_ID, VIDEO_ID).distinct().withColumn("_found", F.lit(1.0))
    per_user = (
        pairs.join(found, [USER_ID, VIDEO_ID], "left")
        .groupBy(USER_ID)
        .agg(F.avg(F.coalesce(F.col("_found"), F.lit(0.0))).alias("_recall"))
    )
    return per_user.agg(
        F.avg("_recall").alias("candidate_recall"), F.count(F.lit(1)).alias("users")
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _first_number(
    entry: Mapping[str, Any], keys: tuple[str, ...]
) -> tuple[str | None, float | None]:
    for key in keys:
        value = _number(entry.get(key))
        if value is not None:
            return key, value
    return None, None


_RECALL_KEYS = ("recall", "recall_at_k", "recall_at_10", "recall_at_100")
_TIME_KEYS = ("ms_per_query", "query_ms", "latency_ms", "seconds_per_query", "query_seconds")
_SWEEP_KEYS = ("sweep", "tradeoff", "recall_vs_time", "search_sweep")


def ann_tradeoff(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Extract recall-against-exact-search points from index metadata for the report.

    Preferred are (query time, recall) points: a list under ``sweep``, ``tradeoff``,
    ``recall_vs_time`` or ``search_sweep``, or one point at the top level or under
    ``recall``. A point needs a recall (``recall``, ``recall_at_k``, ...) and a query
    time (``ms_per_query``, ``query_ms``, ``latency_ms``, or seconds, converted to ms).
    Without any, the build_index job's ``recall.tuning`` steps give recall against the
    number of leaves searched, which is what query time grows with.

    Returns:
      ``{"x_label", "points": [{"x", "recall", "label"}, ...]}``, or
      ``{"not_available": reason}`` when the metadata has neither.
    """

    def timed_point(entry: Mapping[str, Any], label: str) -> dict[str, Any] | None:
        _, recall = _first_number(entry, _RECALL_KEYS)
        time_key, time_value = _first_number(entry, _TIME_KEYS)
        if recall is None or time_value is None:
            return None
        milliseconds = time_value * 1000.0 if time_key and "seconds" in time_key else time_value
        name = entry.get("label") or entry.get("name") or label
        return {"x": milliseconds, "recall": recall, "label": str(name)}

    time_label = "query time (ms per query)"
    for key in _SWEEP_KEYS:
        entries = metadata.get(key)
        if isinstance(entries, list):
            points = [
                found
                for i, entry in enumerate(entries)
                if isinstance(entry, Mapping) and (found := timed_point(entry, f"{key}[{i}]"))
            ]
            if points:
                return {"x_label": time_label, "points": points}
    recall_section = metadata.get("recall")
    for entry in (metadata, recall_section):
        if isinstance(entry, Mapping) and (found := timed_point(entry, "index")):
            return {"x_label": time_label, "points": [found]}

    steps = recall_section.get("tuning") if isinstance(recall_section, Mapping) else None
    points = []
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, Mapping):
            continue
        leaves = _number(step.get("num_leaves_to_search"))
        recall = _number(step.get("recall"))
        if leaves is not None and recall is not None:
            reorder = step.get("reorder_multiplier")
            points.append({"x": leaves, "recall": recall, "label": f"re-order x{reorder}"})
    if points:
        return {
            "x_label": "leaves searched per query (the metadata records no query time)",
            "points": points,
        }
    return {
        "not_available": "the index metadata has no recall with a query time or search "
        f"setting (keys: {sorted(metadata)[:12]})"
    }


def rule_effects(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Extract rows removed or demoted per rule from a run summary's ``recommend`` stage.

    Returns:
      ``{"rules": {reason: {"action", "rows", "users"}}, "exposure": {...} or None}``,
      or ``{"not_available": reason}`` when the summary has no rule effects.
    """
    stages = summary.get("stages")
    recommend = stages.get("recommend") if isinstance(stages, Mapping) else None
    if not isinstance(recommend, Mapping):
        return {"not_available": "the run summary has no recommend stage"}
    effects = recommend.get("rules")
    if not isinstance(effects, Mapping) or not effects:
        return {"not_available": "the recommend stage recorded no rule effects"}
    rules = {}
    for reason, effect in sorted(effects.items()):
        if isinstance(effect, Mapping):
            rows, users = _number(effect.get("rows")), _number(effect.get("users"))
            rules[str(reason)] = {
                "action": str(effect.get("action") or "removed"),
                "rows": int(rows or 0),
                "users": int(users or 0),
            }
        elif _number(effect) is not None:
            rules[str(reason)] = {"action": "removed", "rows": int(effect), "users": None}
    exposure = recommend.get("exposure")
    return {"rules": rules, "exposure": exposure if isinstance(exposure, Mapping) else None}
