"""Benchmark build_features and build_training_set on synthetic size tiers.

For each size tier this generates the synthetic tables, writes them as Parquet and
ingests them (untimed set-up), then times the build_features and build_training_set
jobs with a wall clock in one Spark session. With two or more tiers it also reports the
ratio of each job's time to that of the first tier, next to the ratio of event counts.
When cost grows no faster than the data, the time ratio stays at or below the event
ratio. It prints a Markdown table; --append FILE appends it as a
``## Features and training sets`` section.

  python benchmarks/bench_features.py --size s --size m \\
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

from jobs import build_features, build_training_set, ingest
from recsys_spark import columns as C
from recsys_spark.cli import configure_logging
from recsys_spark.config import load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

logger = logging.getLogger("bench_features")

SECTION = "## Features and training sets"


def bench_size(size: str, args: argparse.Namespace) -> dict[str, float]:
    """Prepare one size tier's lake, then time both jobs on it."""
    lake = posixpath.join(args.work_dir, size)
    source = posixpath.join(lake, "synthetic-source")
    base = [f"data.size={size}", f"lake.root={lake}"]
    config = load_config(args.config, ["data.source=synthetic", *base, *args.overrides])
    spark = get_spark(config)
    write_synthetic_source(spark, config, source)
    parquet_source = ["data.source=parquet", f"data.path={source}"]
    config = load_config(args.config, [*base, *parquet_source, *args.overrides])
    ingested = ingest.run(Run(spark=spark, config=config))
    events = ingested["tables"][C.INTERACTIONS]["loaded"]
    logger.info("%s: ingested %d events", size, events)

    timings = {}
    summaries = {}
    for job in (build_features, build_training_set):
        name = job.__name__.rsplit(".", 1)[-1]
        started = time.perf_counter()
        summaries[name] = job.run(Run(spark=spark, config=config))
        timings[name] = time.perf_counter() - started
        logger.info("%s: %s took %.1fs", size, name, timings[name])
    rows = summaries["build_training_set"]["rows"]
    return {
        "events": events,
        "examples": sum(rows.values()),
        "features_s": timings["build_features"],
        "training_s": timings["build_training_set"],
    }


def markdown(results: dict[str, dict[str, float]], command: str) -> str:
    method = (
        "Each tier's synthetic tables are generated and ingested first (not timed). Then "
        "build_features (two snapshots of user and video features, vocabularies, item "
        "frequencies) and build_training_set (labels, splits, histories, negatives, three "
        "tables) run with the base config. Wall-clock seconds; examples = training, "
        "validation and test rows; ratios are relative to the first tier."
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
        "| size | events | examples | build_features s | build_training_set s "
        "| event ratio | build_features ratio | build_training_set ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = next(iter(results.values()))
    for size, r in results.items():
        lines.append(
            f"| {size} | {r['events']:,} | {r['examples']:,} | {r['features_s']:.1f} | "
            f"{r['training_s']:.1f} | {r['events'] / first['events']:.1f} | "
            f"{r['features_s'] / first['features_s']:.1f} | "
            f"{r['training_s'] / first['training_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_tier_args(__doc__, "lake-benchmark/features", argv)
    results = {size: bench_size(size, args) for size in args.size or ["s"]}
    publish(markdown(results, command_line("bench_features.py", argv)), args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
