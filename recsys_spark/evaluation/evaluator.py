"""The evaluate job's work: read a run's lists from the lake, compute every metric, and
return the content of ``evaluation/<run_id>/metrics.json``.

Inputs (docs/lake.md): ``recommendations/run_date=...`` (required), the held-out
positives ``training/<evaluate.split>``, ``candidates/<split>``, the selected ranker (to
re-score the candidates), ``training/{train,validation}`` (popularity), the raw videos
(catalog, creators, tags), ``models/index`` metadata and the run summary. Every optional
input that is missing leaves its section as ``{"not_available": reason}``.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark import io, output
from recsys_spark.columns import CREATOR_ID, RANK, USER_ID, VIDEO_ID, VIDEOS
from recsys_spark.evaluation import beyond_accuracy as ba
from recsys_spark.evaluation import stages
from recsys_spark.evaluation.metrics import (
    METRICS,
    evaluate_with_ranking_evaluator,
    metric_column,
    ranking_summary,
    validate_ks,
)
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)

# Largest |ours - RankingEvaluator| accepted before the cross-check logs an error.
CROSS_CHECK_TOLERANCE = 1e-9


def _plain(row: Any | None) -> dict[str, Any]:
    """Return a collected Row as a dict of JSON-safe numbers."""
    if row is None:
        return {}
    values = {}
    for key, value in row.asDict().items():
        values[key] = value if isinstance(value, int) else ba.safe_float(value)
    return values


def _read_optional(spark: SparkSession, path: str, name: str, notes: dict[str, str]):
    """Read a table, or record why it is unavailable and return None."""
    if not io.exists(spark, path):
        notes[name] = f"{path} does not exist"
        return None
    return io.read_table(spark, path, name)


def evaluation_run_date(spark: SparkSession, run: Run) -> str:
    """Return the recommendations partition to evaluate: this run's date, or the newest.

    With ``run_date`` set in the config, that partition must exist. Without it, today's
    partition is used when present (the pipeline just wrote it) and the newest otherwise.
    """
    date = run.date
    if run.config.run_date or io.exists(
        spark, output.partition_path(run.lake, output.RECOMMENDATIONS, date)
    ):
        return date
    return output.latest_run_date(spark, run.lake)


def relevant_pairs(held_out: DataFrame) -> DataFrame:
    """Return the distinct held-out (user_id, video_id) pairs."""
    return held_out.select(USER_ID, VIDEO_ID).distinct()


def accuracy_by_stage(
    lists: dict[str, DataFrame], relevant: DataFrame, ks: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Compute :func:`ranking_summary` for each stage's lists (one Spark job each)."""
    return {
        name: _plain(ranking_summary(stage_lists, relevant, ks).first())
        for name, stage_lists in lists.items()
    }


def differences(
    after: dict[str, Any], before: dict[str, Any], ks: Sequence[int]
) -> dict[str, float | None]:
    """Return ``after - before`` for every metric at every cut-off (None where missing)."""
    result = {}
    for k in ks:
        for name in METRICS:
            key = metric_column(name, k)
            if after.get(key) is None or before.get(key) is None:
                result[key] = None
            else:
                result[key] = after[key] - before[key]
    return result


def beyond_accuracy(
    lists: DataFrame,
    popularity: DataFrame,
    item_features: DataFrame,
    ks: Sequence[int],
    long_tail_percentile: float,
) -> dict[str, Any]:
    """Collect coverage, novelty, popularity bias, long-tail share and diversity."""
    values = _plain(ba.popularity_summary(lists, popularity, ks, long_tail_percentile).first())
    values.update(_plain(ba.intra_list_diversity(lists, item_features, ks).first()))
    return values


def exposure(lists: DataFrame, catalog: DataFrame, unit_col: str, k: int) -> dict[str, Any]:
    """Return the Gini coefficient and Lorenz curve of exposure per ``unit_col``."""
    histogram = [
        (row[ba.EXPOSURE], row[ba.UNITS])
        for row in ba.exposure_histogram(lists, catalog, unit_col, k).collect()
    ]
    units = sum(count for _, count in histogram)
    gini = ba.gini_from_histogram(histogram)
    if gini is None:
        return {"not_available": f"no {unit_col} of the catalog received any exposure"}
    return {
        "k": k,
        "units": units,
        "gini": gini,
        "lorenz": [list(point) for point in ba.lorenz_curve_from_histogram(histogram)],
    }


def cross_check(
    lists: DataFrame, relevant: DataFrame, ks: Sequence[int], ours: dict[str, Any]
) -> dict[str, Any]:
    """Compare our metrics with RankingEvaluator's and log an error when they differ."""
    theirs = evaluate_with_ranking_evaluator(lists, relevant, ks)
    gaps = {
        key: abs(ours[key] - value) for key, value in theirs.items() if ours.get(key) is not None
    }
    largest = max(gaps.values(), default=0.0)
    if largest > CROSS_CHECK_TOLERANCE:
        worst = max(gaps, key=gaps.get)
        logger.error(
            "Metrics differ from pyspark.ml RankingEvaluator by %.3g at %s (ours %s, Spark %s)",
            largest,
            worst,
            ours[worst],
            theirs[worst],
        )
    return {
        "metrics": sorted(theirs),
        "max_abs_difference": largest,
        "agrees": largest <= CROSS_CHECK_TOLERANCE,
    }


def _ann_section(spark: SparkSession, run: Run) -> dict[str, Any]:
    from recsys_spark.retrieval import artifacts

    try:
        version = artifacts.latest_version(spark, run.lake)
        metadata = artifacts.read_metadata(spark, run.lake, version)
    except FileNotFoundError as error:
        return {"not_available": str(error)}
    section = stages.ann_tradeoff(metadata)
    section["index_version"] = version
    return section


def _run_summary(spark: SparkSession, run: Run, evaluated_run_id: str | None) -> dict:
    """Return the summary of the run that wrote the recommendations."""
    if evaluated_run_id is None or evaluated_run_id == run.run_id:
        return {"stages": run.stages}
    path = posixpath.join(run.lake.run(evaluated_run_id), "summary.json")
    if not io.exists(spark, path):
        return {}
    return io.read_json(spark, path)


def _scored_candidates(spark: SparkSession, run: Run, snapshot: str, notes: dict[str, str]):
    if not run.config.evaluate.score_ranker:
        notes["ranked"] = "evaluate.score_ranker is false"
        return None
    from recsys_spark.ranking.scoring import score_candidates

    try:
        return score_candidates(spark, run.lake, snapshot)
    except FileNotFoundError as error:
        notes["ranked"] = f"no ranker to score the candidates: {error}"
        return None


def _popularity_basis(spark: SparkSession, run: Run, notes: dict[str, str]) -> DataFrame:
    """Return the interactions that define popularity: training positives before the test.

    Uses ``training/train`` plus ``training/validation``, which together are everything
    before the test snapshot's cut-off. When both are missing, it falls back to all raw
    interactions and records that in ``notes``.
    """
    parts = []
    for split in ("train", "validation"):
        path = run.lake.training(split)
        if io.exists(spark, path):
            parts.append(io.read_table(spark, path, f"training/{split}").select(USER_ID, VIDEO_ID))
    if parts:
        basis = parts[0]
        for part in parts[1:]:
            basis = basis.unionByName(part)
        return basis
    notes["popularity"] = "training/train is missing, so popularity counts all raw interactions"
    return io.read_table(spark, run.lake.raw("interactions"), "raw interactions").select(
        USER_ID, VIDEO_ID
    )


def evaluate_run(run: Run) -> dict[str, Any]:
    """Compute the whole metrics.json content for the run's recommendations."""
    spark, settings = run.spark, run.config.evaluate
    ks = validate_ks(settings.ks)
    split = settings.split
    notes: dict[str, str] = {}

    run_date = evaluation_run_date(spark, run)
    recommendations = output.read_partition(spark, run.lake, output.RECOMMENDATIONS, run_date)
    recommendations = recommendations.persist(StorageLevel.MEMORY_AND_DISK)
    first = recommendations.select("run_id", "model_version").first()
    if first is None:
        raise ValueError(
            f"recommendations for run_date {run_date} are empty; rerun the recommend job."
        )
    evaluated_run_id, model_version = first["run_id"], first["model_version"]
    final = stages.final_lists(recommendations)
    list_length = recommendations.agg(F.max(RANK)).first()[0]

    held_out = _read_optional(spark, run.lake.training(split), f"training/{split}", notes)
    relevant = None
    if held_out is not None:
        relevant = relevant_pairs(held_out).persist(StorageLevel.MEMORY_AND_DISK)
        if relevant.isEmpty():
            notes[f"training/{split}"] = f"training/{split} has no held-out positives"
            relevant.unpersist()
            relevant = None

    candidates_path = posixpath.join(run.lake.candidates(), split)
    candidates = _read_optional(spark, candidates_path, f"candidates/{split}", notes)
    scored = None
    if candidates is not None:
        candidates = candidates.persist(StorageLevel.MEMORY_AND_DISK)
        scored = _scored_candidates(spark, run, split, notes)
        if scored is not None:
            scored = scored.persist(StorageLevel.MEMORY_AND_DISK)

    lists = {"final": final}
    if candidates is not None:
        lists["two_tower"] = stages.two_tower_lists(candidates, k=max(ks))
        lists["retrieval"] = stages.retrieval_lists(candidates)
    if scored is not None:
        lists["ranked"] = stages.ranked_lists(scored, k=max(ks))

    metrics: dict[str, Any] = {
        "run_id": run.run_id,
        "evaluated_run_id": evaluated_run_id,
        "model_version": model_version,
        "run_date": run_date,
        "split": split,
        "ks": list(ks),
        "list_length": list_length,
        "stages_evaluated": sorted(lists),
    }

    if relevant is not None:
        accuracy = accuracy_by_stage(lists, relevant, ks)
        metrics["accuracy"] = accuracy
        gains = {}
        if "ranked" in accuracy and "retrieval" in accuracy:
            gains["ranker_gain_over_retrieval"] = differences(
                accuracy["ranked"], accuracy["retrieval"], ks
            )
        if "ranked" in accuracy:
            gains["rules_cost"] = differences(accuracy["final"], accuracy["ranked"], ks)
        metrics["stage_gains"] = gains
        if candidates is not None:
            metrics["candidate_recall"] = _plain(
                stages.candidate_recall(candidates, relevant).first()
            )
        if settings.cross_check:
            metrics["cross_check"] = cross_check(final, relevant, ks, accuracy["final"])
    else:
        metrics["accuracy"] = {"not_available": notes.get(f"training/{split}", "no held-out data")}

    videos = io.read_table(spark, run.lake.raw(VIDEOS), "raw videos")
    catalog = videos.select(VIDEO_ID, CREATOR_ID)
    popularity = ba.item_popularity(_popularity_basis(spark, run, notes), catalog).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    features = ba.item_feature_sets(videos)
    before_rules = {"final": final}
    if scored is not None:
        before_rules["ranked"] = lists["ranked"]
    metrics["beyond_accuracy"] = {
        name: beyond_accuracy(stage_lists, popularity, features, ks, settings.long_tail_percentile)
        for name, stage_lists in before_rules.items()
    }
    exposure_k = min(max(ks), list_length)
    creators_known = catalog.where(F.col(CREATOR_ID).isNotNull()).limit(1).count() > 0
    metrics["exposure"] = {}
    for name, stage_lists in before_rules.items():
        metrics["exposure"][name] = {
            "video": exposure(stage_lists, catalog, VIDEO_ID, exposure_k),
            "creator": exposure(stage_lists, catalog, CREATOR_ID, exposure_k)
            if creators_known
            else {"not_available": "no video in the catalog has a creator_id"},
        }
    metrics["popularity_profile"] = {
        "k": exposure_k,
        "bins": [
            row.asDict()
            for row in ba.popularity_profile(
                final, popularity, exposure_k, settings.popularity_bins
            )
            .orderBy("bin")
            .collect()
        ],
    }
    metrics["ann"] = _ann_section(spark, run)
    metrics["rules"] = stages.rule_effects(_run_summary(spark, run, evaluated_run_id))
    metrics["not_available"] = notes

    for frame in (recommendations, relevant, candidates, scored, popularity):
        if frame is not None:
            frame.unpersist()
    return metrics
