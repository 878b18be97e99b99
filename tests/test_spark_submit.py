"""spark-submit.sh: the package zip built once per source version, and argument forwarding.

Every call runs with RECSYS_DRY_RUN=1, so the script builds the zip, prints the
spark-submit command and exits without starting Spark. The calls run on a copy of the
tree in a temporary folder, so the zip cache and the edited source never touch the repo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COPIED = ("spark-submit.sh", "scripts/build_pyfiles.py", "recsys_spark", "jobs", "conf")


@dataclass
class Submission:
    returncode: int
    stderr: str
    # The printed spark-submit command split into words, empty when none was printed.
    command: list[str]

    def values(self, option: str) -> list[str]:
        """Return the value after each occurrence of a spark-submit ``option``."""
        return [self.command[i + 1] for i, word in enumerate(self.command) if word == option]

    def job_args(self) -> list[str]:
        """Return the words after jobs/run.py: the job name and its arguments."""
        entry = next(i for i, word in enumerate(self.command) if word.endswith("jobs/run.py"))
        return self.command[entry + 1 :]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the files spark-submit.sh reads, without any built zip."""
    root = tmp_path_factory.mktemp("tree")
    for name in COPIED:
        source, target = REPO_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return root


def submit(tree: Path, *args: str) -> Submission:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SPARK_HOME", "RECSYS_CONF_DIR", "PYSPARK_PYTHON")
    }
    env.update(RECSYS_DRY_RUN="1", PYTHON=sys.executable)
    # The working folder is the copy, so `python -m recsys_spark.config` imports its sources.
    completed = subprocess.run(
        ["bash", str(tree / "spark-submit.sh"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = [line for line in completed.stderr.splitlines() if line.startswith("+ ")]
    command = printed[-1][2:].split() if printed else []
    return Submission(completed.returncode, completed.stderr, command)


def package_zip(submission: Submission) -> Path:
    (py_files,) = submission.values("--py-files")
    return Path(py_files.split(",")[0])


@pytest.fixture(scope="module")
def default_submission(tree) -> Submission:
    """The first call on the copied tree: it builds the zip, with the base config only."""
    result = submit(tree, "ingest")
    assert result.returncode == 0, result.stderr
    return result


def test_zip_built_once_per_version(tree, default_submission):
    built = package_zip(default_submission)
    assert built.parent == tree / "build" / "pyfiles"
    assert built.is_file()
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    assert "recsys_spark/__init__.py" in names
    assert "jobs/run.py" in names
    assert not any("__pycache__" in name for name in names)
    built_mtime = built.stat().st_mtime_ns

    second = submit(tree, "ingest")
    assert second.returncode == 0, second.stderr
    assert package_zip(second) == built
    # The unchanged tree reuses the zip rather than rewriting it.
    assert built.stat().st_mtime_ns == built_mtime
    assert sorted((tree / "build" / "pyfiles").glob("*.zip")) == [built]

    edited = tree / "recsys_spark" / "io.py"
    edited.write_text(edited.read_text() + "\n# edited by test_spark_submit\n")
    third = submit(tree, "ingest")
    assert third.returncode == 0, third.stderr
    rebuilt = package_zip(third)
    assert rebuilt != built
    assert rebuilt.is_file()
    with zipfile.ZipFile(rebuilt) as archive:
        source = archive.read("recsys_spark/io.py").decode()
    assert source.endswith("# edited by test_spark_submit\n")


def test_master_and_memory_from_config(tree, default_submission):
    # conf/base.yaml sets spark.master to local[*] and spark.driver_memory to 4g.
    assert default_submission.values("--master") == ["local[*]"]
    assert default_submission.values("--driver-memory") == ["4g"]
    overridden = submit(
        tree, "ingest", "--set", "spark.master=local[3]", "--set", "spark.driver_memory=3g"
    )
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.values("--master") == ["local[3]"]
    assert overridden.values("--driver-memory") == ["3g"]


def test_master_and_memory_passthrough_win(tree):
    passed = submit(
        tree,
        "ingest",
        "--set",
        "spark.master=local[3]",
        "--master",
        "spark://127.0.0.1:7077",
        "--driver-memory",
        "1g",
    )
    assert passed.returncode == 0, passed.stderr
    assert passed.values("--master") == ["spark://127.0.0.1:7077"]
    assert passed.values("--driver-memory") == ["1g"]


def test_submit_options_forwarded_and_merged(tree, tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("recommend:\n  k: 7\n")
    result = submit(
        tree,
        "pipeline",
        "--conf",
        "spark.executor.memory=2g",
        "--archives",
        "build/recsys-env.tar.gz#environment",
        "--conf",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--verbose",
        "--py-files",
        "extra.zip,more.py",
        "--files",
        "lookup.csv",
        "--config",
        str(overlay),
    )
    assert result.returncode == 0, result.stderr
    assert result.values("--conf") == [
        "spark.executor.memory=2g",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "spark.log.level=WARN",
    ]
    assert result.values("--archives") == ["build/recsys-env.tar.gz#environment"]
    assert "--verbose" in result.command

    (py_files,) = result.values("--py-files")
    assert py_files.split(",") == [str(package_zip(result)), "extra.zip", "more.py"]
    (files,) = result.values("--files")
    conf_files = sorted(str(path) for path in (tree / "conf").glob("*.yaml"))
    # The repo's configs, then the --config file by its absolute path, then the user's files.
    assert files.split(",") == [*conf_files, str(overlay), "lookup.csv"]
    # Every spark-submit option comes before the application file, every job option after.
    assert result.job_args() == ["pipeline", "--config", str(overlay)]


def test_job_args_kept_in_order(tree):
    result = submit(
        tree,
        "build_features",
        "--config",
        "local",
        "--set",
        "data.size=tiny",
        "--conf",
        "spark.a=1",
        "--set=recommend.k=5",
        "--master=local[2]",
        "--config=movielens",
        "--set",
        "data.path=/data/ml-100k",
    )
    assert result.returncode == 0, result.stderr
    # The --key=value forms are split into two words.
    assert result.job_args() == [
        "build_features",
        "--config",
        "local",
        "--set",
        "data.size=tiny",
        "--set",
        "recommend.k=5",
        "--config",
        "movielens",
        "--set",
        "data.path=/data/ml-100k",
    ]
    assert result.values("--conf") == ["spark.a=1", "spark.log.level=WARN"]
    assert "--master=local[2]" in result.command
    assert result.values("--master") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "stray"], "unexpected argument 'stray'"),
        (["ingest", "--set"], "--set needs a value"),
        (["ingest", "--config"], "--config needs a value"),
        (["ingest", "--conf"], "--conf needs a value"),
        (["ingest", "--master"], "--master needs a value"),
        (["ingest", "--py-files"], "--py-files needs a value"),
        (["ingest", "--set", "nosuch.key=1"], "Unknown config key 'nosuch'"),
        (["ingest", "--set", "recommend.k=zero"], "recommend.k"),
        (["ingest", "--config", "no-such-overlay"], "not found"),
    ],
)
def test_bad_args_rejected(tree, args, message):
    result = submit(tree, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.command == []


def test_log_level_from_config_unless_given(tree):
    from_config = submit(tree, "ingest", "--set", "spark.log_level=ERROR")
    assert from_config.returncode == 0, from_config.stderr
    assert from_config.values("--conf") == ["spark.log.level=ERROR"]
    given = submit(tree, "ingest", "--conf", "spark.log.level=INFO")
    assert given.returncode == 0, given.stderr
    assert given.values("--conf") == ["spark.log.level=INFO"]
