"""Benchmark the synthetic generator and the ingest job: events per second per size tier.

For each size tier this generates the three synthetic tables and writes them as Parquet
(generator throughput), then runs the ingest job on those Parquet tables (ingest
throughput: read, validate, write raw and quarantine tables and id maps). Both run in one
Spark session and are timed with a wall clock. It prints a Markdown table; --append FILE
appends it as a ``## Generator and ingest throughput`` section.

  python benchmarks/bench_ingest.py --size s --size m \\
      --set spark.master=local[2] --set spark.driver_memory=4g --append BENCHMARKS.md

Every size gets its own lake under --work-dir. Extra --config files and --set overrides
apply to every size.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import sys
import time

from common import (
    command_line,
    machine_line,
    parse_tier_args,
    publish,
    write_synthetic_source,
)

from jobs import ingest
from recsys_spark import columns as C
from recsys_spark.cli import configure_logging
from recsys_spark.config import load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

logger = logging.getLogger("bench_ingest")

SECTION = "## Generator and ingest throughput"


def bench_size(size: str, args: argparse.Namespace) -> dict[str, float]:
    """Generate and ingest one size tier; return the event count and both timings."""
    lake = posixpath.join(args.work_dir, size)
    source = posixpath.join(lake, "synthetic-source")
    base = [f"data.size={size}", f"lake.root={lake}"]
    config = load_config(args.config, ["data.source=synthetic", *base, *args.overrides])
    spark = get_spark(config)

    started = time.perf_counter()
    write_synthetic_source(spark, config, source)
    generate_s = time.perf_counter() - started
    events = spark.read.parquet(posixpath.join(source, C.INTERACTIONS)).count()
    logger.info("%s: generated %d events in %.1fs", size, events, generate_s)

    parquet_source = ["data.source=parquet", f"data.path={source}"]
    config = load_config(args.config, [*base, *parquet_source, *args.overrides])
    started = time.perf_counter()
    summary = ingest.run(Run(spark=spark, config=config))
    ingest_s = time.perf_counter() - started
    loaded = summary["tables"][C.INTERACTIONS]["loaded"]
    logger.info("%s: ingested %d events (%d loaded) in %.1fs", size, events, loaded, ingest_s)
    return {"events": events, "loaded": loaded, "generate_s": generate_s, "ingest_s": ingest_s}


def markdown(results: dict[str, dict[str, float]], command: str) -> str:
    method = (
        "Generator: the three synthetic tables generated and written as Parquet. Ingest: "
        "the ingest job on those Parquet tables (validation, raw and quarantine tables, id "
        "maps). Wall-clock seconds; events per second = interactions / seconds."
    )
    lines = [
        SECTION,
        "",
        f"Command: `{command}`",
        "",
        machine_line(),
        "",
        method,
        "",
        "| size | events | generator s | generator events/s | ingest s | ingest events/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size, r in results.items():
        lines.append(
            f"| {size} | {r['events']:,} | {r['generate_s']:.1f} | "
            f"{r['events'] / r['generate_s']:,.0f} | {r['ingest_s']:.1f} | "
            f"{r['events'] / r['ingest_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_tier_args(__doc__, "lake-benchmark/ingest", argv)
    results = {size: bench_size(size, args) for size in args.size or ["s"]}
    publish(markdown(results, command_line("bench_ingest.py", argv)), args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
