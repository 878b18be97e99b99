"""The spark-submit entry point: ``run.py <job> [--config FILE]... [--set KEY=VALUE]...``."""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

JOBS = (
    "generate",
    "ingest",
    "build_features",
    "build_training_set",
    "train_two_tower",
    "build_index",
    "generate_candidates",
    "mine_hard_negatives",
    "train_ranker",
    "recommend",
    "validate_output",
    "evaluate",
    "benchmark",
    "pipeline",
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: spark-submit.sh <job> [--config FILE]... [--set KEY=VALUE]...\n"
            f"jobs: {', '.join(JOBS)}"
        )
        return 0 if argv else 2
    job, rest = argv[0], argv[1:]
    if job not in JOBS:
        print(f"error: unknown job {job!r}; choose one of: {', '.join(JOBS)}.", file=sys.stderr)
        return 2
    if rest == ["--check"]:
        # spark-submit.sh checks the job name this way before spark-submit starts a JVM.
        return 0
    module = importlib.import_module(f"jobs.{job}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
