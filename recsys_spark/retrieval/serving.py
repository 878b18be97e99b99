"""Retrieval inside Spark tasks: the query encoder, the index and a per-worker cache.

The driver ships an index folder (``models/index/<version>/``: ScaNN assets, corpus,
metadata and a copy of the two-tower query SavedModel) as one zip file
(:mod:`recsys_spark.shipping`), which works with every master. Spark copies it to every
executor, and a task unpacks its local copy once per Python worker. Loading TensorFlow and
the searcher takes seconds, so each Python worker loads a folder once and keeps it in a
module-level cache keyed by its local path. Spark reuses Python workers across tasks
(``spark.python.worker.reuse``, on by default), so later tasks find it loaded.

Searches exclude videos per user. Neighbour lists are flat arrays of ``(row, position)``
in rank order, where ``row`` is the user's row in the batch and ``position`` the video's
position in the index corpus, so a batch is handled without a Python loop per user.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from recsys_spark import shipping
from recsys_spark.columns import (
    AGE_BUCKET,
    AS_OF,
    GENDER,
    HISTORY_VIDEO_IDX,
    LANGUAGE,
    REGION,
    USER_ID,
    USER_IDX,
)
from recsys_spark.retrieval.index import VideoIndex, normalize_rows, read_metadata

logger = logging.getLogger(__name__)

# Folder of the query SavedModel inside an index folder.
QUERY_DIR = "query"
# Key of the two-tower facts inside the index metadata.json.
TWO_TOWER_KEY = "two_tower"
# User feature columns that the query SavedModel reads (as_of gives the context time).
QUERY_COLUMNS = (USER_ID, USER_IDX, AGE_BUCKET, GENDER, REGION, LANGUAGE, HISTORY_VIDEO_IDX, AS_OF)


class QueryEncoder:
    """The two-tower query SavedModel: user feature rows in, L2-normalised embeddings out."""

    def __init__(self, path: str, history_length: int):
        from recsys_spark.models import load_query_model
        from recsys_spark.tf_env import tf

        self._tf = tf
        # The signature's variables belong to the loaded object, so keep a reference.
        self._model = load_query_model(path)
        self._signature = self._model.signatures["serving_default"]
        self._input_specs = self._signature.structured_input_signature[1]
        self.history_length = history_length

    def encode(self, users: pd.DataFrame) -> np.ndarray:
        """Return float32 [len(users), D] query embeddings, in row order.

        Args:
          users: Rows shaped like ``features/users/<snapshot>``: ``user_id``,
            ``user_idx``, ``age_bucket``, ``gender``, ``region``, ``language``,
            ``history_video_idx`` and ``as_of`` (the context time).
        """
        from recsys_spark.models import query_inputs_from_pandas

        inputs = query_inputs_from_pandas(users, self.history_length)
        missing = sorted(set(self._input_specs) - set(inputs))
        if missing:
            raise ValueError(
                f"The query SavedModel expects inputs {missing} that query_inputs_from_pandas "
                "does not build. Rebuild the index from a model of this code version."
            )
        tensors = {
            name: self._tf.convert_to_tensor(inputs[name], dtype=spec.dtype)
            for name, spec in self._input_specs.items()
        }
        embeddings = self._signature(**tensors)["embedding"].numpy()
        return normalize_rows(embeddings, users[USER_ID].to_numpy(), entity="user")


@dataclass
class RetrievalBundle:
    """An index folder loaded into memory."""

    encoder: QueryEncoder
    index: VideoIndex
    metadata: dict[str, Any]


def configure_tf_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op and inter-op threads in this process.

    Spark already runs one task per core, so TensorFlow's default of one thread per core
    in every worker would oversubscribe the machine. TensorFlow accepts the setting only
    before it first runs an op; later calls leave it unchanged and log that.
    """
    from recsys_spark.tf_env import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:
        logger.info("TensorFlow threads already fixed in this process (%s)", error)


def load_bundle(directory: str) -> RetrievalBundle:
    """Load an index folder (index, corpus, metadata and query SavedModel) from local disk."""
    metadata = read_metadata(directory)
    history_length = int(metadata[TWO_TOWER_KEY]["history_length"])
    encoder = QueryEncoder(os.path.join(directory, QUERY_DIR), history_length)
    return RetrievalBundle(encoder=encoder, index=VideoIndex.load(directory), metadata=metadata)


# The bundle loaded in this Python process, by local folder path (at most one entry).
_BUNDLES: dict[str, RetrievalBundle] = {}


def cached_bundle(
    directory: str, tf_threads: int, on_load: Optional[Callable[[], None]] = None
) -> RetrievalBundle:
    """Return the bundle at ``directory``, loading it only on this process's first request.

    Loading a different folder drops the previous bundle, so a long-lived worker keeps
    one index in memory even after a pipeline has built several. ``on_load`` runs after
    each actual load. The jobs pass a Spark accumulator's ``add`` there, so the driver
    can check how many loads the executors made.
    """
    bundle = _BUNDLES.get(directory)
    if bundle is None:
        started = time.perf_counter()
        configure_tf_threads(tf_threads)
        # Free the previous index before loading the next one.
        _BUNDLES.clear()
        bundle = load_bundle(directory)
        _BUNDLES[directory] = bundle
        logger.info(
            "Loaded index %s (%d videos) in %.1fs in process %d",
            directory,
            len(bundle.index),
            time.perf_counter() - started,
            os.getpid(),
        )
        if on_load is not None:
            on_load()
    return bundle


def shipped_bundle(name: str, tf_threads: int, loads=None) -> RetrievalBundle:
    """Return the bundle that the driver shipped under ``name`` (see :func:`ship_index`).

    Args:
      name: The shipped folder's name, as returned by :func:`ship_index`.
      tf_threads: TensorFlow threads for this worker.
      loads: An optional Spark accumulator incremented once per actual load.
    """
    on_load = None if loads is None else (lambda: loads.add(1))
    return cached_bundle(shipping.local_folder(name), tf_threads, on_load)


def ship_index(spark: SparkSession, path: str) -> str:
    """Ship the index folder at the lake ``path`` to every executor and return its name."""
    version = posixpath.basename(path.rstrip("/"))
    return shipping.ship_lake_folder(spark, path, f"index-{version}")


def in_batches(batches: Iterator[pd.DataFrame], batch_size: int) -> Iterator[pd.DataFrame]:
    """Re-cut the Arrow batches of a ``mapInPandas`` task into at most ``batch_size`` rows."""
    for pdf in batches:
        for start in range(0, len(pdf), batch_size):
            yield pdf.iloc[start : start + batch_size].reset_index(drop=True)


class Exclusions:
    """Videos that must not be returned for each user of a batch.

    Args:
      excluded: One entry per user: an array of ``video_idx`` (None for none).
      index: The index whose corpus positions the searches return.
      excluded_everywhere: ``video_idx`` excluded for every user (unavailable videos).
    """

    def __init__(
        self,
        excluded: pd.Series,
        index: VideoIndex,
        excluded_everywhere: Optional[np.ndarray] = None,
    ):
        self.index = index
        self.num_rows = len(excluded)
        rows, video_idx = flatten_lists(excluded)
        self.counts = np.bincount(rows, minlength=self.num_rows)
        corpus_idx = index.corpus.video_idx
        self._stride = int(max(corpus_idx.max(initial=0), video_idx.max(initial=0))) + 1
        self._keys = np.unique(rows * self._stride + video_idx)
        self._blocked = np.zeros(len(index), dtype=bool)
        if excluded_everywhere is not None:
            positions = index.corpus.positions(excluded_everywhere)
            self._blocked[positions[positions >= 0]] = True
        self._blocked_count = int(self._blocked.sum())

    def allowed(self, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Return a mask of the (row, position) pairs that are neither padding nor excluded."""
        valid = positions >= 0
        safe = np.where(valid, positions, 0)
        keys = rows * self._stride + self.index.corpus.video_idx[safe]
        return valid & ~self._blocked[safe] & ~np.isin(keys, self._keys)

    def max_excluded(self, rows: np.ndarray) -> int:
        """Return the most videos any of ``rows`` can lose to exclusions."""
        return int(self.counts[rows].max(initial=0)) + self._blocked_count


def flatten_lists(lists: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a Series of integer arrays (or None) into ``(row, value)`` int64 arrays."""
    arrays = [np.empty(0, np.int64) if v is None else np.asarray(v, np.int64) for v in lists]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    rows = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    values = np.concatenate(arrays) if arrays else np.empty(0, np.int64)
    return rows, values.astype(np.int64, copy=False)


def first_per_row(rows: np.ndarray, keep: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a mask of the first ``limit`` kept entries of each row, and every entry's ordinal.

    ``rows`` must be grouped (equal values adjacent) with each group in rank order. An
    entry's ordinal is the number of kept entries before it in its row.
    """
    if len(rows) == 0:
        return keep.copy(), np.zeros(0, dtype=np.int64)
    new_group = np.r_[True, rows[1:] != rows[:-1]]
    kept_before = np.cumsum(keep) - keep
    group_of_entry = np.cumsum(new_group) - 1
    ordinals = kept_before - kept_before[np.flatnonzero(new_group)][group_of_entry]
    return keep & (ordinals < limit), ordinals


def _allowed_neighbours(
    index: VideoIndex, queries: np.ndarray, row_ids: np.ndarray, exclusions: Exclusions, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    positions, _ = index.search(queries[row_ids], k)
    rows = np.repeat(row_ids, positions.shape[1])
    positions = positions.reshape(-1)
    return rows, positions, exclusions.allowed(rows, positions)


def search_excluding(
    index: VideoIndex, queries: np.ndarray, exclusions: Exclusions, need: int, overfetch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each query's best ``need`` neighbours that are not excluded, in rank order.

    The first search fetches ``need + overfetch`` neighbours per query. A query left with
    fewer than ``need`` allowed neighbours is searched again for ``need`` plus its
    excluded count, which is enough unless the corpus runs out.

    Returns:
      Flat ``(rows, positions, ordinals)`` int64 arrays sorted by row, then rank;
      ``ordinals`` counts from 0 within each row.
    """
    num_items = len(index)
    all_rows = np.arange(len(queries), dtype=np.int64)
    k = min(num_items, need + overfetch)
    rows, positions, keep = _allowed_neighbours(index, queries, all_rows, exclusions, k)
    found = np.bincount(rows[keep], minlength=len(queries))
    short = np.flatnonzero(found < need) if k < num_items else np.empty(0, np.int64)
    if len(short):
        # The larger k also covers a tree search whose searched leaves held too few videos.
        retry_k = min(num_items, max(2 * k, need + exclusions.max_excluded(short)))
        retry = _allowed_neighbours(index, queries, short, exclusions, retry_k)
        first_pass = ~np.isin(rows, short)
        rows = np.concatenate([rows[first_pass], retry[0]])
        positions = np.concatenate([positions[first_pass], retry[1]])
        keep = np.concatenate([keep[first_pass], retry[2]])
        order = np.argsort(rows, kind="stable")
        rows, positions, keep = rows[order], positions[order], keep[order]
    selected, ordinals = first_per_row(rows, keep, need)
    return rows[selected], positions[selected], ordinals[selected]
