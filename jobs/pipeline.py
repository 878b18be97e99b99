"""Run every stage in order in one Spark session, sharing one run id and summary.

With ``training.negatives.mined > 0`` the pipeline trains twice: after the first index it
mines hard negatives with that model, rebuilds the training set with them, and trains and
indexes a second model, which the later stages use. The first round ignores mined
negatives that an earlier run left in the lake. The second round's stages appear in the
run summary with a ``:round2`` suffix. The two-tower loss uses the mined negatives only
when ``two_tower.row_negatives > 0`` and ``mined`` is among
``two_tower.row_negative_types``; otherwise the pipeline warns that mining changes nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
from typing import Any, Optional, Sequence

from recsys_spark.cli import job_main, run_stage
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)

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


def without_mined_negatives(run: Run) -> Run:
    """Return ``run`` with ``training.negatives.mined = 0``, sharing its id and summary."""
    training = run.config.training
    negatives = dataclasses.replace(training.negatives, mined=0)
    config = dataclasses.replace(
        run.config, training=dataclasses.replace(training, negatives=negatives)
    )
    return dataclasses.replace(run, config=config)


def _warn_if_mining_is_unused(run: Run) -> None:
    settings = run.config.two_tower
    if settings.row_negatives > 0 and "mined" in settings.row_negative_types:
        return
    logger.warning(
        "training.negatives.mined is %d, but the two-tower loss reads no mined negatives "
        "(two_tower.row_negatives %d, row_negative_types %s), so the second training round "
        "will match the first. Set two_tower.row_negatives > 0 with 'mined' in "
        "two_tower.row_negative_types, or training.negatives.mined=0.",
        run.config.training.negatives.mined,
        settings.row_negatives,
        list(settings.row_negative_types),
    )


def run(run: Run) -> dict[str, Any]:
    plan = stage_plan(run)
    mining = run.config.training.negatives.mined > 0
    if mining:
        _warn_if_mining_is_unused(run)
    for summary_name, module_name in plan:
        module = importlib.import_module(f"jobs.{module_name}")
        stage_run = run
        if mining and summary_name == "build_training_set":
            # The first round trains before this run mined anything.
            stage_run = without_mined_negatives(run)
        run_stage(summary_name, module.run, stage_run)
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
