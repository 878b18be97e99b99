"""Near-duplicate rule: videos are clustered once per run, and a list keeps one per cluster.

Two videos are near-duplicates when their title and tag shingle sets have a Jaccard
similarity of at least ``min_jaccard``, or, when ``min_cosine`` is set, when their
embeddings have a cosine similarity of at least ``min_cosine``. Clusters are the
connected components of that graph, so a chain a~b~c puts all three in one cluster even
if a and c are not similar.

Candidate pairs come from locality-sensitive hashing, then every pair is checked exactly:

- Text: ``HashingTF`` (binary) over the shingles, then ``MinHashLSH`` for the signatures.
  The hashes are grouped into ``bands`` bands of ``rows_per_band`` hashes, and videos
  whose hashes agree on a whole band become a candidate pair, so a pair of Jaccard
  similarity ``s`` is compared with probability ``1 - (1 - s**rows_per_band)**bands``.
  ``MinHashLSH.approxSimilarityJoin`` is this scheme with one hash per band. With one
  hash per band, loosely related videos (sharing a common tag) also collide, so the
  candidate pairs grow with the square of the catalog.
- Embeddings: random-hyperplane LSH (sign bits of random projections, ``bits_per_table``
  bits per table, ``embedding_tables`` tables). Spark's ``BucketedRandomProjectionLSH``
  projects on one direction per table, which separates poorly in 64 dimensions.

Videos with identical shingle sets are joined directly, without LSH. Videos without
any shingle (no title tokens and no tags) are skipped by the text step and counted.
LSH buckets larger than ``max_bucket_size`` are skipped and counted, because comparing
every pair inside them is quadratic.

Connected components: an edge list of at most ``max_driver_edges`` edges (near-duplicates
are a small share of a catalog) is collected and resolved by union-find on the driver.
A longer one goes through min-label propagation in Spark: every video starts with its own
id as label and takes the smallest label among its neighbours until no label changes (at
most ``max_iterations`` rounds). The cluster id is the smallest video id of the component.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.ml.feature import HashingTF, MinHashLSH, NGram
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import TAGS, VIDEO_ID
from recsys_spark.settings import DuplicatesRuleConfig

logger = logging.getLogger(__name__)

NEAR_DUPLICATE = "near_duplicate"
CLUSTER_ID = "cluster_id"
TITLE_TOKENS = "title_tokens"
EMBEDDING = "embedding"
SHINGLES = "shingles"

_SRC = "src"
_DST = "dst"


@dataclass
class ClusterStats:
    """Counts from one clustering run, for the run summary."""

    videos: int = 0
    videos_without_shingles: int = 0
    text_edges: int = 0
    embedding_edges: int = 0
    skipped_buckets: dict[str, int] = field(default_factory=dict)
    videos_clustered: int = 0
    clusters: int = 0
    max_cluster_size: int = 0
    iterations: int = 0
    converged: bool = True


def shingles(title_shingles: Column | str, tags: Column | str = TAGS) -> Column:
    """Return the distinct shingles of a video: its title shingles and its tags.

    Args:
      title_shingles: Title words and word pairs (array<string>, see :func:`add_shingles`);
        null counts as empty.
      tags: Tags (array<string>), lower-cased and prefixed ``tag:`` so a tag never equals
        a title word.
    """
    title_shingles = F.col(title_shingles) if isinstance(title_shingles, str) else title_shingles
    tags = F.col(tags) if isinstance(tags, str) else tags
    tag_shingles = F.transform(
        F.coalesce(tags, F.array().cast("array<string>")),
        lambda tag: F.concat(F.lit("tag:"), F.lower(F.trim(tag))),
    )
    return F.array_distinct(
        F.filter(
            F.concat(F.coalesce(title_shingles, F.array().cast("array<string>")), tag_shingles),
            lambda shingle: shingle.isNotNull() & (F.length(shingle) > 0),
        )
    )


def add_shingles(videos: DataFrame) -> DataFrame:
    """Add ``shingles`` (array<string>, sorted) to videos with ``title_tokens`` and ``tags``."""
    tokens = videos.withColumn(
        "_tokens",
        F.filter(
            F.coalesce(F.col(TITLE_TOKENS), F.array().cast("array<string>")),
            lambda token: token.isNotNull(),
        ),
    )
    pairs = NGram(n=2, inputCol="_tokens", outputCol="_pairs").transform(tokens)
    return pairs.withColumn(
        SHINGLES, F.sort_array(shingles(F.concat("_tokens", "_pairs"), F.col(TAGS)))
    ).drop("_tokens", "_pairs")


def identical_set_edges(videos: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split videos with shingles into edges between identical sets and one row per set.

    Args:
      videos: Columns ``video_id``, ``shingles`` (sorted); empty sets are ignored.

    Returns:
      (edges ``src``, ``dst`` from the smallest video id of a set to every other member;
      the representatives ``video_id``, ``shingles``, one per distinct set).
    """
    usable = videos.where(F.size(SHINGLES) > 0).select(VIDEO_ID, SHINGLES)
    grouped = usable.withColumn(
        "_representative", F.min(VIDEO_ID).over(Window.partitionBy(SHINGLES))
    )
    edges = grouped.where(F.col(VIDEO_ID) != F.col("_representative")).select(
        F.col("_representative").alias(_SRC), F.col(VIDEO_ID).alias(_DST)
    )
    representatives = grouped.where(F.col(VIDEO_ID) == F.col("_representative")).select(
        VIDEO_ID, SHINGLES
    )
    return edges, representatives


def text_buckets(sets: DataFrame, rules: DuplicatesRuleConfig, seed: int) -> DataFrame:
    """Return the MinHash band buckets of shingle sets: ``video_id``, ``_table``, ``_key``.

    Args:
      sets: Columns ``video_id``, ``shingles`` (non-empty).
      rules: ``bands``, ``rows_per_band`` and ``num_features`` are used.
      seed: Seed of the MinHash functions.
    """
    hashing = HashingTF(
        inputCol=SHINGLES, outputCol="_vector", numFeatures=rules.num_features, binary=True
    )
    vectors = hashing.transform(sets)
    minhash = MinHashLSH(
        inputCol="_vector",
        outputCol="_hashes",
        numHashTables=rules.bands * rules.rows_per_band,
        seed=seed,
    ).fit(vectors)
    hashes = minhash.transform(vectors).select(
        VIDEO_ID, F.posexplode("_hashes").alias("_position", "_hash")
    )
    return (
        hashes.withColumn("_value", vector_to_array("_hash")[0])
        .withColumn("_table", F.floor(F.col("_position") / rules.rows_per_band).cast("int"))
        .groupBy(VIDEO_ID, "_table")
        .agg(F.sort_array(F.collect_list(F.struct("_position", "_value"))).alias("_band"))
        .withColumn("_key", F.xxhash64(F.col("_band._value")))
        .select(VIDEO_ID, "_table", "_key")
    )


def _hyperplane_signatures(
    tables: int, bits: int, seed: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Build the mapInPandas function that turns embeddings into per-table signatures.

    Every worker draws the same hyperplanes from ``seed`` once the dimension is known, so
    signatures do not depend on partitioning.
    """
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))

    def signatures(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        planes: Optional[np.ndarray] = None
        for batch in batches:
            if batch.empty:
                continue
            matrix = np.stack(batch[EMBEDDING].to_numpy()).astype(np.float64)
            if planes is None:
                rng = np.random.default_rng(seed)
                planes = rng.standard_normal((tables * bits, matrix.shape[1]))
            if matrix.shape[1] != planes.shape[1]:
                raise ValueError(
                    f"Embeddings have different lengths ({matrix.shape[1]} and "
                    f"{planes.shape[1]}); the embeddings table must come from one model."
                )
            signs = (matrix @ planes.T > 0).reshape(len(batch), tables, bits)
            keys = (signs.astype(np.int64) * weights).sum(axis=2)
            yield pd.DataFrame(
                {
                    VIDEO_ID: np.repeat(batch[VIDEO_ID].to_numpy(), tables),
                    "_table": np.tile(np.arange(tables, dtype=np.int32), len(batch)),
                    "_key": keys.reshape(-1),
                }
            )

    return signatures


def embedding_buckets(embeddings: DataFrame, rules: DuplicatesRuleConfig, seed: int) -> DataFrame:
    """Return the random-hyperplane buckets of embeddings: ``video_id``, ``_table``, ``_key``.

    Args:
      embeddings: Columns ``video_id``, ``embedding`` (array<float> of one length, not null).
      rules: ``embedding_tables`` and ``bits_per_table`` are used.
      seed: Seed of the random hyperplanes.
    """
    schema = T.StructType(
        [
            T.StructField(VIDEO_ID, T.StringType()),
            T.StructField("_table", T.IntegerType()),
            T.StructField("_key", T.LongType()),
        ]
    )
    return embeddings.select(VIDEO_ID, EMBEDDING).mapInPandas(
        _hyperplane_signatures(rules.embedding_tables, rules.bits_per_table, seed), schema
    )


def size_buckets(buckets: DataFrame) -> DataFrame:
    """Add ``_size``, the member count of each (``_kind``, ``_table``, ``_key``) bucket."""
    bucket = Window.partitionBy("_kind", "_table", "_key")
    return buckets.withColumn("_size", F.count(F.lit(1)).over(bucket))


def candidate_pairs(sized: DataFrame, max_bucket_size: int) -> DataFrame:
    """Return the distinct (``_kind``, ``src``, ``dst``) pairs, ``src < dst``, sharing a bucket.

    Buckets of more than ``max_bucket_size`` members are left out.
    """
    kept = sized.where((F.col("_size") > 1) & (F.col("_size") <= max_bucket_size))
    left = kept.select("_kind", "_table", "_key", F.col(VIDEO_ID).alias(_SRC))
    right = kept.select("_kind", "_table", "_key", F.col(VIDEO_ID).alias(_DST))
    return (
        left.join(right, ["_kind", "_table", "_key"])
        .where(F.col(_SRC) < F.col(_DST))
        .select("_kind", _SRC, _DST)
        .distinct()
    )


def jaccard_edges(pairs: DataFrame, sets: DataFrame, min_jaccard: float) -> DataFrame:
    """Keep the pairs whose shingle sets have a Jaccard similarity of at least ``min_jaccard``."""
    left = sets.select(F.col(VIDEO_ID).alias(_SRC), F.col(SHINGLES).alias("_a"))
    right = sets.select(F.col(VIDEO_ID).alias(_DST), F.col(SHINGLES).alias("_b"))
    jaccard = F.size(F.array_intersect("_a", "_b")) / F.size(F.array_union("_a", "_b"))
    return (
        pairs.join(left, _SRC)
        .join(right, _DST)
        .where(jaccard >= F.lit(min_jaccard))
        .select(_SRC, _DST)
    )


def _dot(left: Column, right: Column) -> Column:
    products = F.zip_with(left, right, lambda x, y: x.cast("double") * y.cast("double"))
    return F.aggregate(products, F.lit(0.0), lambda total, value: total + value)


def cosine_edges(pairs: DataFrame, embeddings: DataFrame, min_cosine: float) -> DataFrame:
    """Keep the pairs whose embeddings have a cosine similarity of at least ``min_cosine``."""
    left = embeddings.select(F.col(VIDEO_ID).alias(_SRC), F.col(EMBEDDING).alias("_a"))
    right = embeddings.select(F.col(VIDEO_ID).alias(_DST), F.col(EMBEDDING).alias("_b"))
    cosine = _dot(F.col("_a"), F.col("_b")) / (
        F.sqrt(_dot(F.col("_a"), F.col("_a"))) * F.sqrt(_dot(F.col("_b"), F.col("_b")))
    )
    return (
        pairs.join(left, _SRC)
        .join(right, _DST)
        .where(cosine >= F.lit(min_cosine))
        .select(_SRC, _DST)
    )


def connected_components(edges: DataFrame, max_iterations: int) -> tuple[DataFrame, int, bool]:
    """Label every video on an edge with the smallest video id of its connected component.

    Runs Spark jobs: one per round, each materialised with ``localCheckpoint`` so the
    plan does not grow with the rounds.

    Args:
      edges: Columns ``src``, ``dst`` (video ids); direction and duplicates do not matter.
      max_iterations: Maximum propagation rounds; a component of diameter d needs d.

    Returns:
      (clusters with columns ``video_id``, ``cluster_id``; rounds run; whether the labels
      converged). Unconverged labels still partition the videos, only more finely than the
      components.

    Note:
      ``localCheckpoint`` keeps the labels on the executors; a lost executor fails the job
      instead of recomputing them.
    """
    both_ways = (
        edges.select(_SRC, _DST)
        .unionByName(edges.select(F.col(_DST).alias(_SRC), F.col(_SRC).alias(_DST)))
        .where(F.col(_SRC) != F.col(_DST))
        .distinct()
        .localCheckpoint()
    )
    labels = (
        both_ways.select(F.col(_SRC).alias(VIDEO_ID))
        .distinct()
        .withColumn(CLUSTER_ID, F.col(VIDEO_ID))
        .localCheckpoint()
    )
    rounds = 0
    converged = False
    while rounds < max_iterations:
        rounds += 1
        offers = both_ways.join(labels.withColumnRenamed(VIDEO_ID, _SRC), _SRC).select(
            F.col(_DST).alias(VIDEO_ID), CLUSTER_ID
        )
        updated = (
            labels.unionByName(offers)
            .groupBy(VIDEO_ID)
            .agg(F.min(CLUSTER_ID).alias(CLUSTER_ID))
            .localCheckpoint()
        )
        changed = (
            updated.join(labels.withColumnRenamed(CLUSTER_ID, "_previous"), VIDEO_ID)
            .where(F.col(CLUSTER_ID) != F.col("_previous"))
            .limit(1)
            .count()
        )
        labels = updated
        if changed == 0:
            converged = True
            break
    if not converged:
        logger.warning(
            "Near-duplicate labels did not converge in %d rounds; some clusters are split. "
            "Raise rules.duplicates.max_iterations.",
            max_iterations,
        )
    return labels, rounds, converged


def union_find_components(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Map every video on an edge to the smallest video id of its connected component.

    Union by smallest id with path halving, so the result does not depend on edge order.
    """
    parent: dict[str, str] = {}

    def find(video: str) -> str:
        parent.setdefault(video, video)
        while parent[video] != video:
            parent[video] = parent[parent[video]]
            video = parent[video]
        return video

    for left, right in edges:
        root_left, root_right = find(left), find(right)
        if root_left != root_right:
            low, high = sorted((root_left, root_right))
            parent[high] = low
    return {video: find(video) for video in parent}


def cluster_near_duplicates(
    videos: DataFrame,
    embeddings: Optional[DataFrame],
    rules: DuplicatesRuleConfig,
    seed: int,
) -> tuple[DataFrame, ClusterStats]:
    """Cluster near-duplicate videos; runs Spark jobs for the edges, components and counts.

    Edge lists of at most ``rules.max_driver_edges`` edges are collected and resolved by
    union-find on the driver; longer ones by label propagation in Spark
    (:func:`connected_components`). Both give the same clusters.

    Args:
      videos: Columns ``video_id``, ``title_tokens`` (array<string>), ``tags``
        (array<string>); one row per video.
      embeddings: Columns ``video_id``, ``embedding`` (array<float>), or None to use text
        only. Ignored when ``rules.min_cosine`` is null.
      rules: The ``rules.duplicates`` config.
      seed: Seed of the LSH hash functions.

    Returns:
      (clusters, stats). Clusters has columns ``video_id``, ``cluster_id`` for the videos
      that have at least one near-duplicate, and a video not listed is its own cluster.
      The cluster id is the smallest video id of the cluster.
    """
    spark = videos.sparkSession
    with_shingles = add_shingles(videos.select(VIDEO_ID, TITLE_TOKENS, TAGS))
    stats = ClusterStats()
    counts = with_shingles.agg(
        F.count(F.lit(1)).alias("videos"),
        F.sum((F.size(SHINGLES) == 0).cast("long")).alias("empty"),
    ).first()
    stats.videos = int(counts["videos"])
    stats.videos_without_shingles = int(counts["empty"] or 0)
    if stats.videos_without_shingles:
        logger.info(
            "%d of %d videos have no title tokens or tags; only embeddings can cluster them.",
            stats.videos_without_shingles,
            stats.videos,
        )

    identical, sets = identical_set_edges(with_shingles)
    buckets = text_buckets(sets, rules, seed).withColumn("_kind", F.lit("text"))
    use_embeddings = embeddings is not None and rules.min_cosine is not None
    if use_embeddings:
        vectors = embeddings.where(F.col(EMBEDDING).isNotNull()).select(VIDEO_ID, EMBEDDING)
        buckets = buckets.unionByName(
            embedding_buckets(vectors, rules, seed).withColumn("_kind", F.lit("embedding"))
        )
    # Materialised once: the skipped-bucket count and the pairs both read it.
    sized = size_buckets(buckets).localCheckpoint()
    stats.skipped_buckets = {"text": 0, "embedding": 0} if use_embeddings else {"text": 0}
    skipped = (
        sized.where(F.col("_size") > rules.max_bucket_size)
        .groupBy("_kind")
        .agg(F.countDistinct("_table", "_key").alias("buckets"))
        .collect()
    )
    for row in skipped:
        stats.skipped_buckets[row["_kind"]] = int(row["buckets"])
        logger.warning(
            "Skipped %d %s LSH buckets with more than %d videos; pairs inside them were "
            "not compared.",
            row["buckets"],
            row["_kind"],
            rules.max_bucket_size,
        )

    pairs = candidate_pairs(sized, rules.max_bucket_size)
    edges = identical.unionByName(
        jaccard_edges(pairs.where(F.col("_kind") == "text"), sets, rules.min_jaccard)
    ).withColumn("_kind", F.lit("text"))
    if use_embeddings:
        similar = cosine_edges(
            pairs.where(F.col("_kind") == "embedding"), vectors, rules.min_cosine
        )
        edges = edges.unionByName(similar.withColumn("_kind", F.lit("embedding")))
    edges = edges.localCheckpoint()
    per_kind = {row["_kind"]: int(row["count"]) for row in edges.groupBy("_kind").count().collect()}
    stats.text_edges = per_kind.get("text", 0)
    stats.embedding_edges = per_kind.get("embedding", 0)

    schema = f"{VIDEO_ID} string, {CLUSTER_ID} string"
    if stats.text_edges + stats.embedding_edges <= rules.max_driver_edges:
        pairs = [(row[_SRC], row[_DST]) for row in edges.select(_SRC, _DST).collect()]
        labels = sorted(union_find_components(pairs).items())
        clusters = spark.createDataFrame(labels, schema)
        stats.iterations, stats.converged = 0, True
    else:
        clusters, stats.iterations, stats.converged = connected_components(
            edges, rules.max_iterations
        )
        labels = None

    if labels is not None:
        sizes: dict[str, int] = {}
        for _, cluster in labels:
            sizes[cluster] = sizes.get(cluster, 0) + 1
        stats.clusters = len(sizes)
        stats.videos_clustered = len(labels)
        stats.max_cluster_size = max(sizes.values(), default=0)
    else:
        row = (
            clusters.groupBy(CLUSTER_ID)
            .count()
            .agg(
                F.count(F.lit(1)).alias("clusters"),
                F.sum("count").alias("videos"),
                F.max("count").alias("largest"),
            )
            .first()
        )
        stats.clusters = int(row["clusters"])
        stats.videos_clustered = int(row["videos"] or 0)
        stats.max_cluster_size = int(row["largest"] or 0)
    return clusters, stats


def cluster_key(cluster_id: Column | str = CLUSTER_ID, video_id: Column | str = VIDEO_ID) -> Column:
    """Return the cluster of a row: its ``cluster_id``, or its own video id when unclustered."""
    cluster_id = F.col(cluster_id) if isinstance(cluster_id, str) else cluster_id
    video_id = F.col(video_id) if isinstance(video_id, str) else video_id
    return F.coalesce(cluster_id, video_id)
