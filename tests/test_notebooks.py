"""The Databricks notebooks, run top to bottom in local mode, and the helpers they call."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from recsys_spark import notebook as nb

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

EVENTS_SCHEMA = T.StructType(
    [T.StructField("user_id", T.StringType()), T.StructField("video_id", T.StringType())]
)


def test_split_overrides():
    assert nb.split_overrides("") == []
    assert nb.split_overrides(" a.b=1; c=[x, y];; ") == ["a.b=1", "c=[x, y]"]


def test_split_cells_of_every_notebook():
    paths = sorted(NOTEBOOKS.glob("*.py"))
    assert [path.name for path in paths] == [
        "01_explore_data.py",
        "02_two_tower.py",
        "03_evaluate_and_audit.py",
    ]
    for path in paths:
        cells = nb.split_cells(path.read_text(encoding="utf-8"))
        # The header cell is markdown only, so the first code cell defines the widgets.
        assert cells[0].startswith('dbutils.widgets.text("config", ""')
        assert not any("sys.path" in cell for cell in cells)


def test_long_tail_and_events_per_value(spark):
    # Events per video: v1 5, v2 3, v3 1, v4 1 (10 events, 4 videos).
    rows = [("u1", "v1")] * 5 + [("u2", "v2")] * 3 + [("u3", "v3"), ("u3", "v4")]
    interactions = spark.createDataFrame(rows, EVENTS_SCHEMA)
    tail = nb.long_tail(interactions, "video_id", top_shares=(0.1, 0.5, 1.0)).collect()
    # 0.1 x 4 videos rounds up to 1 video (v1: 5 of 10 events); 0.5: v1 + v2 = 8 of 10.
    assert [(row.top_share, row.top_values, row.values) for row in tail] == [
        (0.1, 1, 4),
        (0.5, 2, 4),
        (1.0, 4, 4),
    ]
    assert [row.event_share for row in tail] == pytest.approx([0.5, 0.8, 1.0])

    (distribution,) = nb.events_per_value(interactions, "video_id").collect()
    assert distribution.values == 4
    assert distribution.events == 10
    assert distribution.mean == pytest.approx(2.5)
    assert distribution["min"] == 1
    # Sorted counts 1, 1, 3, 5: the median is the second value, p90 and p99 the last.
    assert distribution.p50 == 1
    assert distribution.p90 == 5
    assert distribution.p99 == 5
    assert distribution["max"] == 5


def test_long_tail_rejects_bad_share(spark):
    interactions = spark.createDataFrame([("u1", "v1")], EVENTS_SCHEMA)
    with pytest.raises(ValueError, match="top_shares must be in"):
        nb.long_tail(interactions, "video_id", top_shares=(0.0,))


def test_catalog_flags(spark):
    schema = T.StructType(
        [
            T.StructField("video_id", T.StringType()),
            T.StructField("blocked_regions", T.ArrayType(T.StringType())),
            T.StructField("misinformation", T.BooleanType()),
        ]
    )
    videos = spark.createDataFrame(
        [
            ("v1", ["r1"], True),
            ("v2", [], False),
            ("v3", None, None),
            ("v4", ["r2", "r3"], None),
        ],
        schema,
    )
    (flags,) = nb.catalog_flags(videos).collect()
    # Blocked: v1, v4. Flagged: v1. Not reviewed: v3, v4.
    assert flags.asDict() == {
        "videos": 4,
        "blocked": 2,
        "misinformation": 1,
        "unreviewed": 2,
        "blocked_share": 0.5,
        "misinformation_share": 0.25,
        "unreviewed_share": 0.5,
    }


def test_nearest_videos_by_dot_product(spark):
    schema = T.StructType(
        [
            T.StructField("video_id", T.StringType()),
            T.StructField("embedding", T.ArrayType(T.FloatType())),
        ]
    )
    embeddings = spark.createDataFrame(
        [
            ("q", [1.0, 0.0]),
            ("a", [0.8, 0.6]),
            ("b", [0.6, 0.8]),
            ("c", [-1.0, 0.0]),
            ("d", [0.8, -0.6]),
        ],
        schema,
    )
    nearest = nb.nearest_videos(embeddings, "q", k=3).collect()
    # Dot products with q: a 0.8, d 0.8 (tie, by video_id), b 0.6, c -1; q itself excluded.
    assert [row.video_id for row in nearest] == ["a", "d", "b"]
    assert [row.similarity for row in nearest] == pytest.approx([0.8, 0.8, 0.6], abs=1e-6)
    assert nb.nearest_videos(embeddings, "missing", k=3).count() == 0


def test_example_user_ignores_short_lists(spark):
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("video_id", T.StringType()),
            T.StructField("action", T.StringType()),
            T.StructField("reason", T.StringType()),
        ]
    )
    audit = spark.createDataFrame(
        [
            ("u1", "v1", "removed", "region_blocked"),
            ("u1", "v2", "demoted", "misinformation_unreviewed"),
            ("u2", "v3", "removed", "already_watched"),
            ("u2", None, "short_list", "not_enough_candidates"),
            ("u2", None, "short_list", "not_enough_candidates"),
        ],
        schema,
    )
    # u2 has more audit rows, but only one rule decision; u1 has two.
    assert nb.example_user(audit) == "u1"
    expected = spark.createDataFrame(
        [
            ("short_list", "not_enough_candidates", 2, 1),
            ("demoted", "misinformation_unreviewed", 1, 1),
            ("removed", "already_watched", 1, 1),
            ("removed", "region_blocked", 1, 1),
        ],
        "action string, reason string, rows long, users long",
    )
    assertDataFrameEqual(nb.audit_reasons(audit), expected, checkRowOrder=True)


@pytest.mark.integration
@pytest.mark.slow
def test_notebooks_run_in_order(spark, tmp_path):
    lake = tmp_path / "lake"
    # The tiny tier has about 430 training rows, fewer than the default batch of 512.
    overrides = "run_date=2026-01-01; two_tower.batch_size=128; two_tower.epochs=2"
    widgets = {
        "config": "",
        "lake_root": str(lake),
        "data_size": "tiny",
        "overrides": overrides,
    }

    explore = nb.run_notebook(NOTEBOOKS / "01_explore_data.py", widgets)
    assert explore["spark"] is spark
    counts = explore["summary"]["tables"]
    assert counts["interactions"]["loaded"] > 0
    assert (lake / "raw" / "interactions").is_dir()

    # One ranker keeps the run short; the ranked stage still reaches the evaluation.
    two_tower = nb.run_notebook(
        NOTEBOOKS / "02_two_tower.py",
        {**widgets, "overrides": f"{overrides}; ranker.models=[logistic_regression]"},
    )
    recommend = two_tower["summaries"]["recommend"]
    assert recommend["rows"] > 0
    assert two_tower["video_id"]
    assert two_tower["user_id"]
    assert (lake / "recommendations" / "run_date=2026-01-01").is_dir()

    evaluation = nb.run_notebook(NOTEBOOKS / "03_evaluate_and_audit.py", widgets)
    metrics = evaluation["metrics"]
    assert metrics["evaluated_run_id"] == two_tower["run"].run_id
    assert metrics["run_date"] == "2026-01-01"
    assert "final" in metrics["stages_evaluated"]
    assert all(count == 0 for count in evaluation["checks"]["checks"].values())
    figures = nb.evaluation_figures(metrics)
    assert not isinstance(figures["Recall@K per stage"], str)
