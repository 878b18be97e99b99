"""Versioned model folders and the LATEST file."""

import pytest

from recsys_spark import io
from recsys_spark.versions import ModelVersions

VERSIONS = ModelVersions("thing", "thing model", "train_thing")


def test_new_version_suffix_per_extra_version(spark, tmp_path):
    lake = io.Lake(str(tmp_path / "lake"))
    assert VERSIONS.new_version(spark, lake, "run1") == "run1"
    io.write_text(spark, VERSIONS.path(lake, "run1") + "/metadata.json", "{}")
    assert VERSIONS.new_version(spark, lake, "run1") == "run1-2"
    io.write_text(spark, VERSIONS.path(lake, "run1-2") + "/metadata.json", "{}")
    assert VERSIONS.new_version(spark, lake, "run1") == "run1-3"
    assert VERSIONS.new_version(spark, lake, "run2") == "run2"


def test_latest_names_the_job_when_missing_or_empty(spark, tmp_path):
    lake = io.Lake(str(tmp_path / "lake"))
    with pytest.raises(FileNotFoundError, match="No thing model found: .*Run the train_thing"):
        VERSIONS.latest(spark, lake)
    io.write_text(spark, VERSIONS.latest_path(lake), "\n")
    with pytest.raises(FileNotFoundError, match="is empty; rerun train_thing"):
        VERSIONS.resolve(spark, lake, None)

    VERSIONS.set_latest(spark, lake, "run1-2")
    assert VERSIONS.latest(spark, lake) == "run1-2"
    assert VERSIONS.resolve(spark, lake, None) == "run1-2"
    assert VERSIONS.resolve(spark, lake, "run0") == "run0"
    assert VERSIONS.latest_path(lake) == str(tmp_path / "lake" / "models" / "thing" / "LATEST")
