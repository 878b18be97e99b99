"""Job entry points: exit codes and the run summary of a failed run."""

import json

from recsys_spark.cli import job_main


def fail_stage(run):
    raise ValueError("data.path /nowhere not found")


def test_failed_stage_records_summary(spark, tmp_path):
    lake = tmp_path / "lake"
    status = job_main("ingest", fail_stage, ["--set", f"lake.root={lake}"])
    assert status == 1
    (summary_path,) = list((lake / "runs").glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["stages"]["ingest"]["status"] == "failed"
    assert "/nowhere" in summary["stages"]["ingest"]["error"]


def test_config_error_exits_two(spark, tmp_path, capsys):
    status = job_main("ingest", fail_stage, ["--set", "recommend.k=zero"])
    assert status == 2
    assert "recommend.k" in capsys.readouterr().err
