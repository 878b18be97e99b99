"""Lake I/O: atomic replacement, partition replacement and JSON files."""

import pytest

from recsys_spark import io


def test_write_table_replaces_previous(spark, tmp_path):
    path = str(tmp_path / "t")
    io.write_table(spark.createDataFrame([(1,)], "x int"), path)
    io.write_table(spark.createDataFrame([(2,), (3,)], "x int"), path)
    assert sorted(r.x for r in spark.read.parquet(path).collect()) == [2, 3]
    assert [n for n in io.list_dir(spark, str(tmp_path)) if n.startswith("_")] == []


def test_failed_write_keeps_previous(spark, tmp_path):
    path = str(tmp_path / "t")
    io.write_table(spark.createDataFrame([(1,)], "x int"), path)
    failing = spark.createDataFrame([("a",)], "s string").selectExpr(
        "cast(raise_error('boom') as int) as x"
    )
    with pytest.raises(Exception, match="boom"):
        io.write_table(failing, path)
    assert [r.x for r in spark.read.parquet(path).collect()] == [1]
    assert io.list_dir(spark, str(tmp_path)) == ["t"]


def test_replace_partitions_keeps_others(spark, tmp_path):
    path = str(tmp_path / "p")
    io.write_table(
        spark.createDataFrame([(1, "d1"), (2, "d2")], "x int, d string"),
        path,
        partition_by=["d"],
    )
    io.write_table(
        spark.createDataFrame([(9, "d2")], "x int, d string"),
        path,
        partition_by=["d"],
        replace_partitions=True,
    )
    rows = sorted((r.x, r.d) for r in spark.read.parquet(path).collect())
    assert rows == [(1, "d1"), (9, "d2")]


def test_json_round_trip(spark, tmp_path):
    path = str(tmp_path / "runs" / "r1" / "summary.json")
    io.write_json(spark, path, {"a": [1, 2], "b": "é"})
    io.write_json(spark, path, {"a": [3], "b": "ü"})
    assert io.read_json(spark, path) == {"a": [3], "b": "ü"}


def test_read_missing_table_names_path(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        io.read_table(spark, str(tmp_path / "nowhere"))
