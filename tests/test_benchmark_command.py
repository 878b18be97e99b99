"""The benchmark command on a tiny canonical Parquet source: both tables, peers and notes."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import random

import pytest

from jobs import benchmark as benchmark_job
from recsys_spark import columns as C
from recsys_spark.config import ConfigError, load_config
from recsys_spark.evaluation.benchmark import SECTION_HEADING, derive_config, replace_section

HAS_CORNAC = importlib.util.find_spec("cornac") is not None


def write_source(spark, folder) -> None:
    """Write 12 users rating 8 of 16 videos each, over 60 days of 2020, as canonical tables."""
    generator = random.Random(3)
    start = dt.datetime(2020, 1, 1)
    users = [(f"u{n:02d}", start, "US-1", None, None, None, None) for n in range(12)]
    videos = [
        (f"v{n:02d}", f"Video {n}", [f"g{n % 4}"], f"g{n % 4}", None, None, start, None, [], None)
        for n in range(16)
    ]
    interactions = []
    for user, *_ in users:
        # Lower-numbered videos are more popular, so popularity has signal.
        picks = generator.sample(range(16), 8) if generator.random() < 0.5 else list(range(8))
        for video in picks:
            when = start + dt.timedelta(days=generator.randint(0, 59), seconds=video)
            rating = float(generator.randint(1, 5))
            interactions.append((user, f"v{video:02d}", when, "rating", None, rating))
    tables = {
        C.USERS: spark.createDataFrame(users, C.USERS_SCHEMA),
        C.VIDEOS: spark.createDataFrame(videos, C.VIDEOS_SCHEMA),
        C.INTERACTIONS: spark.createDataFrame(interactions, C.INTERACTIONS_SCHEMA),
    }
    for name, frame in tables.items():
        frame.write.mode("overwrite").parquet(str(folder / name))


@pytest.mark.integration
def test_benchmark_writes_both_tables(spark, tmp_path):
    source = tmp_path / "source"
    write_source(spark, source)
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\n## Other area\n\nkept\n", encoding="utf-8")
    lake = tmp_path / "lake"
    code = benchmark_job.main(
        [
            "--set", "data.source=parquet",
            "--set", f"data.path={source}",
            "--set", f"lake.root={lake}",
            "--set", f"benchmark.markdown_path={markdown}",
            "--set", "benchmark.include_ours=false",
            # One peer per code path keeps the test short: Spark, ALS and cornac.
            "--set", "benchmark.peers=[popularity, als_explicit, ease]",
            "--set", "benchmark.als_explicit.max_iter=3",
            "--set", "benchmark.machine=test machine",
        ]
    )  # fmt: skip
    assert code == 0

    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\n## Other area\n\nkept\n")
    assert text.count(SECTION_HEADING) == 1
    section = text[text.index(SECTION_HEADING) :]
    assert "### Stratified random split" in section
    assert "### Temporal split" in section
    assert "Machine: test machine" in section
    stratified, temporal = section.split("### Temporal split")
    for table in (stratified, temporal):
        assert "| popularity | 0." in table
        assert "| ALS explicit (Spark MLlib) | " in table
        assert "| ours: two-tower + ranker + rules | not available: " in table
        if HAS_CORNAC:
            assert "| EASE (cornac) | 0." in table
        else:
            assert "| EASE (cornac) | not available: cornac is not installed" in table

    (results_file,) = (lake / "benchmark").glob("*/results.json")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    assert set(results["results"]) == {"stratified", "temporal"}
    popularity = results["results"]["stratified"][0]
    assert popularity["model"] == "popularity"
    assert popularity["metrics"]["users_without_recommendations"] == 0
    assert 0.0 <= popularity["metrics"]["ndcg_at_10"] <= 1.0
    counts = results["protocols"]["stratified"]
    # Every interaction lands in exactly one split.
    assert counts["train_interactions"] + counts["test_interactions"] == 12 * 8


def test_replace_section_keeps_other_sections():
    text = "# Benchmarks\n\n## A\n\none\n\n" + SECTION_HEADING + "\n\nold\n\n## B\n\ntwo\n"
    replaced = replace_section(text, SECTION_HEADING, SECTION_HEADING + "\n\nnew\n")
    assert replaced == (
        "# Benchmarks\n\n## A\n\none\n\n" + SECTION_HEADING + "\n\nnew\n\n## B\n\ntwo\n"
    )
    # A second replacement changes nothing else and keeps a single section.
    assert replace_section(replaced, SECTION_HEADING, SECTION_HEADING + "\n\nnew\n") == replaced


def test_replace_section_appends_when_absent():
    appended = replace_section("# Benchmarks\n", SECTION_HEADING, SECTION_HEADING + "\n\nnew\n")
    assert appended == "# Benchmarks\n\n" + SECTION_HEADING + "\n\nnew\n"


def test_derive_config_applies_overrides():
    config = load_config(["movielens"], ["data.path=/data/ml-100k", "lake.root=/tmp/lake"])
    derived = derive_config(config, ["data.source=parquet", "data.path=/src", "recommend.k=10"])
    assert derived.data.source == "parquet"
    assert derived.data.path == "/src"
    assert derived.recommend.k == 10
    # Everything else is carried over, including the overlay's values.
    assert derived.lake.root == "/tmp/lake"
    assert derived.training.positives.min_rating == config.training.positives.min_rating
    assert derived.sources[-1] == "recommend.k=10"
    with pytest.raises(ConfigError, match="recommend.k"):
        derive_config(config, ["recommend.k=0"])
