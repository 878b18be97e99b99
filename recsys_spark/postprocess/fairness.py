"""Fairness and diversity: per-list caps, a long-tail share, MMR, and exposure metrics.

The list step (:func:`select_lists`) builds each user's list greedily from the rows that
passed the row-level rules, one slot at a time:

1. Candidates are the user's remaining rows. When the unmet minimums (long-tail or
   new-creator videos, fresh videos) need every slot left, only the rows that meet the
   most of them are candidates, if any row meets one.
2. Only the lowest tier among the candidates competes: ranked candidates (tier 0) before
   backfill (tier 1).
3. The winner maximises the maximal marginal relevance (MMR)
   ``lambda * score - (1 - lambda) * max similarity to the rows already listed``.
   Ties go to the row first in (tier, score descending, video_id) order.
4. A winner whose creator or category already fills its cap is removed from the list
   for good, with reason ``creator_cap`` or ``category_cap``, because counts only grow.

It runs per user in ``applyInPandas``: the greedy choice depends on the rows already
chosen, which window functions cannot express. The output is deterministic because each
group is sorted before the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import (
    CATEGORY,
    CREATOR_ID,
    RANK,
    SOURCE,
    UPLOAD_TS,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.postprocess import timestamp_literal

CREATOR_CAP = "creator_cap"
CATEGORY_CAP = "category_cap"

# Columns the list step reads and writes, beside the canonical ones.
TIER = "tier"
RULE_SCORE = "rule_score"
LONG_TAIL = "long_tail"
FRESH = "fresh"
EMBEDDING = "embedding"
REASON = "reason"

SELECTED_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(TIER, T.IntegerType(), False),
        T.StructField(RULE_SCORE, T.DoubleType(), False),
        T.StructField(SOURCE, T.StringType(), True),
        # Rank in the list; null for a row removed by a cap.
        T.StructField(RANK, T.IntegerType(), True),
        # Null for a listed row; creator_cap or category_cap for a removed one.
        T.StructField(REASON, T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class ListParams:
    """Settings of the list step; see :func:`list_params` for the mapping from config."""

    k: int
    max_per_creator: Optional[int] = None
    max_per_category: Optional[int] = None
    # Minimum long-tail (or new-creator) rows and fresh rows per list.
    min_long_tail: int = 0
    min_fresh: int = 0
    # None keeps score order; otherwise the MMR trade-off in [0, 1].
    mmr_lambda: Optional[float] = None
    # "embedding": cosine of embeddings, category match where one is missing; "category".
    similarity: str = "embedding"

    def __post_init__(self):
        if self.k <= 0:
            raise ValueError(f"ListParams.k must be positive, got {self.k}.")
        if self.similarity not in ("embedding", "category"):
            raise ValueError(
                f"ListParams.similarity must be 'embedding' or 'category', got {self.similarity!r}."
            )


def list_params(k: int, rules) -> ListParams:
    """Return the list-step settings for ``recommend.k`` and a ``RulesConfig``."""
    fairness, freshness, diversity = rules.fairness, rules.freshness, rules.diversity
    return ListParams(
        k=k,
        max_per_creator=fairness.max_per_creator if fairness.enabled else None,
        max_per_category=fairness.max_per_category if fairness.enabled else None,
        min_long_tail=(
            math.ceil(fairness.min_long_tail_share * k - 1e-9) if fairness.enabled else 0
        ),
        min_fresh=min(freshness.min_fresh, k) if freshness.enabled else 0,
        mmr_lambda=None if diversity.method == "none" else diversity.mmr_lambda,
        similarity="category" if diversity.method == "mmr_category" else "embedding",
    )


class UnitVectors:
    """L2-normalised video embeddings with a video id index, for MMR similarity.

    The list step reads it from a broadcast variable, so embeddings travel to each
    executor once rather than with every candidate row through the shuffle.
    """

    def __init__(self, video_ids: Sequence[str], embeddings: Sequence[Sequence[float]]):
        matrix = np.asarray(
            [np.asarray(vector, dtype=np.float32) for vector in embeddings], dtype=np.float32
        )
        if matrix.ndim != 2 or len(matrix) != len(video_ids):
            raise ValueError(
                f"Expected one embedding of one length per video ({len(video_ids)} videos), "
                f"got an array of shape {matrix.shape}; the embeddings table must come from "
                "one model."
            )
        norms = np.linalg.norm(matrix, axis=1)
        usable = norms > 0
        matrix[usable] /= norms[usable, None]
        self.matrix = matrix
        self.rows = {video: row for row, video in enumerate(video_ids) if usable[row]}

    @classmethod
    def from_frame(cls, embeddings: DataFrame) -> UnitVectors:
        """Collect ``video_id``, ``embedding`` (array<float>, nulls skipped) to the driver."""
        frame = embeddings.where(F.col(EMBEDDING).isNotNull()).select(VIDEO_ID, EMBEDDING)
        table = frame.toPandas()
        return cls(list(table[VIDEO_ID]), list(table[EMBEDDING]))

    def lookup(self, video_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return the unit vectors of ``video_ids`` (zero rows where unknown) and a found mask."""
        rows = np.array([self.rows.get(video, -1) for video in video_ids], dtype=np.int64)
        found = rows >= 0
        vectors = np.zeros((len(rows), self.matrix.shape[1]), dtype=np.float32)
        vectors[found] = self.matrix[rows[found]]
        return vectors, found


def select_list(
    group: pd.DataFrame, params: ListParams, vectors: Optional[UnitVectors] = None
) -> pd.DataFrame:
    """Build one user's list from its rows; see the module docstring for the procedure.

    Args:
      group: One user's rows with ``user_id``, ``video_id``, ``tier``, ``rule_score``,
        ``source``, ``creator_id``, ``category``, ``long_tail`` and ``fresh``.
      params: The list settings.
      vectors: Embeddings for ``similarity="embedding"``; rows without one (or all rows,
        when None) fall back to category match.

    Returns:
      Rows in :data:`SELECTED_SCHEMA`: the listed ones with ``rank`` 1..n, then the ones a
      cap removed with their ``reason``.
    """
    video_ids = group[VIDEO_ID].to_numpy(dtype=object)
    tiers = group[TIER].to_numpy(dtype=np.int64)
    scores = group[RULE_SCORE].to_numpy(dtype=np.float64)
    # Tier ascending, then score descending, then video id: np.lexsort sorts by the last key
    # first, and a stable argsort of the ids gives each id its rank.
    id_rank = np.argsort(np.argsort(video_ids, kind="stable"), kind="stable")
    order = np.lexsort((id_rank, -scores, tiers))
    video_ids, tiers, scores = video_ids[order], tiers[order], scores[order]
    count = len(order)
    creators = group[CREATOR_ID].to_numpy(dtype=object)[order]
    categories = group[CATEGORY].to_numpy(dtype=object)[order]
    long_tail = group[LONG_TAIL].fillna(False).to_numpy(dtype=bool)[order]
    fresh = group[FRESH].fillna(False).to_numpy(dtype=bool)[order]
    if params.similarity == "embedding" and vectors is not None:
        unit, has_embedding = vectors.lookup(video_ids)
    else:
        unit, has_embedding = np.zeros((count, 1), dtype=np.float32), np.zeros(count, dtype=bool)

    remaining = np.ones(count, dtype=bool)
    max_similarity = np.zeros(count)
    ranks = np.zeros(count, dtype=np.int64)
    reasons = np.full(count, None, dtype=object)
    per_creator: dict[str, int] = {}
    per_category: dict[str, int] = {}
    listed = long_tail_listed = fresh_listed = 0

    while listed < params.k and remaining.any():
        candidates = remaining.copy()
        slots = params.k - listed
        need_long_tail = max(0, params.min_long_tail - long_tail_listed)
        need_fresh = max(0, params.min_fresh - fresh_listed)
        if need_long_tail + need_fresh > 0 and need_long_tail + need_fresh >= slots:
            # Unmet minimums each row meets; rows meeting the most of them compete.
            met = ((need_long_tail > 0) & long_tail).astype(int) + (
                (need_fresh > 0) & fresh
            ).astype(int)
            best_met = met[candidates].max()
            if best_met > 0:
                candidates &= met == best_met
        candidates &= tiers == tiers[candidates].min()

        if params.mmr_lambda is None:
            value = scores.copy()
        else:
            diversity = max_similarity if listed else 0.0
            value = params.mmr_lambda * scores - (1.0 - params.mmr_lambda) * diversity
        value[~candidates] = -np.inf
        best = int(np.argmax(value))
        remaining[best] = False

        creator, category = creators[best], categories[best]
        if (
            params.max_per_creator is not None
            and creator is not None
            and per_creator.get(creator, 0) >= params.max_per_creator
        ):
            reasons[best] = CREATOR_CAP
            continue
        if (
            params.max_per_category is not None
            and category is not None
            and per_category.get(category, 0) >= params.max_per_category
        ):
            reasons[best] = CATEGORY_CAP
            continue

        listed += 1
        ranks[best] = listed
        long_tail_listed += int(long_tail[best])
        fresh_listed += int(fresh[best])
        if creator is not None:
            per_creator[creator] = per_creator.get(creator, 0) + 1
        if category is not None:
            per_category[category] = per_category.get(category, 0) + 1
        if params.mmr_lambda is not None:
            same_category = (categories == category) & (category is not None)
            similarity = np.where(same_category, 1.0, 0.0)
            if has_embedding[best]:
                cosine = unit @ unit[best]
                similarity = np.where(has_embedding, cosine, similarity)
            max_similarity = np.maximum(max_similarity, similarity)

    listed_rows = np.flatnonzero(ranks > 0)
    listed_rows = listed_rows[np.argsort(ranks[listed_rows])]
    removed_rows = np.flatnonzero([reason is not None for reason in reasons])
    chosen = np.concatenate([listed_rows, removed_rows]).astype(np.int64)
    chosen_ranks = pd.array(ranks[chosen].astype(np.int32), dtype="Int32")
    chosen_ranks[ranks[chosen] == 0] = pd.NA
    return pd.DataFrame(
        {
            USER_ID: group[USER_ID].to_numpy(dtype=object)[order][chosen],
            VIDEO_ID: video_ids[chosen],
            TIER: tiers[chosen].astype(np.int32),
            RULE_SCORE: scores[chosen],
            SOURCE: group[SOURCE].to_numpy(dtype=object)[order][chosen],
            RANK: chosen_ranks,
            REASON: reasons[chosen],
        }
    )


def select_lists(
    rows: DataFrame, params: ListParams, vectors: Optional[Broadcast] = None
) -> DataFrame:
    """Build every user's list with :func:`select_list`, one ``applyInPandas`` group per user.

    Args:
      rows: Columns ``user_id``, ``video_id``, ``tier`` (int), ``rule_score`` (double),
        ``source``, ``creator_id``, ``category``, ``long_tail`` and ``fresh`` (boolean).
      params: The list settings.
      vectors: A broadcast :class:`UnitVectors`, for ``similarity="embedding"``.

    Returns:
      Columns of :data:`SELECTED_SCHEMA`: listed rows have a rank, rows removed by a cap
      have a reason.
    """
    columns = [USER_ID, VIDEO_ID, TIER, RULE_SCORE, SOURCE, CREATOR_ID, CATEGORY, LONG_TAIL, FRESH]

    def select(group: pd.DataFrame) -> pd.DataFrame:
        return select_list(group, params, None if vectors is None else vectors.value)

    return rows.select(*columns).groupBy(USER_ID).applyInPandas(select, SELECTED_SCHEMA)


def long_tail_videos(videos: DataFrame, head_share: float, popularity: str) -> DataFrame:
    """Flag the long tail: every video outside the head of the popularity distribution.

    The head is the smallest set of most popular videos whose ``popularity`` sums to at
    least ``head_share`` of the total. Videos tied with the last head video are in the
    head too, so the split does not depend on row order.

    Args:
      videos: Columns ``video_id`` and ``popularity`` (a non-negative count; null is 0).
      head_share: Share of the total popularity taken by the head, in (0, 1].
      popularity: Name of the popularity column.

    Returns:
      Columns ``video_id``, ``long_tail`` (boolean).
    """
    counts = videos.select(VIDEO_ID, F.coalesce(F.col(popularity), F.lit(0)).alias("_views"))
    # The distinct counts make a small table even for a large catalog, so the driver finds
    # the head's lowest count from them.
    levels = counts.groupBy("_views").agg(F.count(F.lit(1)).alias("_videos")).collect()
    total = sum(row["_views"] * row["_videos"] for row in levels)
    lowest_head_views, before = None, 0
    for row in sorted(levels, key=lambda row: -row["_views"]):
        # A count level is in the head while the views above it are below the head share.
        if row["_views"] <= 0 or before >= head_share * total:
            break
        lowest_head_views = row["_views"]
        before += row["_views"] * row["_videos"]
    if lowest_head_views is None:
        return counts.select(VIDEO_ID, F.lit(True).alias(LONG_TAIL))
    return counts.select(VIDEO_ID, (F.col("_views") < F.lit(lowest_head_views)).alias(LONG_TAIL))


def new_creator_videos(videos: DataFrame, as_of: str, new_creator_days: float) -> DataFrame:
    """Flag videos whose creator's first upload is at most ``new_creator_days`` old.

    Args:
      videos: Columns ``video_id``, ``creator_id``, ``upload_ts``.
      as_of: The snapshot time (ISO-8601, session time zone).
      new_creator_days: Age limit of a new creator's first upload, in days.

    Returns:
      Columns ``video_id``, ``new_creator`` (boolean; false without a creator or upload time).
    """
    first_upload = F.min(UPLOAD_TS).over(Window.partitionBy(CREATOR_ID))
    age_seconds = timestamp_literal(as_of).cast("double") - first_upload.cast("double")
    is_new = F.col(CREATOR_ID).isNotNull() & (age_seconds <= new_creator_days * 86400.0)
    return videos.select(VIDEO_ID, F.coalesce(is_new, F.lit(False)).alias("new_creator"))


def gini_from_histogram(histogram: list[tuple[int, int]]) -> float:
    """Return the Gini coefficient of a distribution given as (value, frequency) pairs.

    With the n values sorted ascending as x_1..x_n, G = 2 * sum(i * x_i) / (n * sum(x))
    - (n + 1) / n; a run of c equal values starting after position a contributes
    value * (c * a + c * (c + 1) / 2) to sum(i * x_i). Returns 0 for no values or a zero
    total.
    """
    ordered = sorted((value, frequency) for value, frequency in histogram if frequency > 0)
    n = sum(frequency for _, frequency in ordered)
    total = sum(value * frequency for value, frequency in ordered)
    if n == 0 or total == 0:
        return 0.0
    weighted = 0
    position = 0
    for value, frequency in ordered:
        weighted += value * (frequency * position + frequency * (frequency + 1) // 2)
        position += frequency
    return 2.0 * weighted / (n * total) - (n + 1) / n


def exposure_metrics(lists: DataFrame, catalog: DataFrame) -> dict[str, Optional[float]]:
    """Return the creator-exposure Gini and the long-tail share of the list slots.

    The Gini coefficient is over every catalog creator, counting list slots per creator
    (creators without a slot count as 0; videos without a creator are left out of it).
    The long-tail share is over all slots. Runs one Spark job and collects only a
    histogram of the distinct per-creator slot counts.

    Args:
      lists: One row per listed video, with ``video_id``.
      catalog: ``video_id``, ``creator_id`` and ``long_tail`` (boolean).

    Returns:
      ``{"creator_gini": float, "long_tail_share": float or None (no slot)}``.
    """
    videos = catalog.select(VIDEO_ID, CREATOR_ID, LONG_TAIL)
    per_creator = (
        lists.select(VIDEO_ID)
        .join(videos, VIDEO_ID, "left")
        .groupBy(CREATOR_ID)
        .agg(
            F.count(F.lit(1)).alias("_slots"),
            F.sum(F.coalesce(F.col(LONG_TAIL), F.lit(False)).cast("long")).alias("_tail"),
        )
    )
    creators = videos.where(F.col(CREATOR_ID).isNotNull()).select(CREATOR_ID).distinct()
    # The full join keeps creators without slots and the group of slots without a creator.
    histogram = (
        creators.join(per_creator, CREATOR_ID, "full")
        .groupBy(
            F.col(CREATOR_ID).isNull().alias("_no_creator"),
            F.coalesce(F.col("_slots"), F.lit(0)).alias("_exposure"),
        )
        .agg(
            F.count(F.lit(1)).alias("_creators"),
            F.sum(F.coalesce(F.col("_tail"), F.lit(0))).alias("_tail"),
        )
        .collect()
    )
    gini = gini_from_histogram(
        [
            (int(row["_exposure"]), int(row["_creators"]))
            for row in histogram
            if not row["_no_creator"]
        ]
    )
    slots = sum(int(row["_exposure"]) * int(row["_creators"]) for row in histogram)
    tail = sum(int(row["_tail"]) for row in histogram)
    return {"creator_gini": gini, "long_tail_share": tail / slots if slots else None}


def creator_exposure_gini(lists: DataFrame, catalog: DataFrame) -> float:
    """Return the Gini coefficient of list slots per catalog creator (see exposure_metrics).

    ``catalog`` needs ``video_id`` and ``creator_id``; ``long_tail`` is optional here.
    """
    if LONG_TAIL not in catalog.columns:
        catalog = catalog.withColumn(LONG_TAIL, F.lit(False))
    return exposure_metrics(lists, catalog)["creator_gini"]
