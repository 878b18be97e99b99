"""The evaluate job on a hand-made lake: metrics.json values, stage lists and the report."""

from __future__ import annotations

import datetime as dt
import importlib.util
import posixpath

import pytest

from jobs import evaluate
from recsys_spark import columns as C
from recsys_spark import io, output
from recsys_spark.config import load_config
from recsys_spark.evaluation import stages
from recsys_spark.evaluation.evaluator import evaluate_run
from recsys_spark.runs import Run

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
RUN_DATE = "2024-03-01"
EVALUATED_RUN = "20240301T000000Z-recs"

VIDEOS = [
    # video, creator, tags
    ("v1", "c1", ["x"]),
    ("v2", "c1", ["x", "y"]),
    ("v3", "c2", ["y"]),
    ("v4", "c3", ["z"]),
    ("v5", "c3", ["z"]),
    ("v6", None, []),
]
TRAIN = [("u1", "v1"), ("u2", "v1"), ("u2", "v2"), ("u3", "v3")]
# u1 and u2 have held-out positives; u4 has one but no list; u3 has a list but none.
TEST = [("u1", "v2"), ("u1", "v5"), ("u2", "v3"), ("u4", "v6")]
RECOMMENDATIONS = {
    "u1": ["v2", "v3", "v4"],
    "u2": ["v4", "v3", "v5"],
    "u3": ["v1", "v2", "v5"],
}
# (user, video, primary source, sources, retrieval score); v5 reaches u1 only as popular.
CANDIDATES = [
    ("u1", "v2", "two_tower", ["two_tower"], 0.9),
    ("u1", "v3", "two_tower", ["two_tower"], 0.8),
    ("u1", "v4", "two_tower", ["two_tower"], 0.7),
    ("u1", "v5", "popular_region", ["popular_region"], 0.1),
    ("u2", "v4", "two_tower", ["two_tower"], 0.9),
    ("u2", "v3", "two_tower", ["two_tower"], 0.5),
    ("u2", "v5", "two_tower", ["two_tower"], 0.4),
    ("u3", "v1", "two_tower", ["two_tower"], 0.9),
]


def write_lake(spark, lake: io.Lake) -> None:
    start = dt.datetime(2024, 1, 1)
    videos = spark.createDataFrame(
        [
            (v, None, tags, None, None, None, start, creator, [], None)
            for v, creator, tags in VIDEOS
        ],
        C.VIDEOS_SCHEMA,
    )
    io.write_table(videos, lake.raw(C.VIDEOS))
    for split, pairs in (("train", TRAIN), ("test", TEST)):
        io.write_table(
            spark.createDataFrame(pairs, "user_id string, video_id string"), lake.training(split)
        )
    candidates = spark.createDataFrame(
        [
            (user, video, source, sources, score, 0, 0.0, "tt-1", EVALUATED_RUN)
            for user, video, source, sources, score in CANDIDATES
        ],
        C.CANDIDATES_SCHEMA,
    )
    io.write_table(candidates, posixpath.join(lake.candidates(), "test"))
    rows = [
        (user, rank, video, 1.0 / rank, "two_tower", EVALUATED_RUN, "tt-1", start)
        for user, videos in RECOMMENDATIONS.items()
        for rank, video in enumerate(videos, start=1)
    ]
    recommendations = spark.createDataFrame(rows, C.RECOMMENDATIONS_SCHEMA)
    output.write_partition(recommendations, lake, output.RECOMMENDATIONS, RUN_DATE)
    summary = {
        "stages": {
            "recommend": {"rules": {"region_blocked": {"action": "removed", "rows": 3, "users": 2}}}
        }
    }
    io.write_json(spark, posixpath.join(lake.run(EVALUATED_RUN), "summary.json"), summary)


def lake_config(root, *overrides: str):
    return load_config(
        overrides=[
            f"lake.root={root}",
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            f"run_date={RUN_DATE}",
            *overrides,
        ]
    )


@pytest.fixture(scope="module")
def evaluated(spark, tmp_path_factory):
    """Evaluate the hand-made lake once for every test in this module."""
    config = lake_config(tmp_path_factory.mktemp("evaluate") / "lake", "evaluate.ks=[1, 10]")
    lake = io.Lake(config.lake.root)
    write_lake(spark, lake)
    run = Run(spark=spark, config=config)
    summary = evaluate.run(run)
    folder = lake.evaluation(run.run_id)
    metrics = io.read_json(spark, posixpath.join(folder, "metrics.json"))
    report = io.read_text(spark, posixpath.join(folder, "report.html"))
    return summary, metrics, report


@pytest.mark.integration
def test_final_accuracy_and_user_counts(evaluated):
    summary, metrics, _ = evaluated
    final = metrics["accuracy"]["final"]
    assert final["users_evaluated"] == 3  # u1, u2, u4
    assert final["users_without_relevant"] == 1  # u3
    assert final["users_without_recommendations"] == 1  # u4
    # Precision@1: u1's v2 is a hit, u2's v4 is not, u4 has no list.
    assert final["precision_at_1"] == pytest.approx(1 / 3)
    # Recall@10: u1 1 of 2, u2 1 of 1, u4 0.
    assert final["recall_at_10"] == pytest.approx(0.5)
    assert summary["recall_at_1"] == pytest.approx(final["recall_at_1"])
    assert metrics["cross_check"]["agrees"] is True


@pytest.mark.integration
def test_stage_lists_and_candidate_recall(evaluated):
    _, metrics, _ = evaluated
    accuracy = metrics["accuracy"]
    # Two-tower only misses u1's v5; all candidates find it at retrieval rank 4.
    assert accuracy["two_tower"]["recall_at_10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert accuracy["retrieval"]["recall_at_10"] == pytest.approx((1 + 1 + 0) / 3)
    assert metrics["candidate_recall"]["candidate_recall"] == pytest.approx(2 / 3)
    # No ranker was trained, so the ranked stage and its gains are missing, with a reason.
    assert "ranked" not in accuracy
    assert "ranked" in metrics["not_available"]
    assert metrics["stage_gains"] == {}


@pytest.mark.integration
def test_exposure_gini_hand_values(evaluated):
    _, metrics, _ = evaluated
    exposure = metrics["exposure"]["final"]
    assert exposure["video"]["k"] == 3
    # Video slots: v1 1, v2 2, v3 2, v4 2, v5 2, v6 0 -> sorted 0,1,2,2,2,2:
    # sum (2i - 7) x_i = -3 - 2 + 2 + 6 + 10 = 13, over n * total = 6 * 9.
    assert exposure["video"]["gini"] == pytest.approx(13 / 54)
    # Creators: c1 gets v1 + v2 = 3, c2 2, c3 4 -> sorted 2, 3, 4: (-2*2 + 2*4) / (3 * 9).
    assert exposure["creator"]["gini"] == pytest.approx(4 / 27)
    assert exposure["creator"]["lorenz"][0] == [0.0, 0.0]
    assert exposure["creator"]["lorenz"][-1] == [1.0, 1.0]


@pytest.mark.integration
def test_beyond_accuracy_and_sections(evaluated):
    _, metrics, _ = evaluated
    beyond = metrics["beyond_accuracy"]["final"]
    # v1..v5 appear in some top 10; v6 never: 5 of 6 catalog videos.
    assert beyond["catalog_coverage_at_10"] == pytest.approx(5 / 6)
    assert 0.0 <= beyond["intra_list_diversity_at_10"] <= 1.0
    assert sum(row["recommendation_share"] for row in metrics["popularity_profile"]["bins"]) == (
        pytest.approx(1.0)
    )
    assert "not_available" in metrics["ann"]  # no index in this lake
    assert metrics["rules"]["rules"]["region_blocked"]["rows"] == 3


@pytest.mark.integration
def test_report_inlines_plots_or_says_why(evaluated):
    _, _, report = evaluated
    assert report.startswith("<!DOCTYPE html>")
    assert "Recall@K per stage" in report
    assert "Not available: metrics.json has no" not in report
    # The ANN plot has no data in this lake, so it shows the reason instead of failing.
    assert 'ANN recall vs query time</h3><p class="missing">Not available' in report
    if HAS_MATPLOTLIB:
        # Recall, long tail, Lorenz and rule effects are drawn and inlined.
        assert report.count('src="data:image/png;base64,') == 4
    else:
        assert report.count("matplotlib is not installed") == 4


@pytest.mark.integration
def test_missing_held_out_split_is_reported(spark, tmp_path):
    config = lake_config(tmp_path / "lake", "evaluate.ks=[10]", "evaluate.report=false")
    lake = io.Lake(config.lake.root)
    write_lake(spark, lake)
    io.delete(spark, lake.training("test"))
    metrics = evaluate_run(Run(spark=spark, config=config))
    assert "training/test" in metrics["accuracy"]["not_available"]
    assert metrics["beyond_accuracy"]["final"]["catalog_coverage_at_10"] == pytest.approx(5 / 6)


def test_ann_tradeoff_prefers_query_time():
    metadata = {
        "sweep": [
            {"recall": 0.91, "seconds_per_query": 0.0002, "label": "fast"},
            {"recall": 0.99, "ms_per_query": 0.5},
            {"recall": 0.5},  # no time: skipped
        ]
    }
    section = stages.ann_tradeoff(metadata)
    assert section["x_label"] == "query time (ms per query)"
    assert section["points"] == [
        {"x": pytest.approx(0.2), "recall": 0.91, "label": "fast"},
        {"x": 0.5, "recall": 0.99, "label": "sweep[1]"},
    ]


def test_ann_tradeoff_falls_back_to_tuning_steps():
    # The shape build_index writes: recall per search setting, without query times.
    metadata = {
        "recall": {
            "k": 100,
            "value": 0.97,
            "tuning": [
                {"num_leaves_to_search": 8, "reorder_multiplier": 4, "recall": 0.9},
                {"num_leaves_to_search": 16, "reorder_multiplier": 4, "recall": 0.97},
            ],
        }
    }
    section = stages.ann_tradeoff(metadata)
    assert section["x_label"].startswith("leaves searched per query")
    assert [(p["x"], p["recall"]) for p in section["points"]] == [(8.0, 0.9), (16.0, 0.97)]
    assert "not_available" in stages.ann_tradeoff({"version": "v1"})


def test_rule_effects_from_run_summary():
    summary = {
        "stages": {
            "recommend": {
                "rules": {
                    "misinformation_unreviewed": {"action": "demoted", "rows": 4, "users": 1},
                    "region_blocked": {"action": "removed", "rows": 2, "users": 2},
                },
                "exposure": {"after_rules": {"creator_gini": 0.4}},
            }
        }
    }
    section = stages.rule_effects(summary)
    assert section["rules"]["misinformation_unreviewed"] == {
        "action": "demoted",
        "rows": 4,
        "users": 1,
    }
    assert section["exposure"] == {"after_rules": {"creator_gini": 0.4}}
    assert "not_available" in stages.rule_effects({"stages": {}})
    assert "not_available" in stages.rule_effects({"stages": {"recommend": {"rules": {}}}})
