"""The train_ranker job on a tiny lake: dataset, selection, saved version, scoring."""

from __future__ import annotations

import datetime as dt
import posixpath

import pytest
from pyspark.sql import functions as F
from ranking_fixtures import T1, synthetic_ranking_inputs

from jobs import train_ranker
from recsys_spark import columns, io
from recsys_spark.columns import SCORE
from recsys_spark.ranking.artifacts import load_metadata
from recsys_spark.ranking.dataset import FEATURE_COLUMNS
from recsys_spark.ranking.scoring import score_candidates
from recsys_spark.runs import Run
from recsys_spark.splits import isoformat


def _write_lake(spark, lake: io.Lake, inputs) -> None:
    """Write the raw tables, id maps, manifest and validation snapshot of the fixture."""
    users = inputs["user_features"]
    videos = inputs["video_features"]
    events = inputs["label_events"]

    io.write_table(
        users.select(
            "user_id",
            F.lit(None).cast("timestamp").alias("signup_ts"),
            "region",
            "language",
            "age_bucket",
            "gender",
            F.lit(None).cast("map<string,string>").alias("extras"),
        ),
        lake.raw(columns.USERS),
    )
    io.write_table(videos.select(*columns.VIDEOS_SCHEMA.fieldNames()), lake.raw(columns.VIDEOS))

    # A training-period event before t1, so the split has all three periods.
    before = events.limit(1).withColumn("event_ts", F.lit(T1 - dt.timedelta(days=3)))
    interactions = events.unionByName(before).select(*columns.INTERACTIONS_SCHEMA.fieldNames())
    io.write_table(interactions, lake.raw(columns.INTERACTIONS))

    io.write_table(users.select("user_id", "user_idx"), lake.id_map(columns.USERS))
    io.write_table(videos.select("video_id", "video_idx"), lake.id_map(columns.VIDEOS))

    io.write_json(
        spark,
        lake.features("manifest.json"),
        {
            "split": "time",
            "t0": isoformat(T1 - dt.timedelta(days=3)),
            "t1": isoformat(T1),
            "t2": isoformat(T1 + dt.timedelta(days=7)),
            "t_end": isoformat(T1 + dt.timedelta(days=8)),
        },
    )

    io.write_table(inputs["candidates"], posixpath.join(lake.candidates(), "validation"))
    io.write_table(users, lake.features("users", "validation"))
    io.write_table(videos, lake.features("videos", "validation"))


def test_train_ranker_job(spark, make_config):
    config = make_config(
        "ranker.models=[logistic_regression]",
        "ranker.logistic_regression.max_iter=20",
        "ranker.validation_fraction=0.3",
    )
    lake = io.Lake(config.lake.root)
    inputs = synthetic_ranking_inputs(spark)
    _write_lake(spark, lake, inputs)

    run = Run(spark=spark, config=config)
    summary = train_ranker.run(run)

    assert summary["model_version"] == run.run_id
    assert summary["chosen"] == "logistic_regression"
    table = {row["model"]: row for row in summary["comparison"]}
    assert list(table) == ["logistic_regression", "retrieval_order"]
    assert table["logistic_regression"]["ndcg_at_k"] > table["retrieval_order"]["ndcg_at_k"]
    # 80 users of 30 candidates, every user active: 2400 rows in the two splits.
    dataset = summary["dataset"]
    assert dataset["train"]["rows"] + dataset["validation"]["rows"] == 2400
    assert dataset["train"]["users"] + dataset["validation"]["users"] == 80
    assert dataset["validation"]["positives"] > 0

    metadata = load_metadata(spark, lake)
    assert metadata["version"] == run.run_id
    assert metadata["model"] == "logistic_regression"
    assert metadata["feature_columns"] == list(FEATURE_COLUMNS)
    assert metadata["comparison"] == summary["comparison"]
    assert metadata["label_period"]["start"] == isoformat(T1)

    scored = score_candidates(spark, lake, "validation")
    assert scored.columns == [*inputs["candidates"].columns, SCORE]
    assert scored.count() == 2400
    assert scored.where(F.col(SCORE).isNull()).isEmpty()


def test_train_ranker_job_needs_candidates(spark, make_config):
    config = make_config("ranker.models=[logistic_regression]")
    lake = io.Lake(config.lake.root)
    inputs = synthetic_ranking_inputs(spark, users=4, videos=8, per_user=4)
    _write_lake(spark, lake, inputs)
    io.delete(spark, posixpath.join(lake.candidates(), "validation"))

    with pytest.raises(FileNotFoundError, match="generate_candidates"):
        train_ranker.run(Run(spark=spark, config=config))
