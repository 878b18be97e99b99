"""Run every stage in order in one Spark session, sharing one run id and summary."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional, Sequence

from recsys_spark.cli import job_main, run_stage
from recsys_spark.runs import Run

# Stage job modules in the order they run; each exposes run(run) -> summary dict.
STAGES = (
    "ingest",
    "build_features",
    "build_training_set",
    "train_two_tower",
    "build_index",
    "generate_candidates",
    "train_ranker",
    "recommend",
    # Keep evaluate last: it scores what the stages before it wrote.
    "evaluate",
)


def run(run: Run) -> dict[str, Any]:
    for name in STAGES:
        module = importlib.import_module(f"jobs.{name}")
        run_stage(name, module.run, run)
    return {"stages": list(STAGES)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("pipeline", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
