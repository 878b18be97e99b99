"""Shared fixtures: one local Spark session for the whole test run, and a config factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsys_spark.config import load_config
from recsys_spark.session import get_spark

REPO_ROOT = Path(__file__).resolve().parent.parent
MOVIELENS_100K = REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Keep Spark's driver and block manager on loopback.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local SparkSession shared by every test (two cores, few shuffle partitions)."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    config = load_config(
        overrides=[
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            "spark.driver_memory=2g",
            "spark.log_level=ERROR",
            f"lake.root={warehouse / 'lake'}",
            "spark.conf={spark.sql.warehouse.dir: "
            + str(warehouse)
            + ", spark.ui.enabled: 'false'}",
        ]
    )
    session = get_spark(config)
    yield session
    session.stop()


@pytest.fixture
def make_config(tmp_path):
    """Build a Config for a test, with its lake in the test's own temporary folder."""

    def make(*overrides: str, files=()):
        return load_config(
            files,
            [
                f"lake.root={tmp_path / 'lake'}",
                "spark.master=local[2]",
                "spark.shuffle_partitions=2",
                "data.size=tiny",
                *overrides,
            ],
        )

    return make


@pytest.fixture(scope="session")
def movielens_100k():
    """Path of the unmodified MovieLens 100K release, or skip when it is absent."""
    if not (MOVIELENS_100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {MOVIELENS_100K}; it is read, never copied.")
    return MOVIELENS_100K
