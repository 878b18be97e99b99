"""Exact retrieval metrics: brute-force top-K of query and corpus embeddings.

Recall@K here is the share of held-out (user, positive video) rows whose video is among
the K best-scoring videos of the whole corpus for that row's query. A user with several
held-out positives counts once per row. Optionally the row's watch history (its
``history_video_idx``, the last H positives) is left out of the ranking, as serving
leaves out watched videos. That matches held-out splits without repeat positives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from recsys_spark import columns as C
from recsys_spark.models.inputs import QUERY_INPUTS
from recsys_spark.models.towers import CandidateTower, QueryTower
from recsys_spark.models.two_tower import Corpus
from recsys_spark.tf_env import tf


def corpus_embeddings(
    candidate_tower: CandidateTower,
    corpus: Corpus,
    reference_day: float,
    batch_size: int = 8192,
) -> np.ndarray:
    """Return float32[M, D] embeddings of the corpus members, with ages at ``reference_day``."""
    members = corpus.members
    chunks = []
    for start in range(0, corpus.num_members, batch_size):
        video_idx = members[start : start + batch_size]
        days = tf.fill(tf.shape(video_idx), tf.constant(reference_day, tf.float64))
        chunks.append(candidate_tower.encode(corpus.gather(video_idx, days)).numpy())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(chunks)


def query_embeddings(
    query_tower: QueryTower, batches: Iterable[Mapping[str, tf.Tensor]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embed the query rows of ``batches``.

    Returns:
      The query embeddings float32[Q, D], the positive video_idx int64[Q] and the
      watch histories int64[Q, H] (0-padded).
    """
    embeddings, positives, histories = [], [], []
    for batch in batches:
        embeddings.append(query_tower({name: batch[name] for name in QUERY_INPUTS}).numpy())
        positives.append(np.asarray(batch[C.VIDEO_IDX], dtype=np.int64))
        histories.append(np.asarray(batch[C.HISTORY_VIDEO_IDX], dtype=np.int64))
    if not embeddings:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros((0, 0), dtype=np.float32), empty, empty.reshape(0, 0)
    return np.concatenate(embeddings), np.concatenate(positives), np.concatenate(histories)


def exact_top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    exclude_rows: np.ndarray | None = None,
    chunk_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the scores float32[Q, k] and corpus rows int64[Q, k] of each query's top k.

    Scores are dot products, and ties keep the lower corpus row first
    (``tf.math.top_k``). ``k`` is capped at the corpus size.

    Args:
      queries: float32[Q, D].
      corpus: float32[M, D].
      k: Results per query.
      exclude_rows: Optional int64[Q, E] corpus rows to leave out of each query's
        ranking; -1 entries are ignored. Excluded rows score -inf, so they can still
        fill a top k longer than the rest of the corpus.
      chunk_rows: Queries scored per matrix product.
    """
    k = min(k, corpus.shape[0])
    corpus_tensor = tf.constant(corpus, tf.float32)
    scores, rows = [], []
    for start in range(0, queries.shape[0], chunk_rows):
        chunk = tf.constant(queries[start : start + chunk_rows], tf.float32)
        chunk_scores = tf.matmul(chunk, corpus_tensor, transpose_b=True)
        if exclude_rows is not None:
            chunk_scores = _mask_rows(chunk_scores, exclude_rows[start : start + chunk_rows])
        top = tf.math.top_k(chunk_scores, k=k)
        scores.append(top.values.numpy())
        rows.append(top.indices.numpy().astype(np.int64))
    if not scores:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(scores), np.concatenate(rows)


def _mask_rows(scores: tf.Tensor, exclude_rows: np.ndarray) -> tf.Tensor:
    """Set ``scores[i, exclude_rows[i, j]]`` to -inf wherever ``exclude_rows[i, j] >= 0``."""
    query, slot = np.nonzero(exclude_rows >= 0)
    if len(query) == 0:
        return scores
    indices = np.stack([query, exclude_rows[query, slot]], axis=1)
    minus_inf = tf.fill([len(indices)], tf.constant(-np.inf, tf.float32))
    return tf.tensor_scatter_nd_update(scores, indices, minus_inf)


def corpus_rows(video_idx: np.ndarray, corpus_video_idx: np.ndarray) -> np.ndarray:
    """Return the corpus row of each video_idx (any shape), or -1 where the corpus lacks it."""
    order = np.argsort(corpus_video_idx, kind="stable")
    sorted_idx = corpus_video_idx[order]
    position = np.clip(np.searchsorted(sorted_idx, video_idx), 0, max(len(sorted_idx) - 1, 0))
    found = (len(sorted_idx) > 0) & (sorted_idx[position] == video_idx)
    return np.where(found, order[position], -1).astype(np.int64)


def recall_at_k(
    queries: np.ndarray,
    positives: np.ndarray,
    corpus: np.ndarray,
    corpus_video_idx: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
) -> float:
    """Return the share of rows whose positive video_idx is in the exact top k of the corpus.

    Args:
      queries: float32[Q, D] query embeddings.
      positives: int64[Q] held-out positive video_idx; one the corpus lacks is a miss.
      corpus: float32[M, D] corpus embeddings.
      corpus_video_idx: int64[M] video_idx of each corpus row.
      k: The cut-off.
      exclude: Optional int64[Q, E] video_idx to leave out of each row's ranking, such as
        its watch history; 0 entries are ignored.

    Returns:
      The recall, or NaN for zero rows.
    """
    if len(positives) == 0:
        return float("nan")
    exclude_rows = None
    if exclude is not None:
        exclude_rows = np.where(exclude > C.OOV_INDEX, corpus_rows(exclude, corpus_video_idx), -1)
    _, rows = exact_top_k(queries, corpus, k, exclude_rows)
    hits = (corpus_video_idx[rows] == positives[:, np.newaxis]).any(axis=1)
    return float(hits.mean())


def popularity_recall_at_k(
    positives: np.ndarray,
    corpus_video_idx: np.ndarray,
    popularity: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
) -> float:
    """Return recall@k of the most popular corpus videos as every row's ranking.

    Args:
      positives: int64[Q] held-out positive video_idx.
      corpus_video_idx: int64[M] the corpus members.
      popularity: float[M] their training popularity; ties keep the lower video_idx first.
      k: The list length.
      exclude: Optional int64[Q, E] video_idx left out of each row's list (0 ignored), so
        the row's list is the k most popular videos outside its history.
    """
    if len(positives) == 0:
        return float("nan")
    order = np.lexsort((corpus_video_idx, -np.asarray(popularity, dtype=np.float64)))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    rows = corpus_rows(positives, corpus_video_idx)
    positive_rank = np.where(rows >= 0, rank[rows], np.iinfo(np.int64).max)
    ahead = np.zeros(len(positives), dtype=np.int64)
    if exclude is not None:
        excluded = np.where(exclude > C.OOV_INDEX, corpus_rows(exclude, corpus_video_idx), -1)
        excluded = np.sort(excluded, axis=1)
        # Count each excluded video once, even when a history repeats it.
        first = np.ones_like(excluded, dtype=bool)
        first[:, 1:] = excluded[:, 1:] != excluded[:, :-1]
        excluded_rank = np.where(excluded >= 0, rank[np.maximum(excluded, 0)], -1)
        before = (excluded >= 0) & first & (excluded_rank < positive_rank[:, np.newaxis])
        ahead = before.sum(axis=1)
    hits = (rows >= 0) & (positive_rank - ahead < k)
    return float(hits.mean())
