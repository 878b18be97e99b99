"""Helpers for the Databricks source-format notebooks in ``notebooks/``.

The notebooks take their parameters from widgets and call into the package. On
Databricks, ``dbutils`` and ``spark`` are provided by the platform; elsewhere
:func:`run_notebook` executes a notebook file cell by cell with :class:`LocalDbutils`,
whose widgets return their defaults (or values passed in), and the session from
:func:`recsys_spark.session.get_spark`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from recsys_spark import io
from recsys_spark.columns import (
    BLOCKED_REGIONS,
    CATEGORY,
    INTERACTIONS,
    MISINFORMATION,
    RANK,
    REASON,
    SCORE,
    SOURCE,
    TAGS,
    TITLE,
    USER_ID,
    USERS,
    VIDEO_ID,
    VIDEOS,
)
from recsys_spark.config import load_config
from recsys_spark.io import Lake
from recsys_spark.postprocess.apply import ACTION, SHORT_LIST
from recsys_spark.postprocess.duplicates import EMBEDDING
from recsys_spark.postprocess.fairness import RULE_SCORE
from recsys_spark.settings import Config

logger = logging.getLogger(__name__)

COMMAND_SEPARATOR = "# COMMAND ----------"
HEADER = "# Databricks notebook source"


class LocalWidgets:
    """The subset of ``dbutils.widgets`` the notebooks use, backed by a dict."""

    def __init__(self, values: Optional[Mapping[str, str]] = None):
        self._values = dict(values or {})
        self._defined: dict[str, str] = {}

    def text(self, name: str, default_value: str, label: Optional[str] = None) -> None:
        self._defined[name] = self._values.get(name, default_value)

    def dropdown(
        self, name: str, default_value: str, choices: Sequence[str], label: Optional[str] = None
    ) -> None:
        value = self._values.get(name, default_value)
        if value not in choices:
            raise ValueError(f"Widget {name!r} got {value!r}; choose one of {list(choices)}.")
        self._defined[name] = value

    def is_defined(self, name: str) -> bool:
        return name in self._defined

    def get(self, name: str) -> str:
        if name not in self._defined:
            raise ValueError(f"Widget {name!r} is not defined; define it before reading it.")
        return self._defined[name]


class LocalDbutils:
    """Stands in for Databricks' ``dbutils`` object outside Databricks (widgets only)."""

    def __init__(self, values: Optional[Mapping[str, str]] = None):
        self.widgets = LocalWidgets(values)


def config_from_widgets(dbutils: Any, overrides: Sequence[str] = ()) -> Config:
    """Build the run config from the standard widgets (config files, lake root, size).

    The notebooks define ``config`` (comma-separated overlay names), ``lake_root`` and
    ``data_size`` widgets; anything else goes through ``overrides``.
    """
    files = [f.strip() for f in dbutils.widgets.get("config").split(",") if f.strip()]
    sets = [
        f"lake.root={dbutils.widgets.get('lake_root')}",
        f"data.size={dbutils.widgets.get('data_size')}",
        *overrides,
    ]
    return load_config(files, sets)


def split_cells(source: str) -> list[str]:
    """Split a Databricks source-format notebook into the code of each cell.

    ``# MAGIC`` lines (markdown and other magics) are dropped, because they are not Python.
    """
    if not source.startswith(HEADER):
        raise ValueError(f"Not a Databricks source notebook: the first line must be {HEADER!r}.")
    cells = []
    for chunk in source[len(HEADER) :].split(COMMAND_SEPARATOR):
        lines = [line for line in chunk.splitlines() if not re.match(r"^# MAGIC\b", line)]
        code = "\n".join(lines).strip()
        if code:
            cells.append(code)
    return cells


def run_notebook(path: str | Path, widget_values: Optional[Mapping[str, str]] = None) -> dict:
    """Execute a notebook top to bottom outside Databricks and return its namespace.

    Raises the first cell's exception, with the cell number added to the message.
    """
    from recsys_spark.session import get_spark

    path = Path(path)
    dbutils = LocalDbutils(widget_values)
    namespace: dict[str, Any] = {
        "__name__": "__notebook__",
        "dbutils": dbutils,
        "display": _display,
    }
    cells = split_cells(path.read_text(encoding="utf-8"))
    for number, code in enumerate(cells, start=1):
        logger.info("%s: cell %d of %d", path.name, number, len(cells))
        try:
            # On Databricks the session exists before the first cell; here it is built
            # from the widgets' config as soon as the parameter cell has defined them.
            if "spark" not in namespace and dbutils.widgets.is_defined("config"):
                namespace["spark"] = get_spark(config_from_widgets(dbutils))
            exec(compile(code, f"{path.name}[cell {number}]", "exec"), namespace)
        except Exception as error:
            raise RuntimeError(f"{path.name}: cell {number} failed: {error}") from error
    return namespace


def _display(value: Any, limit: int = 20) -> None:
    """Show a DataFrame or figure the way a notebook would, in plain text."""
    if hasattr(value, "limit") and hasattr(value, "toPandas"):
        logger.info("\n%s", value.limit(limit).toPandas().to_string())
    else:
        logger.info("%s", value)


# Helpers the notebooks call: small summaries of lake tables for a first look. Each
# returns a DataFrame (or a plain value) for ``display``; none writes anything.


def split_overrides(text: str) -> list[str]:
    """Split the ``overrides`` widget into ``dotted.key=value`` items.

    Items are separated by ``;`` because list values contain commas, for example
    ``two_tower.epochs=1; ranker.models=[logistic_regression]``.
    """
    return [item.strip() for item in text.split(";") if item.strip()]


def ingest_counts(spark: SparkSession, summary: Mapping[str, Any]) -> DataFrame:
    """Return the ingest job's per-table counts as rows: table, read, loaded, quarantined."""
    rows = [
        (name, counts["read"], counts["loaded"], counts["quarantined"])
        for name, counts in summary["tables"].items()
    ]
    return spark.createDataFrame(rows, "table string, read long, loaded long, quarantined long")


def quarantine_reasons(spark: SparkSession, lake: Lake) -> DataFrame:
    """Count the quarantined rows per table and reason (tables without a quarantine skipped).

    Returns:
      ``table``, ``reason``, ``rows``, most rows first.
    """
    counts = spark.createDataFrame([], "table string, reason string, rows long")
    for table in (USERS, VIDEOS, INTERACTIONS):
        path = lake.quarantine(table)
        if io.exists(spark, path):
            by_reason = (
                spark.read.parquet(path)
                .groupBy(REASON)
                .agg(F.count(F.lit(1)).alias("rows"))
                .select(F.lit(table).alias("table"), REASON, "rows")
            )
            counts = counts.unionByName(by_reason)
    return counts.orderBy(F.desc("rows"), "table", REASON)


def long_tail(
    interactions: DataFrame, key: str, top_shares: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.5)
) -> DataFrame:
    """Return the share of events that the most active ``key`` values account for.

    With ``key="video_id"`` this is the popularity long tail, with ``key="user_id"`` the
    activity skew. Only values with at least one event count.

    Args:
      interactions: A ``key`` column, one row per event.
      key: The column to rank by event count (ties by the key's value).
      top_shares: Fractions of the ranked values, each in (0, 1].

    Returns:
      ``top_share``, ``top_values`` (ceil(top_share x values), at least 1), ``values``,
      ``event_share`` (events of the top values / all events); one row per top share.

    Note:
      The ranking is one window over every distinct value, which Spark computes in a single
      partition: fine for millions of videos or users, not for billions.
    """
    for share in top_shares:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"top_shares must be in (0, 1], got {share}.")
    counts = interactions.groupBy(key).agg(F.count(F.lit(1)).alias("_events"))
    ranking = Window.orderBy(F.desc("_events"), F.asc(key))
    ranked = counts.select(
        F.row_number().over(ranking).alias("_rank"),
        F.sum("_events")
        .over(ranking.rowsBetween(Window.unboundedPreceding, Window.currentRow))
        .alias("_cumulative"),
    )
    totals = counts.agg(F.count(F.lit(1)).alias("values"), F.sum("_events").alias("_total"))
    cuts = totals.select(
        "values",
        "_total",
        F.explode(F.array(*[F.lit(float(share)) for share in top_shares])).alias("top_share"),
    ).withColumn("top_values", F.greatest(F.lit(1), F.ceil(F.col("top_share") * F.col("values"))))
    return (
        cuts.join(ranked, F.col("_rank") == F.col("top_values"))
        .select(
            "top_share",
            F.col("top_values").cast("long").alias("top_values"),
            "values",
            (F.col("_cumulative") / F.col("_total")).alias("event_share"),
        )
        .orderBy("top_share")
    )


def events_per_value(interactions: DataFrame, key: str) -> DataFrame:
    """Return the distribution of events per ``key`` value (per user, per video...).

    Returns:
      One row: ``values``, ``events``, ``mean``, ``min``, ``p50``, ``p90``, ``p99``
      (approximate percentiles), ``max``.
    """
    counts = interactions.groupBy(key).agg(F.count(F.lit(1)).alias("_events"))
    percentiles = F.percentile_approx("_events", [0.5, 0.9, 0.99])
    return counts.agg(
        F.count(F.lit(1)).alias("values"),
        F.sum("_events").alias("events"),
        F.mean("_events").alias("mean"),
        F.min("_events").alias("min"),
        percentiles[0].alias("p50"),
        percentiles[1].alias("p90"),
        percentiles[2].alias("p99"),
        F.max("_events").alias("max"),
    )


def catalog_flags(videos: DataFrame) -> DataFrame:
    """Count the videos blocked in some region, flagged as misinformation, or not reviewed.

    Args:
      videos: ``blocked_regions`` (array<string>), ``misinformation`` (boolean, null = not
        reviewed).

    Returns:
      One row: ``videos``, then ``blocked``, ``misinformation``, ``unreviewed`` and each
      one's ``_share`` of the videos.
    """
    flags = {
        "blocked": F.coalesce(F.size(BLOCKED_REGIONS), F.lit(0)) > 0,
        "misinformation": F.coalesce(F.col(MISINFORMATION), F.lit(False)),
        "unreviewed": F.col(MISINFORMATION).isNull(),
    }
    counts = videos.agg(
        F.count(F.lit(1)).alias("videos"),
        *[F.count(F.when(flag, True)).alias(name) for name, flag in flags.items()],
    )
    return counts.select(
        "*", *[(F.col(name) / F.col("videos")).alias(f"{name}_share") for name in flags]
    )


def most_watched_video(interactions: DataFrame) -> str:
    """Return the video with the most events (ties by video_id): a default example video."""
    row = (
        interactions.groupBy(VIDEO_ID)
        .agg(F.count(F.lit(1)).alias("_events"))
        .orderBy(F.desc("_events"), VIDEO_ID)
        .first()
    )
    if row is None:
        raise ValueError("interactions is empty; run ingest on a source with events first.")
    return row[VIDEO_ID]


def nearest_videos(embeddings: DataFrame, video_id: str, k: int = 10) -> DataFrame:
    """Return the ``k`` videos whose embeddings have the largest dot product with a video's.

    The two-tower embeddings are L2-normalised, so the dot product is the cosine
    similarity. This is an exact scan of every embedding, meant for inspecting one video.

    Args:
      embeddings: ``video_id``, ``embedding`` (array<float>), as exported by train_two_tower.
      video_id: The query video; the result is empty when it has no embedding.
      k: Neighbours returned.

    Returns:
      ``video_id``, ``similarity`` (double), most similar first (ties by video_id),
      without the query video itself.
    """
    query = embeddings.where(F.col(VIDEO_ID) == video_id).select(F.col(EMBEDDING).alias("_query"))
    products = F.zip_with(EMBEDDING, "_query", lambda x, y: x.cast("double") * y.cast("double"))
    similarity = F.aggregate(products, F.lit(0.0), lambda total, value: total + value)
    return (
        embeddings.where(F.col(VIDEO_ID) != video_id)
        .crossJoin(F.broadcast(query))
        .select(VIDEO_ID, similarity.alias("similarity"))
        .orderBy(F.desc("similarity"), VIDEO_ID)
        .limit(k)
    )


def example_user(audit: DataFrame) -> str:
    """Return the user with the most rule decisions in an audit (ties by user_id).

    Args:
      audit: ``user_id``, ``action`` (the recommendations_audit table).
    """
    row = (
        audit.where(F.col(ACTION) != SHORT_LIST)
        .groupBy(USER_ID)
        .agg(F.count(F.lit(1)).alias("_decisions"))
        .orderBy(F.desc("_decisions"), USER_ID)
        .first()
    )
    if row is None:
        raise ValueError("The audit has no rule decision; pass a user_id explicitly.")
    return row[USER_ID]


def with_titles(rows: DataFrame, videos: DataFrame) -> DataFrame:
    """Add each row's video ``title`` and ``category`` from a video table (by video_id)."""
    return rows.join(videos.select(VIDEO_ID, TITLE, CATEGORY), VIDEO_ID, "left")


def describe_video(videos: DataFrame, video_id: str) -> DataFrame:
    """Return one video's ``video_id``, ``title``, ``category`` and ``tags``."""
    return videos.where(F.col(VIDEO_ID) == video_id).select(VIDEO_ID, TITLE, CATEGORY, TAGS)


def video_neighbours(
    embeddings: DataFrame, videos: DataFrame, video_id: str, k: int = 10
) -> DataFrame:
    """Return :func:`nearest_videos` with titles and categories, most similar first."""
    neighbours = with_titles(nearest_videos(embeddings, video_id, k), videos)
    return neighbours.select(VIDEO_ID, TITLE, CATEGORY, "similarity").orderBy(
        F.desc("similarity"), VIDEO_ID
    )


def user_list(recommendations: DataFrame, videos: DataFrame, user_id: str) -> DataFrame:
    """Return one user's recommendations with titles: rank, video, score, source."""
    rows = recommendations.where(F.col(USER_ID) == user_id)
    return (
        with_titles(rows, videos)
        .select(RANK, VIDEO_ID, TITLE, CATEGORY, SCORE, SOURCE)
        .orderBy(RANK)
    )


def user_decisions(audit: DataFrame, videos: DataFrame, user_id: str) -> DataFrame:
    """Return the rule decisions about one user's candidates, with titles.

    Args:
      audit: The recommendations_audit table: ``user_id``, ``video_id``, ``action``,
        ``reason``, ``rule_score``, ``source``.

    Returns:
      ``action`` (removed, demoted, short_list), ``reason``, ``video_id``, ``title``,
      ``category``, ``rule_score``, ``source``.
    """
    rows = audit.where(F.col(USER_ID) == user_id)
    return (
        with_titles(rows, videos)
        .select(ACTION, REASON, VIDEO_ID, TITLE, CATEGORY, RULE_SCORE, SOURCE)
        .orderBy(ACTION, REASON, VIDEO_ID)
    )


def audit_reasons(audit: DataFrame) -> DataFrame:
    """Count audit rows per action and reason, and the users they touch.

    Returns:
      ``action``, ``reason``, ``rows``, ``users``, most rows first.
    """
    return (
        audit.groupBy(ACTION, REASON)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(USER_ID).alias("users"))
        .orderBy(F.desc("rows"), ACTION, REASON)
    )


def accuracy_table(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flatten ``metrics.json``'s accuracy section into one row per stage.

    Returns:
      Dicts with ``stage`` and every ``<metric>_at_<K>`` and count of that stage; empty
      when the evaluation had no held-out data.
    """
    accuracy = metrics.get("accuracy", {})
    return [
        {"stage": stage, **values}
        for stage, values in accuracy.items()
        if isinstance(values, Mapping)
    ]


def evaluation_figures(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Draw every plot of the evaluation report from ``metrics.json``.

    Returns:
      Title to matplotlib Figure, or to the reason the plot is not available.
    """
    from recsys_spark.evaluation import report

    figures: dict[str, Any] = {}
    for title, plot in report.PLOTS:
        try:
            figures[title] = plot(metrics)
        except report.NotAvailable as reason:
            figures[title] = f"not available: {reason}"
    return figures
