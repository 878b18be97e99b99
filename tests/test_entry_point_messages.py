"""Messages of the entry points: job names, config file lookup, config errors, generator log."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import run as run_entry
from recsys_spark import config as config_module
from recsys_spark.config import ConfigError, load_config
from recsys_spark.synthetic import generate

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_unknown_job_rejected_before_spark_submit(tmp_path):
    # The copy has only the two files the name check needs. Without the check, the script
    # would go on to the missing scripts/build_pyfiles.py and fail with another message.
    for name in ("spark-submit.sh", "jobs/run.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    environment = dict(os.environ, RECSYS_DRY_RUN="1", PYTHON=sys.executable)
    completed = subprocess.run(
        ["bash", str(tmp_path / "spark-submit.sh"), "nope"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "error: unknown job 'nope'; choose one of: generate, ingest" in completed.stderr
    # The spark-submit command is printed right before it runs; it must not be reached.
    assert "+ " not in completed.stderr


def test_run_check_mode():
    assert run_entry.main(["ingest", "--check"]) == 0
    assert run_entry.main(["nope", "--check"]) == 2


def test_config_candidates_without_double_suffix():
    with pytest.raises(ConfigError) as error:
        load_config(["nope.yaml"])
    assert "nope.yaml.yaml" not in str(error.value)
    assert str(config_module.CONF_DIR / "nope.yaml") in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config(["nope"])
    assert str(config_module.CONF_DIR / "nope.yaml") in str(error.value)


@dataclasses.dataclass(frozen=True)
class Section:
    limit: int = 0
    full_name: bool = False

    def __post_init__(self):
        if self.limit < 0:
            key = "section.limit" if self.full_name else "limit"
            raise ValueError(f"{key} must be >= 0, got {self.limit}.")


def test_section_error_prefix_only_when_needed():
    with pytest.raises(ConfigError) as error:
        load_config(["movielens"])
    assert str(error.value).startswith("data.path is required when data.source is 'movielens'")
    with pytest.raises(ConfigError, match=r"^section\.limit must be >= 0, got -1\.$"):
        config_module._build(Section, {"limit": -1, "full_name": True}, "section.", {})
    with pytest.raises(ConfigError, match=r"^section: limit must be >= 0, got -1\.$"):
        config_module._build(Section, {"limit": -1}, "section.", {})


def test_generator_logs_target_event_count(spark, make_config, caplog):
    with caplog.at_level(logging.INFO, logger="recsys_spark.synthetic.generator"):
        generate(spark, make_config("data.source=synthetic", "data.size=tiny"))
    # The tiny tier aims at 5,000 events; the generated count differs, so it is a target.
    assert "200 users, 150 videos, target 5000 events" in caplog.text
    assert "about" not in caplog.text
