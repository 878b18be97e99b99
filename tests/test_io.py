"""Lake I/O: atomic replacement, partition replacement, recovery after a kill, JSON files."""

import pytest

from recsys_spark import io


class Killed(BaseException):
    """A simulated SIGKILL: like a kill, it skips every ``except Exception`` clean-up."""


def kill_after(monkeypatch, function: str, calls: int):
    """Make ``io.<function>`` raise :class:`Killed` once it has run ``calls`` times."""
    real = getattr(io, function)
    done = []

    def counted(*args, **kwargs):
        if len(done) == calls:
            raise Killed(f"killed before {function} call {calls + 1}")
        done.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(io, function, counted)


def values(spark, path):
    return sorted(row.x for row in spark.read.parquet(path).collect())


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


def test_read_empty_folder_names_path(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty at .*empty contains no Parquet file"):
        io.read_table(spark, str(tmp_path / "empty"), "empty")


def staged_pair(spark, tmp_path):
    """Two tables holding [1], and a staged new version of each holding [2]."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    io.write_tables(
        {
            first: spark.createDataFrame([(1,)], "x int"),
            second: spark.createDataFrame([(1,)], "x int"),
        }
    )
    staged = {}
    for destination in (first, second):
        staged[destination] = io.new_staging_path(spark, destination)
        spark.createDataFrame([(2,)], "x int").write.parquet(staged[destination])
    return first, second, staged


# A two-table commit makes four renames (set aside, move in, for each table), then deletes
# the two set-aside folders and the two journals.
@pytest.mark.parametrize(
    "function, calls, expected",
    [
        ("write_json", 1, [1]),  # between the two journals, before any rename
        ("_rename", 0, [1]),
        ("_rename", 1, [1]),  # first table set aside, not yet replaced
        ("_rename", 2, [1]),  # first table replaced, second untouched
        ("_rename", 3, [1]),  # second table set aside
        ("delete", 0, [2]),  # every rename done
        ("delete", 3, [2]),  # between the two journal deletions
    ],
)
def test_recover_settles_a_killed_commit(spark, tmp_path, monkeypatch, function, calls, expected):
    first, second, staged = staged_pair(spark, tmp_path)
    with monkeypatch.context() as patch:
        kill_after(patch, function, calls)
        with pytest.raises(Killed):
            io.commit_directories(spark, staged)

    # Each table's next write recovers it; a kill may leave the journal beside either.
    settled = [line for table in (first, second) for line in io.recover(spark, table)]
    assert len(settled) == 1
    assert ("completed" if expected == [2] else "undid") in settled[0]
    # The two tables are both old or both new, and nothing of the commit is left.
    assert values(spark, first) == values(spark, second) == expected
    assert io.list_dir(spark, str(tmp_path)) == ["first", "second"]


def test_next_write_undoes_killed_commit(spark, tmp_path, monkeypatch):
    first, second, staged = staged_pair(spark, tmp_path)
    with monkeypatch.context() as patch:
        kill_after(patch, "_rename", 3)
        with pytest.raises(Killed):
            io.commit_directories(spark, staged)
    # The kill left the second table set aside, so it is missing, and the first replaced.
    for table in (first, second):
        with pytest.raises(FileNotFoundError, match=r"killed run left unfinished \(.*_commit-"):
            io.read_table(spark, table, "table")
    assert values(spark, first) == [2]

    io.write_table(spark.createDataFrame([(3,)], "x int"), second)
    # The write first undid the whole interrupted commit, then replaced the second table.
    assert values(spark, first) == [1]
    assert values(spark, second) == [3]
    assert io.list_dir(spark, str(tmp_path)) == ["first", "second"]


def test_killed_partition_commit_settled_by_next_table_write(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "p")
    io.write_table(
        spark.createDataFrame([(1, "d1"), (1, "d2")], "x int, d string"), path, partition_by=["d"]
    )
    with monkeypatch.context() as patch:
        kill_after(patch, "_rename", 1)  # partition d1 set aside, new one not moved in
        with pytest.raises(Killed):
            io.write_table(
                spark.createDataFrame([(2, "d1")], "x int, d string"),
                path,
                partition_by=["d"],
                replace_partitions=True,
            )
    assert "d=d1" not in io.list_dir(spark, path)

    # A write of another partition settles the interrupted one and its abandoned staging.
    io.write_table(
        spark.createDataFrame([(3, "d2")], "x int, d string"),
        path,
        partition_by=["d"],
        replace_partitions=True,
    )
    rows = sorted((row.x, row.d) for row in spark.read.parquet(path).collect())
    assert rows == [(1, "d1"), (3, "d2")]
    assert io.list_dir(spark, str(tmp_path)) == ["p"]
    assert [name for name in io.list_dir(spark, path) if name.startswith("_")] == ["_SUCCESS"]
