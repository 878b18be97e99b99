"""Beyond-accuracy metrics on Spark: coverage, novelty, popularity bias, diversity, exposure.

Every function takes recommendations as (user, item, rank) rows and returns a small
DataFrame; the evaluate job collects those. Exposure inequality is summarised from an
exposure histogram (one row per distinct exposure count), which stays small whatever the
catalog size, by the pure functions :func:`gini_from_histogram` and
:func:`lorenz_curve_from_histogram`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import RANK, USER_ID, VIDEO_ID
from recsys_spark.evaluation.metrics import metric_column, require_columns, validate_ks

POPULARITY = "popularity"
POPULARITY_PERCENTILE = "popularity_percentile"
SELF_INFORMATION = "self_information"
FEATURES = "features"
EXPOSURE = "exposure"
UNITS = "units"


def item_popularity(
    interactions: DataFrame,
    catalog: DataFrame,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
) -> DataFrame:
    """Compute each catalog item's popularity, popularity percentile and self-information.

    Popularity is the number of distinct users who interacted with the item. The
    percentile is the mid-rank: (items less popular + half the items equally popular) /
    catalog size, so it lies in [0, 1) and a uniformly random item has mean 0.5.
    Self-information is -log2((popularity + 1) / (users + 1)) bits, the item's novelty.
    The +1 smoothing gives an item without interactions a finite value.

    Args:
      interactions: The training interactions: ``user_col``, ``item_col``.
      catalog: Every recommendable item: ``item_col`` (duplicates are ignored).

    Returns:
      One row per catalog item: ``item_col``, ``popularity`` (long),
      ``popularity_percentile`` (double), ``self_information`` (double).
    """
    require_columns(interactions, [user_col, item_col], "interactions")
    require_columns(catalog, [item_col], "catalog")
    counts = interactions.groupBy(item_col).agg(F.countDistinct(user_col).alias(POPULARITY))
    users = interactions.agg(F.countDistinct(user_col).alias("_users"))
    items = (
        catalog.select(item_col)
        .distinct()
        .join(counts, item_col, "left")
        .withColumn(POPULARITY, F.coalesce(F.col(POPULARITY), F.lit(0)).cast("long"))
    )
    # One row per distinct popularity value, few enough to rank on the driver: the
    # percentile is the share of less popular items plus half of the tied ones.
    levels = sorted(
        (row[POPULARITY], row["_items"])
        for row in items.groupBy(POPULARITY).agg(F.count(F.lit(1)).alias("_items")).collect()
    )
    catalog_size = sum(count for _, count in levels)
    percentiles, less_popular = [], 0
    for popularity, count in levels:
        percentiles.append((popularity, (less_popular + count / 2.0) / catalog_size))
        less_popular += count
    histogram = interactions.sparkSession.createDataFrame(
        percentiles, f"{POPULARITY} long, _percentile double"
    )
    percentile = F.col("_percentile")
    self_information = -F.log2((F.col(POPULARITY) + 1.0) / (F.col("_users") + 1.0))
    return (
        items.join(histogram, POPULARITY)
        .crossJoin(users)
        .select(
            item_col,
            POPULARITY,
            percentile.cast("double").alias(POPULARITY_PERCENTILE),
            self_information.cast("double").alias(SELF_INFORMATION),
        )
    )


def _top(recommendations: DataFrame, k: int, user_col: str, item_col: str, rank_col: str):
    require_columns(recommendations, [user_col, item_col, rank_col], "recommendations")
    return recommendations.where(F.col(rank_col) <= k).select(user_col, item_col, rank_col)


def popularity_summary(
    recommendations: DataFrame,
    popularity: DataFrame,
    ks: Sequence[int] = (10, 50, 100),
    long_tail_percentile: float = 0.8,
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Compute catalog coverage, novelty, popularity bias and long-tail share at each K.

    Args:
      recommendations: ``user_col``, ``item_col``, ``rank_col`` (1-based).
      popularity: The output of :func:`item_popularity`; its items are the catalog.
      long_tail_percentile: Items below this popularity percentile are the long tail.

    Returns:
      One row with these columns for each K:

      - ``catalog_coverage_at_K``: distinct catalog items in the first K of any list,
        over the catalog size.
      - ``novelty_at_K``: mean self-information in bits over recommended slots.
      - ``popularity_percentile_at_K``: mean popularity percentile over slots. This is
        the popularity bias, 0.5 for uniformly random lists.
      - ``long_tail_share_at_K``: share of slots below ``long_tail_percentile``.
      - ``unknown_item_slots_at_K``: slots whose item is not in the catalog. They are
        left out of the means.
    """
    ks = validate_ks(ks)
    require_columns(popularity, [item_col, POPULARITY_PERCENTILE, SELF_INFORMATION], "popularity")
    slots = _top(recommendations, max(ks), user_col, item_col, rank_col).join(
        popularity.withColumn("_known", F.lit(True)), item_col, "left"
    )
    catalog_size = popularity.agg(F.count(F.lit(1)).alias("_catalog_size"))
    known = F.col("_known").isNotNull()
    aggregates = []
    for k in ks:
        in_k = F.col(rank_col) <= k
        aggregates += [
            F.countDistinct(F.when(in_k & known, F.col(item_col))).alias(f"_items_{k}"),
            F.avg(F.when(in_k, F.col(SELF_INFORMATION))).alias(metric_column("novelty", k)),
            F.avg(F.when(in_k, F.col(POPULARITY_PERCENTILE))).alias(
                metric_column("popularity_percentile", k)
            ),
            F.avg(
                F.when(
                    in_k & known,
                    (F.col(POPULARITY_PERCENTILE) < long_tail_percentile).cast("double"),
                )
            ).alias(metric_column("long_tail_share", k)),
            F.count(F.when(in_k & ~known, 1)).alias(metric_column("unknown_item_slots", k)),
        ]
    summary = slots.agg(*aggregates).crossJoin(catalog_size)
    columns = []
    for k in ks:
        coverage = F.col(f"_items_{k}") / F.col("_catalog_size")
        columns += [
            coverage.cast("double").alias(metric_column("catalog_coverage", k)),
            metric_column("novelty", k),
            metric_column("popularity_percentile", k),
            metric_column("long_tail_share", k),
            metric_column("unknown_item_slots", k),
        ]
    return summary.select(*columns)


def item_feature_sets(
    videos: DataFrame,
    tag_col: str = "tags",
    category_col: str | None = "category",
    item_col: str = VIDEO_ID,
) -> DataFrame:
    """Build each item's feature set for diversity: its tags plus ``category:<name>``.

    Returns:
      ``item_col``, ``features`` (array<string>, distinct, possibly empty).
    """
    require_columns(videos, [item_col, tag_col], "videos")
    parts = [F.coalesce(F.col(tag_col), F.array().cast("array<string>"))]
    if category_col is not None and category_col in videos.columns:
        category = F.when(
            F.col(category_col).isNotNull(), F.array(F.concat(F.lit("category:"), category_col))
        ).otherwise(F.array().cast("array<string>"))
        parts.append(category)
    return videos.select(item_col, F.array_distinct(F.concat(*parts)).alias(FEATURES))


def intra_list_diversity(
    recommendations: DataFrame,
    item_features: DataFrame,
    ks: Sequence[int] = (10, 50, 100),
    user_col: str = USER_ID,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Compute the mean intra-list diversity at each K: 1 - mean pairwise cosine similarity.

    Each item is the unit-length binary vector of its feature set, so the cosine of two
    items is |A ∩ B| / sqrt(|A| |B|). The mean over the n(n-1) ordered pairs of a list is
    (|sum of vectors|^2 - n) / (n(n-1)), which costs O(list length x features) rather
    than O(list length^2).

    Args:
      recommendations: ``user_col``, ``item_col``, ``rank_col``.
      item_features: The output of :func:`item_feature_sets`.

    Returns:
      One row with ``intra_list_diversity_at_K`` (mean over lists with at least two
      items that have features) and ``diversity_lists_at_K`` (how many lists that is).
      Items without features are left out of their list.
    """
    ks = validate_ks(ks)
    require_columns(item_features, [item_col, FEATURES], "item features")
    weighted = item_features.where(F.size(FEATURES) > 0).select(
        item_col,
        F.explode(FEATURES).alias("_feature"),
        (1.0 / F.sqrt(F.size(FEATURES).cast("double"))).alias("_weight"),
    )
    slots = _top(recommendations, max(ks), user_col, item_col, rank_col)
    entries = slots.join(weighted, item_col)

    # Sum of the item vectors per (user, feature), for each K.
    feature_sums = entries.groupBy(user_col, "_feature").agg(
        *[
            F.sum(F.when(F.col(rank_col) <= k, F.col("_weight")).otherwise(0.0)).alias(f"_s{k}")
            for k in ks
        ]
    )
    squared_norms = feature_sums.groupBy(user_col).agg(
        *[F.sum(F.col(f"_s{k}") * F.col(f"_s{k}")).alias(f"_norm{k}") for k in ks]
    )
    with_features = slots.join(item_features.where(F.size(FEATURES) > 0).select(item_col), item_col)
    sizes = with_features.groupBy(user_col).agg(
        *[F.count(F.when(F.col(rank_col) <= k, 1)).alias(f"_n{k}") for k in ks]
    )
    per_user = sizes.join(squared_norms, user_col)
    aggregates = []
    for k in ks:
        n = F.col(f"_n{k}")
        similarity = (F.col(f"_norm{k}") - n) / (n * (n - 1))
        diversity = F.when(n >= 2, 1.0 - similarity)
        aggregates += [
            F.avg(diversity).alias(metric_column("intra_list_diversity", k)),
            F.count(diversity).alias(metric_column("diversity_lists", k)),
        ]
    return per_user.agg(*aggregates)


def exposure_histogram(
    recommendations: DataFrame,
    catalog: DataFrame,
    unit_col: str,
    k: int,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Count how many catalog units (creators, or items) received each exposure count.

    Exposure is the number of recommendation slots in the first ``k`` of every list that
    went to the unit's items. Every non-null unit of the catalog is counted, including
    those never recommended (exposure 0). Slots of items without a unit, or outside the
    catalog, are left out.

    Args:
      recommendations: ``item_col``, ``rank_col``.
      catalog: ``item_col`` and ``unit_col`` (may be the same column).

    Returns:
      ``exposure`` (long), ``units`` (long): one row per distinct exposure count.
    """
    require_columns(recommendations, [item_col, rank_col], "recommendations")
    require_columns(catalog, [item_col, unit_col], "catalog")
    item_units = (
        catalog.select(item_col, F.col(unit_col).alias("_unit"))
        .where(F.col("_unit").isNotNull())
        .dropDuplicates([item_col])
    )
    exposed = (
        recommendations.where(F.col(rank_col) <= k)
        .select(item_col)
        .join(item_units, item_col)
        .groupBy("_unit")
        .agg(F.count(F.lit(1)).alias(EXPOSURE))
    )
    units = item_units.select("_unit").distinct()
    return (
        units.join(exposed, "_unit", "left")
        .select(F.coalesce(F.col(EXPOSURE), F.lit(0)).cast("long").alias(EXPOSURE))
        .groupBy(EXPOSURE)
        .agg(F.count(F.lit(1)).alias(UNITS))
    )


def _sorted_histogram(histogram: Iterable[tuple[float, int]]) -> list[tuple[float, int]]:
    rows = sorted((float(value), int(count)) for value, count in histogram if count)
    if any(value < 0 for value, _ in rows):
        raise ValueError(f"Exposure values must be non-negative, got {rows[:5]}.")
    return rows


def gini_from_histogram(histogram: Iterable[tuple[float, int]]) -> float | None:
    """Return the Gini coefficient of a distribution given as (value, how many) pairs.

    With the n values sorted ascending, G = sum_i (2i - n - 1) x_i / (n sum_i x_i), which
    is 0 for equal exposure and (n - 1) / n when one unit gets everything. A run of c
    equal values at ranks a..b contributes x c (a + b - n - 1).

    Returns:
      The coefficient, or None when there are no units or every value is 0.
    """
    rows = _sorted_histogram(histogram)
    n = sum(count for _, count in rows)
    total = sum(value * count for value, count in rows)
    if n == 0 or total == 0:
        return None
    weighted = 0.0
    below = 0
    for value, count in rows:
        first, last = below + 1, below + count
        weighted += value * count * (first + last - n - 1)
        below = last
    return weighted / (n * total)


def lorenz_curve_from_histogram(
    histogram: Iterable[tuple[float, int]],
) -> list[tuple[float, float]] | None:
    """Return the Lorenz curve's corners: (share of units, share of exposure), from (0, 0).

    Units are taken from least to most exposed; between two corners the curve is a
    straight line, so the corners describe it exactly.

    Returns:
      The points, or None when there are no units or every value is 0.
    """
    rows = _sorted_histogram(histogram)
    n = sum(count for _, count in rows)
    total = sum(value * count for value, count in rows)
    if n == 0 or total == 0:
        return None
    points = [(0.0, 0.0)]
    units = 0
    exposure = 0.0
    for value, count in rows:
        units += count
        exposure += value * count
        points.append((units / n, exposure / total))
    return points


def popularity_profile(
    recommendations: DataFrame,
    popularity: DataFrame,
    k: int,
    bins: int = 10,
    item_col: str = VIDEO_ID,
    rank_col: str = RANK,
) -> DataFrame:
    """Compare how catalog items and recommended slots spread over popularity-percentile bins.

    Returns:
      One row per bin: ``bin`` (0 = least popular), ``catalog_share`` (share of catalog
      items in the bin) and ``recommendation_share`` (share of the slots in the first
      ``k`` of all lists). Bins without items or slots are absent.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}.")
    require_columns(popularity, [item_col, POPULARITY_PERCENTILE], "popularity")
    binned = popularity.select(
        item_col,
        F.least(F.floor(F.col(POPULARITY_PERCENTILE) * bins), F.lit(bins - 1))
        .cast("int")
        .alias("bin"),
    )
    catalog = binned.groupBy("bin").agg(F.count(F.lit(1)).alias("_items"))
    slots = (
        recommendations.where(F.col(rank_col) <= k)
        .select(item_col)
        .join(binned, item_col)
        .groupBy("bin")
        .agg(F.count(F.lit(1)).alias("_slots"))
    )
    per_bin = catalog.join(slots, "bin", "full").fillna(0, ["_items", "_slots"])
    totals = per_bin.agg(F.sum("_items").alias("_all_items"), F.sum("_slots").alias("_all_slots"))
    return per_bin.crossJoin(totals).select(
        "bin",
        (F.col("_items") / F.col("_all_items")).alias("catalog_share"),
        F.coalesce(F.col("_slots") / F.col("_all_slots"), F.lit(0.0)).alias("recommendation_share"),
    )


def safe_float(value) -> float | None:
    """Return ``value`` as a float, or None for None, NaN and infinity (JSON-safe)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
