"""ScaNN searchers over the two-tower video embeddings: sizing, build, search, save, load.

Every score is the dot product of L2-normalised vectors, that is the cosine similarity.
The two-tower model already L2-normalises both towers, so normalising again changes the
values only by floating-point rounding and protects the index from a model that does not.

An index folder contains:

- ``scann/``: the ScaNN searcher assets, written with relative paths so that the folder
  can be moved, uploaded to the lake and shipped to executors;
- ``corpus.npz``: ``video_id`` (unicode), ``video_idx`` (int64) and ``embedding``
  (float32, normalised) in searcher position order, because ScaNN returns positions and
  the candidate job rescores extra-source videos against the same vectors;
- ``metadata.json``: the :class:`IndexPlan` and whatever the caller adds (recall, model
  version).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from recsys_spark.settings import IndexConfig

logger = logging.getLogger(__name__)

SCANN_DIR = "scann"
CORPUS_FILE = "corpus.npz"
METADATA_FILE = "metadata.json"

BRUTE_FORCE = "brute_force"
TREE_AH = "tree_ah"

# Slack when comparing float32 dot products, whose rounding makes equal scores differ.
SCORE_TOLERANCE = 1e-5


def import_scann():
    """Import ScaNN's numpy API, with TensorFlow set up for Keras 2 first.

    ``import scann`` also imports TensorFlow, so ``recsys_spark.tf_env`` must run before it
    to keep ``TF_USE_LEGACY_KERAS`` in force for TensorFlow Recommenders.
    """
    import recsys_spark.tf_env  # noqa: F401  (sets Keras 2 before scann imports TensorFlow)

    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError as error:
        raise ImportError(
            "ScaNN is not installed or does not match TensorFlow. Install scann==1.4.2, "
            "which is built for tensorflow 2.20: `pip install scann==1.4.2`."
        ) from error
    return scann_ops_pybind


@dataclass(frozen=True)
class IndexPlan:
    """The searcher configuration chosen for one corpus (see :func:`plan_index`)."""

    method: str
    num_items: int
    dim: int
    num_leaves: Optional[int] = None
    num_leaves_to_search: Optional[int] = None
    training_sample_size: Optional[int] = None
    dims_per_block: Optional[int] = None
    anisotropic_quantization_threshold: Optional[float] = None
    reorder_multiplier: Optional[int] = None

    def pre_reorder_neighbors(self, k: int) -> Optional[int]:
        """Return how many hashed-score neighbours to rescore exactly for a top-``k`` search.

        A brute-force plan returns None, because it scores every video exactly.
        """
        if self.method == BRUTE_FORCE:
            return None
        return min(self.num_items, k * self.reorder_multiplier)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexPlan:
        return cls(**data)


def plan_index(num_items: int, dim: int, config: IndexConfig) -> IndexPlan:
    """Size a ScaNN configuration from the corpus size.

    Corpora below ``config.brute_force_threshold`` are searched exactly. Larger ones get a
    k-means tree of about ``sqrt(num_items)`` leaves (ScaNN's rule of thumb), of which
    ``leaves_to_search_fraction`` are searched per query, anisotropic asymmetric hashing
    (4-bit codes over blocks of ``dims_per_block`` dimensions) and exact float32
    re-ordering of ``k * reorder_multiplier`` hashed-score neighbours.

    Raises:
      ValueError: The corpus is empty, or the configured leaf count does not fit it.
    """
    if num_items < 1:
        raise ValueError(
            "The corpus to index is empty. Check that train_two_tower wrote embeddings."
        )
    if num_items < config.brute_force_threshold:
        return IndexPlan(method=BRUTE_FORCE, num_items=num_items, dim=dim)
    num_leaves = config.num_leaves or max(1, round(math.sqrt(num_items)))
    training_sample_size = min(num_items, config.training_sample_size)
    if num_leaves > training_sample_size:
        raise ValueError(
            f"index.num_leaves is {num_leaves}, but k-means trains on only "
            f"{training_sample_size} of {num_items} videos. Lower index.num_leaves or raise "
            "index.training_sample_size."
        )
    num_leaves_to_search = max(1, math.ceil(num_leaves * config.leaves_to_search_fraction))
    return IndexPlan(
        method=TREE_AH,
        num_items=num_items,
        dim=dim,
        num_leaves=num_leaves,
        num_leaves_to_search=min(num_leaves, num_leaves_to_search),
        training_sample_size=training_sample_size,
        dims_per_block=config.dims_per_block,
        anisotropic_quantization_threshold=config.anisotropic_quantization_threshold,
        reorder_multiplier=config.reorder_multiplier,
    )


@dataclass(frozen=True)
class Corpus:
    """The indexed videos in searcher position order."""

    video_ids: np.ndarray  # unicode [n]
    video_idx: np.ndarray  # int64 [n]
    embeddings: np.ndarray  # float32 [n, d], L2-normalised

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def positions(self, video_idx: np.ndarray) -> np.ndarray:
        """Return the position of each ``video_idx`` in the corpus, or -1 where it is absent."""
        video_idx = np.asarray(video_idx, dtype=np.int64)
        positions = np.searchsorted(self.video_idx, video_idx)
        inside = positions < len(self.video_idx)
        found = np.zeros(len(video_idx), dtype=bool)
        found[inside] = self.video_idx[positions[inside]] == video_idx[inside]
        return np.where(found, positions, -1)


def normalize_rows(matrix: np.ndarray, ids: np.ndarray, entity: str = "video") -> np.ndarray:
    """Return ``matrix`` with each row scaled to unit L2 norm, as float32.

    Raises:
      ValueError: A row contains NaN or infinity, or is all zeros; the message names the
        first such id.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = str(ids[np.flatnonzero(~finite)[0]])
        raise ValueError(
            f"The embedding of {entity} {bad!r} contains NaN or infinity "
            f"({int((~finite).sum())} rows in all). Retrain the model; such a vector "
            "cannot be scored."
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = norms[:, 0] == 0.0
    if zero.any():
        bad = str(ids[np.flatnonzero(zero)[0]])
        raise ValueError(
            f"The embedding of {entity} {bad!r} is all zeros ({int(zero.sum())} rows in all), "
            "so it has no direction to compare. Retrain the model."
        )
    return matrix / norms


def build_corpus(
    video_ids: np.ndarray,
    video_idx: np.ndarray,
    embeddings: np.ndarray,
    on_duplicate: str = "dedupe",
) -> tuple[Corpus, int]:
    """Validate, de-duplicate, sort by ``video_idx`` and L2-normalise the embeddings.

    Args:
      video_ids: String ids, one per row.
      video_idx: Dense indices, one per row.
      embeddings: float matrix [rows, dim].
      on_duplicate: ``dedupe`` keeps, for each repeated ``video_id``, the row with the
        smallest ``video_idx``; ``fail`` raises.

    Returns:
      The corpus and the number of duplicate rows dropped.

    Raises:
      ValueError: Lengths differ, ids repeat with ``on_duplicate="fail"``, one
        ``video_idx`` carries two ids, or an embedding is NaN, infinite or zero.
    """
    video_ids = np.asarray(video_ids).astype(str)
    video_idx = np.asarray(video_idx, dtype=np.int64)
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or not len(video_ids) == len(video_idx) == embeddings.shape[0]:
        raise ValueError(
            f"Expected one video_id, video_idx and embedding row per video, got "
            f"{len(video_ids)} ids, {len(video_idx)} indices and an embedding array of "
            f"shape {embeddings.shape}."
        )
    order = np.lexsort((video_idx, video_ids))
    sorted_ids = video_ids[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    duplicates = int((~first).sum())
    if duplicates and on_duplicate == "fail":
        repeated = sorted(set(sorted_ids[~first].tolist()))[:5]
        raise ValueError(
            f"{duplicates} embedding rows repeat a video_id (for example {repeated}). "
            "Fix the embeddings, or set index.on_duplicate=dedupe to keep the row with the "
            "smallest video_idx."
        )
    keep = order[first]
    keep = keep[np.argsort(video_idx[keep], kind="stable")]
    kept_idx = video_idx[keep]
    if len(kept_idx) > 1 and (kept_idx[1:] == kept_idx[:-1]).any():
        clash = int(kept_idx[1:][kept_idx[1:] == kept_idx[:-1]][0])
        raise ValueError(
            f"video_idx {clash} belongs to more than one video_id in the embeddings, so the "
            "id map and the model disagree. Retrain the model on the current id map."
        )
    if duplicates:
        logger.warning("Dropped %d embedding rows whose video_id repeats", duplicates)
    corpus = Corpus(
        video_ids=video_ids[keep],
        video_idx=kept_idx,
        embeddings=normalize_rows(embeddings[keep], video_ids[keep]),
    )
    return corpus, duplicates


def corpus_from_arrow(table, on_duplicate: str = "dedupe") -> tuple[Corpus, int]:
    """Build a corpus from a ``pyarrow.Table`` of ``video_id``, ``video_idx``, ``embedding``.

    ``embedding`` is a list<float> column, as in ``models/two_tower/<version>/embeddings``.
    See :func:`build_corpus` for the checks and the de-duplication.

    Raises:
      ValueError: An embedding is null or the embeddings differ in length.
    """
    import pyarrow.compute as pc

    names = table.column("video_id").to_pylist()
    lists = table.column("embedding").combine_chunks()
    if lists.null_count:
        missing = pc.is_null(lists).to_numpy(zero_copy_only=False)
        raise ValueError(
            f"Video {names[np.flatnonzero(missing)[0]]!r} has no embedding. Re-export the model."
        )
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    dim = int(lengths[0]) if len(lengths) else 0
    if (lengths != dim).any():
        row = np.flatnonzero(lengths != dim)[0]
        raise ValueError(
            f"Embeddings differ in length: video {names[row]!r} has {int(lengths[row])} values, "
            f"video {names[0]!r} has {dim}. Re-export the model's embeddings."
        )
    # Null values inside a list become NaN here, which build_corpus rejects by video.
    values = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    embeddings = values.reshape(len(lists), dim)
    video_idx = table.column("video_idx").to_numpy()
    return build_corpus(np.asarray(names, dtype=object), video_idx, embeddings, on_duplicate)


def exact_top_k(
    queries: np.ndarray, embeddings: np.ndarray, k: int, max_block_floats: int = 1 << 24
) -> tuple[np.ndarray, np.ndarray]:
    """Return the exact top-``k`` positions and dot products per query, best first.

    Scores are computed in query blocks of at most ``max_block_floats`` values, so memory
    stays bounded for a large corpus. Ties are ordered by position, except at the k-th
    place, where ``np.argpartition`` picks among equal scores.

    Returns:
      ``(positions int64 [B, k'], scores float32 [B, k'])`` with ``k' = min(k, corpus size)``.
    """
    queries = np.asarray(queries, dtype=np.float32)
    num_items = embeddings.shape[0]
    k = min(k, num_items)
    rows_per_block = max(1, max_block_floats // max(1, num_items))
    positions = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), rows_per_block):
        block = queries[start : start + rows_per_block] @ embeddings.T
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top.sort(axis=1)
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        positions[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        scores[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
    return positions, scores


def build_searcher(embeddings: np.ndarray, plan: IndexPlan, num_neighbors: int, threads: int = 0):
    """Build a ScaNN searcher over ``embeddings`` (float32 [n, d], normalised) per ``plan``.

    ``threads`` sets ScaNN's training threads (0: every core). ScaNN 1.4.2 takes no seed,
    and with random initial centres two builds of the same embeddings return different
    neighbours. The k-means tree therefore starts from k-means++ centres, which gave
    identical neighbours in repeated builds of 30,000 vectors.
    """
    scann = import_scann()
    builder = scann.builder(embeddings, num_neighbors, "dot_product").set_n_training_threads(
        threads
    )
    if plan.method == BRUTE_FORCE:
        return builder.score_brute_force().build()
    return (
        builder.tree(
            num_leaves=plan.num_leaves,
            num_leaves_to_search=plan.num_leaves_to_search,
            training_sample_size=plan.training_sample_size,
            random_init=False,
        )
        .score_ah(
            plan.dims_per_block,
            anisotropic_quantization_threshold=plan.anisotropic_quantization_threshold,
        )
        .reorder(plan.pre_reorder_neighbors(num_neighbors))
        .build()
    )


class VideoIndex:
    """A ScaNN searcher together with the corpus that its positions refer to."""

    def __init__(self, corpus: Corpus, searcher, plan: IndexPlan):
        self.corpus = corpus
        self.searcher = searcher
        self.plan = plan

    @classmethod
    def build(
        cls, corpus: Corpus, plan: IndexPlan, num_neighbors: int, threads: int = 0
    ) -> VideoIndex:
        """Build the searcher for ``corpus``; ``num_neighbors`` is only its default k."""
        if plan.num_items != len(corpus) or plan.dim != corpus.dim:
            raise ValueError(
                f"The plan is for {plan.num_items} videos of dimension {plan.dim}, but the "
                f"corpus has {len(corpus)} of dimension {corpus.dim}. Plan from this corpus."
            )
        searcher = build_searcher(corpus.embeddings, plan, min(num_neighbors, len(corpus)), threads)
        return cls(corpus, searcher, plan)

    def __len__(self) -> int:
        return len(self.corpus)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-``k`` positions and dot products per query, best first.

        Queries must be float32 [B, d] and L2-normalised for the scores to be cosines.

        Returns:
          ``(positions int64 [B, k'], scores float32 [B, k'])`` with
          ``k' = min(k, corpus size)``. Where ScaNN finds fewer than ``k'`` neighbours (the
          searched leaves hold fewer videos), the missing places have position -1 and
          score NaN.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.corpus))
        if len(queries) == 0 or k == 0:
            return np.empty((len(queries), k), np.int64), np.empty((len(queries), k), np.float32)
        positions, scores = self.searcher.search_batched(
            queries,
            final_num_neighbors=k,
            pre_reorder_num_neighbors=self.plan.pre_reorder_neighbors(k),
            leaves_to_search=self.plan.num_leaves_to_search,
        )
        positions = np.asarray(positions, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        # ScaNN pads short result lists with position 0 and a NaN score.
        positions[np.isnan(scores)] = -1
        return positions, scores

    def save(self, directory: str, metadata: Optional[dict[str, Any]] = None) -> None:
        """Write the searcher, the corpus and ``metadata`` (plus the plan) into ``directory``."""
        scann_dir = os.path.join(directory, SCANN_DIR)
        os.makedirs(scann_dir, exist_ok=True)
        self.searcher.serialize(scann_dir, relative_path=True)
        np.savez(
            os.path.join(directory, CORPUS_FILE),
            video_id=self.corpus.video_ids,
            video_idx=self.corpus.video_idx,
            embedding=self.corpus.embeddings,
        )
        data = {**(metadata or {}), "plan": self.plan.to_dict()}
        with open(os.path.join(directory, METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)

    @classmethod
    def load(cls, directory: str) -> VideoIndex:
        """Load an index written by :meth:`save` from a local folder."""
        metadata_path = os.path.join(directory, METADATA_FILE)
        if not os.path.isfile(metadata_path):
            raise FileNotFoundError(
                f"{metadata_path} not found: {directory} is not an index folder. Run "
                "build_index first, or check index.version."
            )
        with open(metadata_path, encoding="utf-8") as handle:
            plan = IndexPlan.from_dict(json.load(handle)["plan"])
        with np.load(os.path.join(directory, CORPUS_FILE), allow_pickle=False) as arrays:
            corpus = Corpus(
                video_ids=arrays["video_id"],
                video_idx=arrays["video_idx"],
                embeddings=arrays["embedding"],
            )
        searcher = import_scann().load_searcher(os.path.join(directory, SCANN_DIR))
        return cls(corpus, searcher, plan)


def read_metadata(directory: str) -> dict[str, Any]:
    """Return the ``metadata.json`` of a local index folder."""
    with open(os.path.join(directory, METADATA_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def recall_at_k(index: VideoIndex, queries: np.ndarray, k: int) -> float:
    """Return the mean recall@k of ``index.search`` against exact search over its corpus.

    A returned video counts as a hit when its exact score reaches the k-th exact score
    (minus :data:`SCORE_TOLERANCE`), so videos tied with the k-th place count whichever
    of them a search returns.
    """
    queries = np.asarray(queries, dtype=np.float32)
    k = min(k, len(index))
    if len(queries) == 0:
        raise ValueError("recall_at_k needs at least one query.")
    _, exact_scores = exact_top_k(queries, index.corpus.embeddings, k)
    threshold = exact_scores[:, k - 1] - SCORE_TOLERANCE
    found, _ = index.search(queries, k)
    valid = found >= 0
    vectors = index.corpus.embeddings[np.where(valid, found, 0)]
    found_scores = np.einsum("bd,bkd->bk", queries, vectors)
    hits = valid & (found_scores >= threshold[:, None])
    return float(hits.sum(axis=1).mean() / k)


def tune_for_recall(
    index: VideoIndex, queries: np.ndarray, k: int, target: float, max_reorder_multiplier: int = 64
) -> list[dict[str, Any]]:
    """Widen the search of ``index`` until its recall@k on ``queries`` reaches ``target``.

    Both knobs are search-time settings, so the searcher is not rebuilt. The number of
    leaves searched doubles until every leaf is searched; after that the re-ordering
    multiplier doubles up to ``max_reorder_multiplier``. ``index.plan`` keeps the last
    setting tried, which is the first that reached ``target`` unless every step fell
    short.

    Note:
      The recall is measured on the same queries that chose the setting, so it is a
      slightly optimistic estimate for other queries.

    Returns:
      One dict per setting tried, in order: ``num_leaves_to_search``,
      ``reorder_multiplier`` and ``recall``.
    """
    steps = []
    while True:
        recall = recall_at_k(index, queries, k)
        plan = index.plan
        steps.append(
            {
                "num_leaves_to_search": plan.num_leaves_to_search,
                "reorder_multiplier": plan.reorder_multiplier,
                "recall": recall,
            }
        )
        if recall >= target or plan.method == BRUTE_FORCE:
            return steps
        if plan.num_leaves_to_search < plan.num_leaves:
            wider = min(plan.num_leaves, 2 * plan.num_leaves_to_search)
            index.plan = dataclasses.replace(plan, num_leaves_to_search=wider)
        elif plan.reorder_multiplier < max_reorder_multiplier:
            deeper = min(max_reorder_multiplier, 2 * plan.reorder_multiplier)
            index.plan = dataclasses.replace(plan, reorder_multiplier=deeper)
        else:
            return steps
