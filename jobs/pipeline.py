"""Run every stage in order in one Spark session, sharing one run id and summary.

With ``training.negatives.mined > 0`` the pipeline trains twice: after the first index it
mines hard negatives with that model, rebuilds the training set with them, and trains and
indexes a second model, which the later stages use. The second round's stages appear in
the run summary with a ``:round2`` suffix. The two-tower loss uses the mined negatives when
``two_tower.row_negatives > 0`` and ``mined`` is among ``two_tower.row_negative_types``.
"""

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


# Stages run again, after the first index, when hard-negative mining is on.
SECOND_ROUND = ("mine_hard_negatives", "build_training_set", "train_two_tower", "build_index")


def stage_plan(run: Run) -> list[tuple[str, str]]:
    """Return the (summary name, job module) pairs that this run's config requests."""
    plan = [(name, name) for name in STAGES]
    if run.config.training.negatives.mined > 0:
        at = STAGES.index("build_index") + 1
        plan[at:at] = [(f"{name}:round2", name) for name in SECOND_ROUND]
    return plan


def run(run: Run) -> dict[str, Any]:
    plan = stage_plan(run)
    for summary_name, module_name in plan:
        module = importlib.import_module(f"jobs.{module_name}")
        run_stage(summary_name, module.run, run)
    _print_outcome(run.stages)
    return {"stages": [summary_name for summary_name, _ in plan]}


def _print_outcome(stages: dict[str, Any]) -> None:
    """Print where the recommendations and the report are, with the headline numbers."""
    recommend, evaluate = stages["recommend"], stages["evaluate"]
    ndcg, recall = (evaluate.get(key) for key in ("ndcg_at_10", "recall_at_10"))
    print(
        f"Recommendations: {recommend['output']}\n"
        f"  {recommend['users']} users, {recommend['rows']} rows (k={recommend['k']}), "
        f"{recommend['users_with_k']} users with a full list, "
        f"{recommend['fallback_users']} on the fallback list, scored by {recommend['scorer']}\n"
        f"Evaluation: nDCG@10 {_metric(ndcg)}, recall@10 {_metric(recall)} "
        f"over {evaluate['users_evaluated']} users; "
        f"report {evaluate['report']}"
    )


def _metric(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("pipeline", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
