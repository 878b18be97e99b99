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
import datetime as dt
import logging
import os
import platform
import posixpath
import shlex
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from jobs import build_features, build_training_set, ingest
from recsys_spark import columns as C
from recsys_spark import io
from recsys_spark.cli import configure_logging
from recsys_spark.config import load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark
from recsys_spark.synthetic import generate

logger = logging.getLogger("bench_features")

SECTION = "## Features and training sets"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        action="append",
        choices=("tiny", "s", "m", "l"),
        help="Synthetic size tier; repeat for several, smallest first (default: s).",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument(
        "--work-dir",
        default=str(REPO_ROOT / "lake-benchmark" / "features"),
        help="Parent folder of the sizes' lakes (default: lake-benchmark/features).",
    )
    parser.add_argument("--append", metavar="FILE", help="Append the results to this file.")
    return parser.parse_args(argv)


def bench_size(size: str, args: argparse.Namespace) -> dict[str, float]:
    """Prepare one size tier's lake, then time both jobs on it."""
    lake = posixpath.join(args.work_dir, size)
    source = posixpath.join(lake, "synthetic-source")
    base = [f"data.size={size}", f"lake.root={lake}"]
    config = load_config(args.config, ["data.source=synthetic", *base, *args.overrides])
    spark = get_spark(config)
    for name, table in generate(spark, config).items():
        io.write_table(table, posixpath.join(source, name))
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
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = (
        f"Machine: {os.cpu_count()} cores, {memory_gib:.0f} GiB, shared with other jobs (load "
        f"average over 1, 5, 15 min at the end: {load}); {platform.platform()}; Python "
        f"{platform.python_version()}. Date: {dt.date.today().isoformat()}."
    )
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
        machine,
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
    args = parse_args(argv)
    results = {size: bench_size(size, args) for size in args.size or ["s"]}
    command = "python benchmarks/bench_features.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    text = markdown(results, command)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
