"""The pipeline's stage order, with and without the hard-negative second round."""

from jobs.pipeline import STAGES, stage_plan, without_mined_negatives
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


def test_first_round_ignores_mined_negatives(make_config):
    run = Run(spark=None, config=make_config("training.negatives.mined=5"))
    first_round = without_mined_negatives(run)
    assert first_round.config.training.negatives.mined == 0
    assert run.config.training.negatives.mined == 5
    # Same run: its id, and one summary that both rounds' stages add to.
    assert first_round.run_id == run.run_id
    assert first_round.stages is run.stages
