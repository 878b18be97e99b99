"""Near-duplicate rule: LSH edges, connected components, one video per cluster in a list."""

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from recsys_spark.postprocess.apply import tag_near_duplicates
from recsys_spark.postprocess.duplicates import (
    add_shingles,
    cluster_near_duplicates,
    connected_components,
    union_find_components,
)
from recsys_spark.settings import DuplicatesRuleConfig

VIDEOS_SCHEMA = "video_id string, title_tokens array<string>, tags array<string>"
EMBEDDINGS_SCHEMA = "video_id string, embedding array<float>"

# a1 ~ a2 by text (Jaccard 6/8 = 0.75), a2 ~ f1 by embedding (cosine 0.995): one cluster
# through the chain although a1 and f1 share nothing. c1 = c2 (identical shingles).
# d1 ~ e1 by embedding only (e1 has no shingle). b1, b2 have Jaccard 5/9 = 0.56 < 0.7.
# g1 has null tokens, null tags and no embedding.
VIDEOS = [
    ("a1", ["cat", "piano", "song"], ["piano"]),
    ("a2", ["cat", "piano", "song", "live"], ["piano"]),
    ("b1", ["election", "night", "recap"], ["politics"]),
    ("b2", ["election", "night", "recap", "full"], ["news"]),
    ("c1", ["pasta"], ["Food"]),
    ("c2", ["pasta"], ["food "]),
    ("d1", ["deep", "sea"], ["ocean"]),
    ("e1", [], []),
    ("f1", ["violin", "solo"], ["strings"]),
    ("g1", None, None),
]
EMBEDDINGS = [
    ("a1", [0.0, 0.0, 1.0]),
    ("a2", [0.0, 1.0, 0.0]),
    ("b1", [0.5, 0.5, 0.5]),
    ("b2", [-1.0, 0.0, 0.0]),
    ("c1", [0.0, 0.0, -1.0]),
    ("c2", [0.0, -1.0, 0.0]),
    ("d1", [1.0, 0.0, 0.0]),
    ("e1", [0.99, 0.1, 0.0]),
    ("f1", [0.0, 0.99, 0.1]),
    ("g1", None),
]
EXPECTED_CLUSTERS = [
    ("a1", "a1"),
    ("a2", "a1"),
    ("c1", "c1"),
    ("c2", "c1"),
    ("d1", "d1"),
    ("e1", "d1"),
    ("f1", "a1"),
]
# Twenty bands of four rows compare a pair of Jaccard 0.75 with probability 0.9995.
RULES = DuplicatesRuleConfig(min_jaccard=0.7, bands=20, rows_per_band=4, min_cosine=0.98)


def test_union_find_merges_chains():
    labels = union_find_components([("b", "c"), ("a", "b"), ("y", "x"), ("c", "a")])
    assert labels == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x"}


def test_shingles_words_pairs_tags(spark):
    videos = spark.createDataFrame(VIDEOS, VIDEOS_SCHEMA)
    rows = {row.video_id: row.shingles for row in add_shingles(videos).collect()}
    assert rows["a1"] == sorted(["cat", "piano", "song", "cat piano", "piano song", "tag:piano"])
    # Tags are trimmed and lower-cased, so c1 and c2 have the same set.
    assert rows["c1"] == rows["c2"] == ["pasta", "tag:food"]
    assert rows["e1"] == []
    assert rows["g1"] == []


def test_clusters_text_embedding_chain(spark):
    videos = spark.createDataFrame(VIDEOS, VIDEOS_SCHEMA)
    embeddings = spark.createDataFrame(EMBEDDINGS, EMBEDDINGS_SCHEMA)
    clusters, stats = cluster_near_duplicates(videos, embeddings, RULES, seed=42)
    expected = spark.createDataFrame(EXPECTED_CLUSTERS, "video_id string, cluster_id string")
    assertDataFrameEqual(clusters, expected)
    assert stats.videos == 10
    assert stats.videos_without_shingles == 2
    # a1-a2 by MinHash, c1-c2 as identical sets; a2-f1 and d1-e1 by embeddings.
    assert stats.text_edges == 2
    assert stats.embedding_edges == 2
    assert stats.clusters == 3
    assert stats.videos_clustered == 7
    assert stats.max_cluster_size == 3


def test_spark_propagation_matches_union_find(spark):
    # The edges of the chain test above, in both directions and with a repeat.
    pairs = [("a1", "a2"), ("f1", "a2"), ("c1", "c2"), ("d1", "e1"), ("a2", "a1")]
    edges = spark.createDataFrame(pairs, "src string, dst string")
    labels, rounds, converged = connected_components(edges, max_iterations=10)
    expected = spark.createDataFrame(EXPECTED_CLUSTERS, "video_id string, cluster_id string")
    assertDataFrameEqual(labels, expected)
    assert sorted(union_find_components(pairs).items()) == EXPECTED_CLUSTERS
    assert converged
    # The chain a1 - a2 - f1 has two edges, so two rounds change labels and a third
    # finds nothing to change.
    assert rounds == 3


def test_propagation_stops_at_max_rounds(spark):
    edges = spark.createDataFrame([("a", "b"), ("b", "c"), ("c", "d")], "src string, dst string")
    labels, rounds, converged = connected_components(edges, max_iterations=1)
    assert rounds == 1
    assert not converged
    # One round moves each label one edge: d still has c's label, which is b.
    result = {row.video_id: row.cluster_id for row in labels.collect()}
    assert result == {"a": "a", "b": "a", "c": "b", "d": "c"}


def test_text_only_without_embeddings(spark):
    videos = spark.createDataFrame(VIDEOS, VIDEOS_SCHEMA)
    clusters, stats = cluster_near_duplicates(videos, None, RULES, seed=42)
    expected = spark.createDataFrame(
        [("a1", "a1"), ("a2", "a1"), ("c1", "c1"), ("c2", "c1")],
        "video_id string, cluster_id string",
    )
    assertDataFrameEqual(clusters, expected)
    assert stats.embedding_edges == 0


def test_list_keeps_best_of_cluster(spark):
    rows = spark.createDataFrame(
        [
            # u1: v1 and v2 share cluster K; v2 scores higher, so v1 goes.
            ("u1", "v1", "K", 0, 0.9, None),
            ("u1", "v2", "K", 0, 0.95, None),
            ("u1", "v3", None, 0, 0.5, None),
            # u2: v2 was already removed by another rule, so v1 stays.
            ("u2", "v1", "K", 0, 0.9, None),
            ("u2", "v2", "K", 0, 0.95, "region_blocked"),
            # u3: a ranked candidate (tier 0) beats backfill (tier 1) of the same cluster.
            ("u3", "v1", "K", 1, 0.99, None),
            ("u3", "v2", "K", 0, 0.1, None),
        ],
        "user_id string, video_id string, cluster_id string, tier int, rule_score double, "
        "reason string",
    )
    tagged = tag_near_duplicates(rows, enabled=True)
    result = {
        (row.user_id, row.video_id): row.reason
        for row in tagged.select("user_id", "video_id", "reason").collect()
    }
    assert result == {
        ("u1", "v1"): "near_duplicate",
        ("u1", "v2"): None,
        ("u1", "v3"): None,
        ("u2", "v1"): None,
        ("u2", "v2"): "region_blocked",
        ("u3", "v1"): "near_duplicate",
        ("u3", "v2"): None,
    }
    assert tag_near_duplicates(rows, enabled=False).where(F.col("reason").isNotNull()).count() == 1
