"""The pipeline's stage order, with and without the hard-negative second round."""

from jobs.pipeline import STAGES, stage_plan
from recsys_spark.runs import Run


def _plan(make_config, *overrides):
    run = Run(spark=None, config=make_config(*overrides))
    return [summary_name for summary_name, _ in stage_plan(run)]


def test_one_round_by_default(make_config):
    assert _plan(make_config) == list(STAGES)


def test_mined_negatives_add_second_round(make_config):
    plan = _plan(make_config, "training.negatives.mined=5")
    at = plan.index("build_index") + 1
    assert plan[at : at + 4] == [
        "mine_hard_negatives:round2",
        "build_training_set:round2",
        "train_two_tower:round2",
        "build_index:round2",
    ]
    # The later stages run once, on the second model.
    assert plan[at + 4 :] == list(STAGES[STAGES.index("build_index") + 1 :])
