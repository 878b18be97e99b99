"""Benchmark retrieval: ScaNN against brute force, and candidate generation against ALS.

Part 1 (``ann``) indexes synthetic clustered unit vectors (``--items`` x ``--dim``) and
compares, on the same ``--queries`` queries drawn from the same clusters:

- exact NumPy search (BLAS matrix product and ``argpartition``) on one thread,
- ScaNN brute force (float32) on one thread,
- the ScaNN plan that build_index chooses for this corpus size, on one thread,

reporting build seconds, queries per second and recall@``--k`` against the exact result.

Part 2 (``candidates``) times the executor path of generate_candidates (query SavedModel,
ScaNN search, exclusion of watched videos, exact rescoring) on ``--users`` users and
``--videos`` videos at ``--candidates`` neighbours per user, and Spark MLlib
``ALSModel.recommendForAllUsers`` at the same sizes and K with rank = ``--dim``. The
query SavedModel is the two-tower query tower in ``features`` mode with random weights
(the timing does not depend on what it learned).

  python benchmarks/bench_retrieval.py
  python benchmarks/bench_retrieval.py --parts ann --items 100000 --markdown BENCHMARKS.md

The report is printed as a Markdown section; ``--markdown FILE`` appends it to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from threadpoolctl import threadpool_limits

from recsys_spark.retrieval.index import (
    BRUTE_FORCE,
    Corpus,
    IndexPlan,
    VideoIndex,
    build_corpus,
    exact_top_k,
    import_scann,
    plan_index,
    tune_for_recall,
)
from recsys_spark.settings import IndexConfig

QUERY_BLOCK = 100


def clustered_unit_vectors(count: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (noise 0.5 per dimension)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        stop = min(count, start + 100_000)
        members = rng.integers(0, clusters, stop - start)
        noise = rng.normal(scale=0.5, size=(stop - start, dim)).astype(np.float32)
        vectors[start:stop] = centres[members] + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def recall(found: np.ndarray, exact_scores: np.ndarray, queries, corpus: Corpus) -> float:
    """Tie-tolerant recall@k, as recsys_spark.retrieval.index.recall_at_k computes it."""
    k = exact_scores.shape[1]
    threshold = exact_scores[:, k - 1] - 1e-5
    valid = found >= 0
    vectors = corpus.embeddings[np.where(valid, found, 0)]
    scores = np.einsum("bd,bkd->bk", queries, vectors)
    return float((valid & (scores >= threshold[:, None])).sum(axis=1).mean() / k)


class Stopwatch:
    """Wall-clock and process CPU seconds of a ``with`` block.

    On a machine shared with other jobs the wall clock includes waiting for a core, so
    single-threaded steps also report CPU seconds, which approximate an idle machine.
    """

    def __enter__(self):
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def timed_search(index: VideoIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, Stopwatch]:
    with Stopwatch() as watch:
        found = np.concatenate(
            [
                index.search(queries[i : i + QUERY_BLOCK], k)[0]
                for i in range(0, len(queries), QUERY_BLOCK)
            ]
        )
    return found, watch


def _tree_label(plan: IndexPlan, k: int, prefix: str) -> str:
    return (
        f"{prefix}: {plan.num_leaves} leaves, {plan.num_leaves_to_search} searched, "
        f"{plan.pre_reorder_neighbors(k)} re-ordered"
    )


def bench_ann(args) -> list[dict]:
    import_scann()  # imports TensorFlow, which must not count as build time
    tuning_count = 200
    vectors = clustered_unit_vectors(
        args.items + args.queries + tuning_count, args.dim, args.clusters, args.seed
    )
    queries = vectors[args.items : args.items + args.queries]
    tuning_queries = vectors[args.items + args.queries :]
    ids = np.arange(1, args.items + 1)
    corpus, _ = build_corpus(ids.astype(str), ids, vectors[: args.items])
    rows = []

    def measure(label: str, index: VideoIndex, build_seconds: float) -> None:
        found, watch = timed_search(index, queries, args.k)
        rows.append(
            {
                "method": label,
                "build_s": build_seconds,
                "qps": len(queries) / watch.wall,
                "qps_cpu": len(queries) / watch.cpu,
                "recall": recall(found, exact_scores, queries, corpus),
            }
        )

    with threadpool_limits(limits=1), Stopwatch() as watch:
        exact_positions, exact_scores = exact_top_k(queries, corpus.embeddings, args.k)
    rows.append(
        {
            "method": "NumPy exact (matmul + argpartition)",
            "build_s": 0.0,
            "qps": len(queries) / watch.wall,
            "qps_cpu": len(queries) / watch.cpu,
            "recall": recall(exact_positions, exact_scores, queries, corpus),
        }
    )

    brute_force = IndexPlan(BRUTE_FORCE, len(corpus), corpus.dim)
    started = time.perf_counter()
    index = VideoIndex.build(corpus, brute_force, args.k)
    measure("ScaNN brute force (float32)", index, time.perf_counter() - started)
    del index

    plan = plan_index(len(corpus), corpus.dim, IndexConfig())
    if plan.method == BRUTE_FORCE:
        return rows
    started = time.perf_counter()
    index = VideoIndex.build(corpus, plan, args.k)
    build_seconds = time.perf_counter() - started
    measure(_tree_label(plan, args.k, "ScaNN tree + AH + re-order (plan)"), index, build_seconds)
    # build_index widens the search on its own sample queries until recall reaches 0.9.
    steps = tune_for_recall(index, tuning_queries, args.k, IndexConfig().min_recall)
    if len(steps) > 1:
        label = _tree_label(index.plan, args.k, "same index, tuned on 200 other queries")
        measure(label, index, build_seconds)
    return rows


def _query_model(path: str, num_users: int, num_videos: int, dim: int) -> None:
    """Save a randomly initialised two-tower query tower with the serving signature."""
    from recsys_spark.models.export import save_query_model
    from recsys_spark.models.towers import IdEmbedding, QueryTower

    vocabularies = {
        "age_bucket": ["18-24", "25-34", "35-44"],
        "gender": ["f", "m"],
        "region": [f"r{i}" for i in range(8)],
        "language": ["en", "fr"],
    }
    tower = QueryTower(
        mode="features",
        num_users=num_users + 1,
        video_embedding=IdEmbedding(num_videos + 1, 32),
        vocabularies=vocabularies,
        embedding_dim=dim,
        id_embedding_dim=32,
        feature_embedding_dim=16,
        hidden_units=(128,),
    )
    save_query_model(tower, path)


def _users_frame(num_users: int, num_videos: int, history: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    histories = [rng.choice(num_videos, history, replace=False) + 1 for _ in range(num_users)]
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(1, num_users + 1)],
            "user_idx": np.arange(1, num_users + 1, dtype=np.int64),
            "age_bucket": rng.choice(["18-24", "25-34", "35-44"], num_users),
            "gender": rng.choice(["f", "m"], num_users),
            "region": rng.choice([f"r{i}" for i in range(8)], num_users),
            "language": rng.choice(["en", "fr"], num_users),
            "history_video_idx": [h.tolist() for h in histories],
            "as_of": as_of,
            # Watched videos are the history, as in a real snapshot.
            "exclude_video_idx": [h.tolist() for h in histories],
        }
    )


def bench_candidates(args, spark) -> dict:
    import pandas as pd
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from recsys_spark.retrieval.candidates import CandidateSpec, retrieve_candidates
    from recsys_spark.retrieval.serving import QUERY_DIR, TWO_TOWER_KEY, ship_index
    from recsys_spark.retrieval.sources import CO_VISITATION_VIDEO_IDX, POPULAR_VIDEO_IDX
    from recsys_spark.settings import CandidatesConfig

    history = 20
    vectors = clustered_unit_vectors(args.videos, args.dim, args.clusters, args.seed)
    ids = np.arange(1, args.videos + 1)
    corpus, _ = build_corpus(ids.astype(str), ids, vectors)
    plan = plan_index(len(corpus), corpus.dim, IndexConfig())
    index = VideoIndex.build(corpus, plan, args.candidates)
    pdf = _users_frame(args.users, args.videos, history, args.seed)
    users = spark.createDataFrame(pdf).select(
        "*",
        F.lit(None).cast("array<long>").alias(CO_VISITATION_VIDEO_IDX),
        F.lit(None).cast("array<long>").alias(POPULAR_VIDEO_IDX),
    )
    partitions = 2 * spark.sparkContext.defaultParallelism
    users = users.repartition(partitions).cache()
    users.count()

    with tempfile.TemporaryDirectory(prefix="bench-index-") as local:
        folder = os.path.join(local, f"bench-{os.getpid()}")
        metadata = {TWO_TOWER_KEY: {"version": "bench", "history_length": history}}
        index.save(folder, metadata)
        _query_model(os.path.join(folder, QUERY_DIR), args.users, args.videos, args.dim)
        name = ship_index(spark, folder)
        config = CandidatesConfig(
            num_candidates=args.candidates, co_visitation=0, popular_region=0, fresh=0
        )
        spec = CandidateSpec.from_config(config, name)
        loads = spark.sparkContext.accumulator(0)

        # The first pass loads TensorFlow and the index in every Python worker.
        started = time.perf_counter()
        retrieve_candidates(users, spec, partitions, loads).write.format("noop").mode(
            "overwrite"
        ).save()
        cold = time.perf_counter() - started
        started = time.perf_counter()
        retrieve_candidates(users, spec, partitions, loads).write.format("noop").mode(
            "overwrite"
        ).save()
        warm = time.perf_counter() - started

    rng = np.random.default_rng(args.seed + 1)
    per_user = max(1, args.interactions // args.users)
    items = np.concatenate(
        [rng.choice(args.videos, per_user, replace=False) + 1 for _ in range(args.users)]
    )
    ratings = spark.createDataFrame(
        pd.DataFrame(
            {
                "user": np.repeat(np.arange(1, args.users + 1), per_user).astype(np.int32),
                "item": items.astype(np.int32),
                "rating": np.ones(len(items), dtype=np.float32),
            }
        )
    ).cache()
    ratings.count()
    started = time.perf_counter()
    als = ALS(
        rank=args.dim,
        maxIter=5,
        implicitPrefs=True,
        seed=args.seed,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    ).fit(ratings)
    als_fit = time.perf_counter() - started
    started = time.perf_counter()
    als.recommendForAllUsers(args.candidates).write.format("noop").mode("overwrite").save()
    als_recommend = time.perf_counter() - started
    return {
        "plan": plan.method,
        "partitions": partitions,
        "index_loads": loads.value,
        "cold_s": cold,
        "warm_s": warm,
        "als_fit_s": als_fit,
        "als_recommend_s": als_recommend,
    }


def markdown(args, ann_rows, candidate_result, command: str) -> str:
    lines = [
        "## Retrieval",
        "",
        f"Command: `{command}`  ",
        f"Machine: 2 cores / 24 GB shared with other jobs (load average at the end "
        f"{os.getloadavg()[0]:.1f}), {platform.python_implementation()} "
        f"{platform.python_version()}; date {dt.date.today().isoformat()}.",
        "",
    ]
    if ann_rows is not None:
        lines += [
            f"### ScaNN vs brute force: {args.items:,} x {args.dim}-d synthetic clustered "
            f"unit vectors ({args.clusters} clusters), {args.queries} queries, k = {args.k}",
            "",
            "Every search runs on one thread; recall@k is measured against the exact "
            "top-k (tie-tolerant).",
            "",
            f"| method | build s (wall) | queries/s (wall) | queries/CPU-s | recall@{args.k} |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in ann_rows:
            lines.append(
                f"| {row['method']} | {row['build_s']:.1f} | {row['qps']:,.0f} | "
                f"{row['qps_cpu']:,.0f} | {row['recall']:.4f} |"
            )
        lines.append("")
    if candidate_result is not None:
        result = candidate_result
        users = args.users
        lines += [
            f"### Candidate generation vs ALS: {users:,} users, {args.videos:,} videos, "
            f"K = {args.candidates}, {args.dim}-d",
            "",
            f"Ours: generate_candidates' executor path on {result['partitions']} partitions "
            f"(query tower in features mode with random weights, ScaNN {result['plan']} "
            "search, watched-video exclusion, exact rescoring; extra sources off). ALS: "
            f"Spark MLlib, implicit, rank {args.dim}, 5 iterations on "
            f"{args.interactions:,} synthetic interactions; only recommendForAllUsers is "
            "compared.",
            "",
            "| step | seconds | users/s |",
            "|---|---:|---:|",
            f"| ours, first pass (loads TF and the index: {result['index_loads']} loads) | "
            f"{result['cold_s']:.1f} | {users / result['cold_s']:,.0f} |",
            f"| ours, second pass (index cached in the Python workers) | "
            f"{result['warm_s']:.1f} | {users / result['warm_s']:,.0f} |",
            f"| ALS recommendForAllUsers | {result['als_recommend_s']:.1f} | "
            f"{users / result['als_recommend_s']:,.0f} |",
            f"| ALS fit (not compared) | {result['als_fit_s']:.1f} | |",
            "",
        ]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=["ann", "candidates"], default=["ann", "candidates"]
    )
    parser.add_argument("--items", type=int, default=1_000_000, help="Corpus size of part 1.")
    parser.add_argument("--dim", type=int, default=64, help="Embedding size (and ALS rank).")
    parser.add_argument("--clusters", type=int, default=1000, help="Cluster centres.")
    parser.add_argument("--queries", type=int, default=500, help="Queries of part 1.")
    parser.add_argument("--k", type=int, default=100, help="Neighbours per query in part 1.")
    parser.add_argument("--users", type=int, default=10_000, help="Users of part 2 (tier s).")
    parser.add_argument("--videos", type=int, default=5_000, help="Videos of part 2 (tier s).")
    parser.add_argument(
        "--interactions", type=int, default=500_000, help="ALS training rows of part 2."
    )
    parser.add_argument("--candidates", type=int, default=200, help="K of part 2.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--master", default="local[2]", help="Spark master of part 2.")
    parser.add_argument("--markdown", help="Append the report to this Markdown file.")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/bench_retrieval.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    ann_rows = bench_ann(args) if "ann" in args.parts else None
    candidate_result = None
    if "candidates" in args.parts:
        from recsys_spark.config import load_config
        from recsys_spark.session import get_spark

        config = load_config(
            overrides=[
                f"spark.master={args.master}",
                "spark.driver_memory=4g",
                "spark.log_level=ERROR",
                "lake.root=/tmp/bench-retrieval-lake",
                # Local mode only: keep the driver on loopback and skip the web UI.
                "spark.conf={spark.driver.bindAddress: 127.0.0.1, spark.driver.host: "
                "127.0.0.1, spark.ui.enabled: 'false'}",
            ]
        )
        spark = get_spark(config)
        try:
            candidate_result = bench_candidates(args, spark)
        finally:
            spark.stop()
    report = markdown(args, ann_rows, candidate_result, command.strip())
    print(report)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write("\n" + report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
