"""Build a ScaNN index over the two-tower video embeddings and measure its recall.

Reads ``models/two_tower/<version>/embeddings`` (``index.model_version``, or LATEST) and
sizes the searcher from the corpus. Below ``index.brute_force_threshold`` videos it is
exact brute force, above it a k-means tree with anisotropic hashing and exact
re-ordering. The job measures recall@``index.recall_k`` against exact search on a
seeded sample of user queries. With ``index.tune_search``, a tree index then searches
more leaves (and re-orders more neighbours) until the recall reaches
``index.min_recall``, and the build fails without writing anything when it cannot.
The index and a copy of the query SavedModel go to ``models/index/<run id>/``, and
``models/index/LATEST`` then names that version.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import posixpath
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

import numpy as np
from pyspark.sql import functions as F

from recsys_spark import io, models
from recsys_spark.cli import job_main
from recsys_spark.columns import USER_ID, VIDEO_ID, VIDEO_IDX
from recsys_spark.config import to_dict
from recsys_spark.models.artifacts import EMBEDDINGS_DIR
from recsys_spark.models.artifacts import QUERY_DIR as MODEL_QUERY_DIR
from recsys_spark.retrieval import artifacts
from recsys_spark.retrieval.index import (
    VideoIndex,
    corpus_from_arrow,
    plan_index,
    tune_for_recall,
)
from recsys_spark.retrieval.serving import QUERY_COLUMNS, QUERY_DIR, TWO_TOWER_KEY, QueryEncoder
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)


def recall_queries(
    run: Run, encoder: QueryEncoder, corpus_embeddings: np.ndarray
) -> tuple[np.ndarray, str]:
    """Return the recall queries and where they come from (``users`` or ``videos``).

    The queries are the embeddings of ``index.recall_queries`` users of
    ``features/users/<index.recall_snapshot>``, chosen by a seeded hash of ``user_id``.
    Without that table they are as many corpus embeddings, drawn with the seed.
    """
    config = run.config.index
    path = run.lake.features("users", config.recall_snapshot)
    if io.exists(run.spark, path):
        users = (
            io.read_table(run.spark, path, f"features/users/{config.recall_snapshot}")
            .orderBy(F.xxhash64(F.lit(run.config.seed), F.col(USER_ID)), F.col(USER_ID))
            .limit(config.recall_queries)
            .select(*QUERY_COLUMNS)
            .toPandas()
        )
        if len(users):
            return encoder.encode(users), "users"
    logger.warning("No users at %s, so recall is measured with video embeddings as queries", path)
    rng = np.random.default_rng(run.config.seed)
    count = min(config.recall_queries, len(corpus_embeddings))
    return corpus_embeddings[rng.choice(len(corpus_embeddings), count, replace=False)], "videos"


def run(run: Run) -> dict[str, Any]:
    spark, lake, config = run.spark, run.lake, run.config.index
    model_version = config.model_version or models.latest_version(spark, lake)
    model_metadata = models.read_metadata(spark, lake, model_version)
    model_path = models.version_path(lake, model_version)
    embeddings = io.read_table(
        spark, posixpath.join(model_path, EMBEDDINGS_DIR), f"two-tower {model_version} embeddings"
    )
    table = embeddings.select(VIDEO_ID, VIDEO_IDX, "embedding").toArrow()
    corpus, duplicates = corpus_from_arrow(table, config.on_duplicate)
    plan = plan_index(len(corpus), corpus.dim, config)
    logger.info("Indexing %d videos of model %s: %s", len(corpus), model_version, plan)

    started = time.perf_counter()
    index = VideoIndex.build(corpus, plan, config.recall_k, config.training_threads)
    build_seconds = time.perf_counter() - started
    version = artifacts.new_version(spark, lake, run.run_id)
    with tempfile.TemporaryDirectory(prefix="recsys-index-") as local:
        folder = os.path.join(local, version)
        query_path = os.path.join(folder, QUERY_DIR)
        io.download_directory(spark, posixpath.join(model_path, MODEL_QUERY_DIR), query_path)
        encoder = QueryEncoder(query_path, int(model_metadata["history_length"]))
        queries, query_source = recall_queries(run, encoder, corpus.embeddings)
        started = time.perf_counter()
        target = config.min_recall if config.tune_search else 0.0
        steps = tune_for_recall(index, queries, config.recall_k, target)
        recall = steps[-1]["recall"]
        recall_seconds = time.perf_counter() - started
        logger.info(
            "Recall@%d of the %s index: %.4f over %d %s queries (%s)",
            config.recall_k,
            plan.method,
            recall,
            len(queries),
            query_source,
            steps,
        )
        if recall < config.min_recall:
            raise ValueError(
                f"Recall@{config.recall_k} of the index is {recall:.4f}, below "
                f"index.min_recall={config.min_recall}, after trying {steps}; nothing was "
                "written. Raise index.num_leaves or index.brute_force_threshold, or lower "
                "index.min_recall."
            )
        metadata = {
            "version": version,
            "run_id": run.run_id,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            TWO_TOWER_KEY: {
                "version": model_version,
                "history_length": int(model_metadata["history_length"]),
                "embedding_dim": corpus.dim,
            },
            "num_videos": len(corpus),
            "duplicates_dropped": duplicates,
            "recall": {
                "k": config.recall_k,
                "value": recall,
                "queries": len(queries),
                "query_source": query_source,
                "snapshot": config.recall_snapshot if query_source == "users" else None,
                "tuning": steps,
            },
            "build_seconds": round(build_seconds, 2),
            "config": to_dict(config),
        }
        index.save(folder, metadata)
        io.upload_directory(spark, folder, artifacts.version_path(lake, version))
    artifacts.write_latest(spark, lake, version)
    logger.info("Wrote index %s to %s", version, artifacts.version_path(lake, version))
    return {
        "version": version,
        "model_version": model_version,
        "method": plan.method,
        "num_videos": len(corpus),
        "duplicates_dropped": duplicates,
        "num_leaves": index.plan.num_leaves,
        "num_leaves_to_search": index.plan.num_leaves_to_search,
        "reorder_multiplier": index.plan.reorder_multiplier,
        f"recall_at_{config.recall_k}": round(recall, 4),
        "recall_queries": len(queries),
        "recall_query_source": query_source,
        "build_seconds": round(build_seconds, 2),
        "recall_seconds": round(recall_seconds, 2),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("build_index", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
