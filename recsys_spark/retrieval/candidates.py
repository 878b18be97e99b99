"""Candidate generation: two-tower neighbours and the extra sources, merged per user.

On the driver, :func:`candidate_inputs` joins each user's features with the watched set
and the extra-source lists from :mod:`recsys_spark.retrieval.sources`. On the executors,
:func:`retrieve_candidates` embeds the users with the query SavedModel, searches the
ScaNN index and merges the sources per user (:func:`merge_candidates`):

1. Two-tower: the ``num_candidates`` nearest videos that the user has not watched.
2. Co-visitation, popular in the user's region and fresh: each list loses watched
   videos and is cut to its configured length.
3. A video found by several sources appears once. Its ``source`` is the first of
   :data:`recsys_spark.columns.CANDIDATE_SOURCES` that found it, and ``sources`` lists
   all of them in that order.
4. ``retrieval_score`` is the dot product of the user's and the video's L2-normalised
   embeddings for every candidate, whichever source found it, and ``retrieval_rank``
   orders each user's candidates by it (ties by ``video_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import (
    CANDIDATE_SOURCES,
    CO_VISITATION,
    FRESH,
    POPULAR_REGION,
    REGION,
    RETRIEVAL_RANK,
    RETRIEVAL_SCORE,
    SOURCE,
    SOURCES,
    TWO_TOWER,
    USER_ID,
    VIDEO_ID,
)
from recsys_spark.retrieval.index import VideoIndex
from recsys_spark.retrieval.serving import (
    QUERY_COLUMNS,
    Exclusions,
    RetrievalBundle,
    first_per_row,
    flatten_lists,
    in_batches,
    search_excluding,
    shipped_bundle,
)
from recsys_spark.retrieval.sources import (
    CO_VISITATION_VIDEO_IDX,
    EXCLUDE_VIDEO_IDX,
    POPULAR_VIDEO_IDX,
)
from recsys_spark.settings import CandidatesConfig

# The executors' output, before model_version and run_id are added.
RETRIEVED_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(VIDEO_ID, T.StringType(), False),
        T.StructField(SOURCE, T.StringType(), False),
        T.StructField(SOURCES, T.ArrayType(T.StringType(), False), False),
        T.StructField(RETRIEVAL_SCORE, T.DoubleType(), False),
        T.StructField(RETRIEVAL_RANK, T.IntegerType(), False),
    ]
)

_SOURCE_BIT = {source: 1 << bit for bit, source in enumerate(CANDIDATE_SOURCES)}
# Source names of every bit mask, in priority order. The first name is the primary source.
_SOURCE_NAMES = [
    [source for source in CANDIDATE_SOURCES if mask & _SOURCE_BIT[source]]
    for mask in range(1 << len(CANDIDATE_SOURCES))
]


@dataclass(frozen=True)
class CandidateSpec:
    """Settings and shared lists that the executors need besides the shipped index folder."""

    # Name of the shipped index folder (see serving.ship_index).
    bundle_name: str
    num_candidates: int
    overfetch: int
    co_visitation: int
    popular_region: int
    fresh: int
    batch_size: int
    tf_threads: int
    # The same for every user: the fresh list (newest first) and videos not yet uploaded
    # at the snapshot.
    fresh_video_idx: tuple[int, ...] = ()
    unavailable_video_idx: tuple[int, ...] = ()

    @classmethod
    def from_config(
        cls,
        config: CandidatesConfig,
        bundle_name: str,
        fresh_video_idx: Sequence[int] = (),
        unavailable_video_idx: Sequence[int] = (),
    ) -> CandidateSpec:
        return cls(
            bundle_name=bundle_name,
            num_candidates=config.num_candidates,
            overfetch=config.overfetch,
            co_visitation=config.co_visitation,
            popular_region=config.popular_region,
            fresh=config.fresh,
            batch_size=config.batch_size,
            tf_threads=config.tf_threads,
            fresh_video_idx=tuple(int(v) for v in fresh_video_idx),
            unavailable_video_idx=tuple(int(v) for v in unavailable_video_idx),
        )


def listed_candidates(
    lists: pd.Series, exclusions: Exclusions, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the first ``limit`` allowed videos of each user's list as (rows, positions).

    Videos that the index does not contain are dropped, because they cannot be scored.
    """
    rows, video_idx = flatten_lists(lists)
    positions = exclusions.index.corpus.positions(video_idx)
    selected, _ = first_per_row(rows, exclusions.allowed(rows, positions), limit)
    return rows[selected], positions[selected]


def _merge_sources(
    parts: list[tuple[np.ndarray, np.ndarray, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge (rows, positions, source bit) parts into unique pairs with OR-ed source masks."""
    rows = np.concatenate([part[0] for part in parts])
    positions = np.concatenate([part[1] for part in parts])
    masks = np.concatenate([np.full(len(part[0]), part[2], dtype=np.int64) for part in parts])
    if len(rows) == 0:
        return rows, positions, masks
    order = np.lexsort((positions, rows))
    rows, positions, masks = rows[order], positions[order], masks[order]
    starts = np.flatnonzero(
        np.r_[True, (rows[1:] != rows[:-1]) | (positions[1:] != positions[:-1])]
    )
    return rows[starts], positions[starts], np.bitwise_or.reduceat(masks, starts)


def merge_candidates(
    users: pd.DataFrame, queries: np.ndarray, index: VideoIndex, spec: CandidateSpec
) -> pd.DataFrame:
    """Build the candidate rows of a batch of users (see the module docstring).

    Args:
      users: ``user_id``, ``exclude_video_idx``, ``co_visitation_video_idx`` and
        ``popular_video_idx`` (arrays of ``video_idx`` or None), one row per user.
      queries: float32 [len(users), D] L2-normalised query embeddings, in row order.
      index: The index to search; its corpus embeddings score every candidate.
      spec: Counts per source and the lists that are the same for every user.

    Returns:
      ``user_id``, ``video_id``, ``source``, ``sources``, ``retrieval_score`` (float64),
      ``retrieval_rank`` (int32), grouped by user in rank order.
    """
    exclusions = Exclusions(users[EXCLUDE_VIDEO_IDX], index, spec.unavailable_video_idx)
    rows, positions, _ = search_excluding(
        index, queries, exclusions, spec.num_candidates, spec.overfetch
    )
    parts = [(rows, positions, _SOURCE_BIT[TWO_TOWER])]
    fresh_lists = pd.Series([spec.fresh_video_idx] * len(users), dtype=object)
    for source, lists, limit in (
        (CO_VISITATION, users[CO_VISITATION_VIDEO_IDX], spec.co_visitation),
        (POPULAR_REGION, users[POPULAR_VIDEO_IDX], spec.popular_region),
        (FRESH, fresh_lists, spec.fresh),
    ):
        if limit > 0:
            parts.append((*listed_candidates(lists, exclusions, limit), _SOURCE_BIT[source]))
    rows, positions, masks = _merge_sources(parts)

    corpus = index.corpus
    scores = np.einsum("nd,nd->n", queries[rows], corpus.embeddings[positions]).astype(np.float64)
    video_ids = corpus.video_ids[positions]
    order = np.lexsort((video_ids, -scores, rows))
    rows, video_ids, scores, masks = rows[order], video_ids[order], scores[order], masks[order]
    _, ranks = first_per_row(rows, np.ones(len(rows), dtype=bool), len(rows))
    names = [_SOURCE_NAMES[mask] for mask in masks.tolist()]
    return pd.DataFrame(
        {
            USER_ID: users[USER_ID].to_numpy()[rows],
            VIDEO_ID: video_ids.astype(object),
            SOURCE: [sources[0] for sources in names],
            SOURCES: names,
            RETRIEVAL_SCORE: scores,
            RETRIEVAL_RANK: (ranks + 1).astype(np.int32),
        }
    )


def candidates_for_batch(
    users: pd.DataFrame, bundle: RetrievalBundle, spec: CandidateSpec
) -> pd.DataFrame:
    """Embed a batch of users and return their merged candidates (see merge_candidates)."""
    return merge_candidates(users, bundle.encoder.encode(users), bundle.index, spec)


def candidate_inputs(
    users: DataFrame,
    watched: DataFrame,
    co_visitation: DataFrame,
    popular_regional: DataFrame,
    popular_all: DataFrame,
) -> DataFrame:
    """Join each user's query features with the watched set and the extra-source lists.

    Users without a list get null, which the executors read as empty. Users whose region
    is null or has no list get the all-region popular list.

    Args:
      users: A ``features/users/<snapshot>`` table (the :data:`QUERY_COLUMNS`).
      watched: ``user_id``, ``exclude_video_idx`` (sources.watched_videos).
      co_visitation: ``user_id``, ``co_visitation_video_idx``
        (sources.co_visitation_candidates).
      popular_regional: ``region``, ``popular_video_idx`` (sources.popular_by_region).
      popular_all: One row, ``popular_video_idx`` (sources.popular_overall).

    Returns:
      The :data:`QUERY_COLUMNS` plus ``exclude_video_idx``, ``co_visitation_video_idx``
      and ``popular_video_idx``, one row per user.
    """
    overall = popular_all.select(F.col(POPULAR_VIDEO_IDX).alias("_popular_all"))
    return (
        users.select(*QUERY_COLUMNS)
        .join(watched, USER_ID, "left")
        .join(co_visitation, USER_ID, "left")
        .join(F.broadcast(popular_regional), REGION, "left")
        .crossJoin(F.broadcast(overall))
        .withColumn(POPULAR_VIDEO_IDX, F.coalesce(F.col(POPULAR_VIDEO_IDX), F.col("_popular_all")))
        .select(*QUERY_COLUMNS, EXCLUDE_VIDEO_IDX, CO_VISITATION_VIDEO_IDX, POPULAR_VIDEO_IDX)
    )


def retrieve_candidates(
    inputs: DataFrame, spec: CandidateSpec, num_partitions: int, loads=None
) -> DataFrame:
    """Generate every user's candidates on the executors.

    The index folder named ``spec.bundle_name`` must have been shipped with
    :func:`recsys_spark.retrieval.serving.ship_index`.

    Args:
      inputs: The output of :func:`candidate_inputs`.
      spec: Counts per source and the lists that are the same for every user.
      num_partitions: Tasks that embed and search. A Python worker loads the index on the
        first of its tasks only.
      loads: Optional Spark accumulator that counts the index loads on the executors.

    Returns:
      :data:`RETRIEVED_SCHEMA`: ``user_id``, ``video_id``, ``source``, ``sources``,
      ``retrieval_score``, ``retrieval_rank``.

    Note:
      Every Python worker keeps its own copy of the index and the query model, so an
      executor needs about ``spark.executor.cores`` times their size in Python memory
      (``spark.executor.pyspark.memory`` where it is set).
    """

    def generate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle: Optional[RetrievalBundle] = None
        for users in in_batches(batches, spec.batch_size):
            if bundle is None:
                bundle = shipped_bundle(spec.bundle_name, spec.tf_threads, loads)
            yield candidates_for_batch(users, bundle, spec)

    return inputs.repartition(num_partitions).mapInPandas(generate, RETRIEVED_SCHEMA)
