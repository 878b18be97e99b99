"""Benchmark: reproduce the public MovieLens protocol and compare our pipeline with peers
(popularity, Spark MLlib ALS, cornac EASE and BPR) on a stratified and a temporal split.

Ingests the configured source into the run's lake first, then writes both result tables
to lake/benchmark/<run_id>/results.json and into benchmark.markdown_path.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from recsys_spark import io
from recsys_spark.cli import job_main, run_stage
from recsys_spark.columns import INTERACTIONS, USERS, VIDEOS
from recsys_spark.evaluation import benchmark
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)


def run(run: Run) -> dict[str, Any]:
    from jobs import ingest

    spark, config, lake = run.spark, run.config, run.lake
    settings = config.benchmark
    run_stage("ingest", ingest.run, run)
    interactions = benchmark.protocol_interactions(
        io.read_table(spark, lake.raw(INTERACTIONS), "raw interactions"), settings.event_types
    ).persist()
    if interactions.isEmpty():
        raise ValueError(
            f"No interactions of types {list(settings.event_types)} in {lake.raw(INTERACTIONS)}; "
            "set benchmark.event_types to event types the source has."
        )
    users = io.read_table(spark, lake.raw(USERS), "raw users")
    videos = io.read_table(spark, lake.raw(VIDEOS), "raw videos")

    protocols = [benchmark.stratified_protocol(interactions, settings, config.seed)]
    if settings.temporal:
        protocols.append(benchmark.temporal_protocol(interactions, settings))

    checkpoints = lake.path("benchmark", run.run_id, "checkpoints")
    results = {}
    for protocol in protocols:
        logger.info("Benchmark protocol %s: %s", protocol.name, protocol.counts)
        rows = [benchmark.run_peer(name, protocol, config, checkpoints) for name in settings.peers]
        rows += benchmark.run_ours_or_explain(run, protocol, users, videos)
        results[protocol.name] = rows

    records = benchmark.result_records(results)
    results_path = lake.path("benchmark", run.run_id, "results.json")
    io.write_json(
        spark,
        results_path,
        {
            "protocols": {p.name: {"title": p.title, **p.counts} for p in protocols},
            "results": records,
        },
    )
    section = benchmark.markdown_section(protocols, results, config)
    if settings.markdown_path:
        benchmark.write_markdown(settings.markdown_path, section)
        logger.info("Replaced %r in %s", benchmark.SECTION_HEADING, settings.markdown_path)
    for protocol in protocols:
        protocol.train.unpersist()
        protocol.relevant.unpersist()
    interactions.unpersist()
    io.delete(spark, checkpoints)
    return {
        "results": results_path,
        "markdown": settings.markdown_path,
        "protocols": {p.name: p.counts for p in protocols},
        "models": {
            name: {r.model: (r.metrics or {}).get(f"ndcg_at_{settings.k}") for r in rows}
            for name, rows in results.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("benchmark", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
