"""Benchmark the rankers: nDCG@k and AUC of each ranker and of the retrieval order.

For each dataset this runs the stages up to generate_candidates (skip them with
--skip-upstream when the lake already has them), then the train_ranker job, all in one
Spark session, and prints one Markdown table per dataset: the comparison table that
train_ranker computes on its ranker-validation users. --append FILE appends the tables
as a ``## Rankers`` section.

  python benchmarks/bench_rankers.py --dataset movielens-100k --dataset synthetic-s \\
      --set spark.master=local[2] --append BENCHMARKS.md

Each dataset gets its own lake under --work-dir. Extra --config files and --set
overrides apply to every dataset, after the dataset's own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from typing import Any

# common puts the repository root on sys.path, so the package imports follow it.
from common import REPO_ROOT, command_line, machine_line, publish

from recsys_spark.cli import configure_logging, run_stage
from recsys_spark.config import load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

logger = logging.getLogger("bench_rankers")

MOVIELENS_100K = REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"

# Config files and overrides of each dataset, applied before the command line's.
DATASETS: dict[str, dict[str, list[str]]] = {
    "movielens-100k": {"files": ["movielens"], "overrides": [f"data.path={MOVIELENS_100K}"]},
    "synthetic-s": {"files": [], "overrides": ["data.source=synthetic", "data.size=s"]},
}

UPSTREAM_STAGES = (
    "ingest",
    "build_features",
    "build_training_set",
    "train_two_tower",
    "build_index",
    "generate_candidates",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        action="append",
        choices=sorted(DATASETS),
        help="Dataset to benchmark; repeat for several (default: all).",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument(
        "--work-dir",
        default=str(REPO_ROOT / "lake-benchmark" / "rankers"),
        help="Parent folder of the datasets' lakes (default: lake-benchmark/rankers).",
    )
    parser.add_argument(
        "--skip-upstream",
        action="store_true",
        help="Run only train_ranker, on lakes that already hold candidates/validation.",
    )
    parser.add_argument("--append", metavar="FILE", help="Append the results to this file.")
    return parser.parse_args(argv)


def benchmark_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the stages for one dataset and return train_ranker's summary plus timings."""
    spec = DATASETS[name]
    config = load_config(
        [*spec["files"], *args.config],
        [
            *spec["overrides"],
            f"lake.root={os.path.join(args.work_dir, name)}",
            # No web UI: nothing but the driver itself needs to listen.
            "spark.conf={spark.ui.enabled: 'false'}",
            *args.overrides,
        ],
    )
    if config.spark.master.startswith("local"):
        # A local driver binds to loopback rather than to the host's network address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    run = Run(spark=get_spark(config), config=config)
    stage_seconds = {}
    stages = () if args.skip_upstream else UPSTREAM_STAGES
    for stage in (*stages, "train_ranker"):
        module = importlib.import_module(f"jobs.{stage}")
        started = time.perf_counter()
        summary = run_stage(stage, module.run, run)
        stage_seconds[stage] = round(time.perf_counter() - started, 1)
    return {"summary": summary, "stage_seconds": stage_seconds, "run_id": run.run_id}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _dataset_line(dataset: dict[str, dict[str, int]]) -> str:
    train, validation = dataset["train"], dataset["validation"]
    return (
        f"Ranker-train: {train['users']} users, {train['rows']} candidates, "
        f"{train['positives']} positives. Ranker-validation: {validation['users']} users, "
        f"{validation['rows']} candidates, {validation['positives']} positives."
    )


def markdown(results: dict[str, dict[str, Any]], command: str) -> str:
    """Return the ``## Rankers`` section for ``results`` (dataset name -> result)."""
    protocol = (
        "nDCG@k and AUC on the ranker-validation users (a seeded hash share of the users "
        "active in the validation period), re-ranking each user's candidates from "
        "candidates/validation. Train seconds include the Spark jobs that feed the model."
    )
    lines = ["## Rankers", "", f"Command: `{command}`", machine_line(), "", protocol]
    for name, result in results.items():
        summary = result["summary"]
        k = summary["k"]
        dataset = summary["dataset"]
        lines += [
            "",
            f"### {name}",
            "",
            _dataset_line(dataset),
            "",
            f"| ranker | nDCG@{k} | AUC | train s | chosen |",
            "|---|---|---|---|---|",
        ]
        for row in summary["comparison"]:
            if row["status"] != "trained":
                lines.append(f"| {row['model']} | skipped: {row['reason']} | | | |")
                continue
            seconds = "" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}"
            lines.append(
                f"| {row['model']} | {_number(row['ndcg_at_k'])} | {_number(row['auc'])} | "
                f"{seconds} | {'yes' if row['chosen'] else ''} |"
            )
        stages = ", ".join(
            f"{stage} {seconds}s" for stage, seconds in result["stage_seconds"].items()
        )
        lines += ["", f"Stage times: {stages}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    names = args.dataset or sorted(DATASETS)
    results = {name: benchmark_dataset(name, args) for name in names}
    publish(markdown(results, command_line("bench_rankers.py", argv)), args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
