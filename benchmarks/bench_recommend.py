"""Time the recommend job and each of its steps on a lake where the upstream stages ran.

Usage:
  python benchmarks/bench_recommend.py --lake s=/path/to/lake [--lake m=/path/to/lake]...
      [--set KEY=VALUE]... [--append BENCHMARKS.md]

The lake needs raw/, features/videos/<snapshot>, candidates/<snapshot> and, optionally,
models/two_tower (embeddings) and models/ranker. The job writes its output partitions
into that lake (recommendations/, recommendations_audit/, near_duplicate_clusters/).

Each step is timed on cached inputs and forced with Spark's ``noop`` writer, so a row
shows that step's own cost. The end-to-end row is one full ``recommend`` run: reading,
every step, the three writes and the summary. The steps overlap with the end-to-end
run, so they do not add up to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Callable

from common import command_line, machine_line, publish
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs import recommend
from recsys_spark import io
from recsys_spark.cli import configure_logging
from recsys_spark.config import load_config
from recsys_spark.postprocess import apply, duplicates, fairness
from recsys_spark.runs import Run
from recsys_spark.session import get_spark


def force(df: DataFrame) -> None:
    """Compute every row of ``df`` without writing anything."""
    df.write.format("noop").mode("overwrite").save()


def timed(label: str, work: Callable[[], object], results: list) -> object:
    started = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - started
    results.append((label, seconds))
    print(f"{label}: {seconds:.1f}s", file=sys.stderr, flush=True)
    return value


def step_times(run: Run) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """Time the steps of the recommend job one by one on cached inputs."""
    spark, config, lake = run.spark, run.config, run.lake
    settings, rules = config.recommend, config.rules
    results: list[tuple[str, float]] = []

    def score():
        scored, _ = recommend.read_scored_candidates(spark, lake, settings)
        return scored.localCheckpoint()

    scored = timed("score candidates (ranker or retrieval_score)", score, results)
    video_features = io.read_table(
        spark, lake.features("videos", settings.snapshot), "video features"
    )
    as_of = recommend.snapshot_time(video_features, settings.snapshot)
    embeddings, _ = recommend.read_embeddings(
        spark, lake, settings.two_tower_version or recommend.candidates_model_version(scored)
    )
    clusters, _ = timed(
        "near-duplicate clustering (MinHash + hyperplane LSH, components)",
        lambda: duplicates.cluster_near_duplicates(
            video_features.select("video_id", duplicates.TITLE_TOKENS, "tags"),
            embeddings,
            rules.duplicates,
            config.seed,
        ),
        results,
    )
    clusters = clusters.localCheckpoint()

    def inputs():
        built = recommend.build_rule_inputs(
            spark, config, lake, as_of, video_features, clusters, embeddings
        )
        # The catalog, the pool and the watched pairs come back checkpointed.
        return built

    rule_inputs = timed("rule inputs (catalog, regional pool, watched pairs)", inputs, results)
    candidates = scored.withColumn(apply.TIER, F.lit(0))

    tagged = apply.tag_row_rules(candidates, rule_inputs, rules)
    timed("row rules: region, misinformation, watched, freshness", lambda: force(tagged), results)
    no_watched = dataclasses.replace(rules, rewatch="allow")
    timed(
        "row rules without the watched join",
        lambda: force(apply.tag_row_rules(candidates, rule_inputs, no_watched)),
        results,
    )
    tagged = tagged.localCheckpoint()
    deduplicated = timed(
        "near-duplicate tagging (window per user and cluster)",
        lambda: apply.tag_near_duplicates(tagged, True).localCheckpoint(),
        results,
    )

    params = fairness.list_params(settings.k, rules)
    eligible = deduplicated.where(F.col(apply.REASON).isNull())
    top = eligible.withColumn(
        "_position",
        F.row_number().over(
            Window.partitionBy("user_id").orderBy(F.col(apply.RULE_SCORE).desc(), "video_id")
        ),
    ).where(F.col("_position") <= settings.list_depth)
    step_input = apply.list_step_input(top).localCheckpoint()
    timed(
        "list step: caps, minimum shares, MMR (applyInPandas)",
        lambda: force(fairness.select_lists(step_input, params, rule_inputs.vectors)),
        results,
    )
    plain = dataclasses.replace(params, mmr_lambda=None)
    timed(
        "list step without MMR",
        lambda: force(fairness.select_lists(step_input, plain)),
        results,
    )

    def whole_chain():
        output = apply.apply_rules(scored, rule_inputs, rules, settings.k, settings.list_depth)
        force(output.lists)
        force(output.audit)

    timed("apply_rules: every rule, backfill, audit", whole_chain, results)
    sizes = {
        "users": scored.select("user_id").distinct().count(),
        "candidates": scored.count(),
        "videos": video_features.count(),
    }
    return results, sizes


def section(label: str, results, sizes, job_seconds: float) -> str:
    lines = [
        f"### Tier {label}: {sizes['users']:,} users, {sizes['candidates']:,} candidates, "
        f"{sizes['videos']:,} videos",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| recommend job end to end (read, rules, 3 writes, summary) | {job_seconds:.1f} |",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in results]
    return "\n".join(lines) + "\n"


def effects(summary: dict) -> str:
    """Describe the lists and the rule effects of one run, from its summary."""
    removed = ", ".join(
        f"{reason} {effect['rows']:,}"
        for reason, effect in summary["rules"].items()
        if effect["rows"]
    )
    before, after = summary["exposure"]["before_rules"], summary["exposure"]["after_rules"]
    clusters = summary["near_duplicates"] or {}
    return (
        f"Lists: {summary['users']:,} users, {summary['users_with_k']:,} with k = "
        f"{summary['k']}, {summary['short_lists']['users']:,} short, "
        f"{summary['fallback_users']:,} fallback, {summary['backfilled_users']:,} backfilled; "
        f"scorer {summary['scorer']}. Rows removed or demoted per reason: {removed or 'none'}. "
        f"Creator-exposure Gini {before['creator_gini']} before the rules, "
        f"{after['creator_gini']} after; long-tail share {before['long_tail_share']} before, "
        f"{after['long_tail_share']} after. Near-duplicates: {clusters.get('clusters', 0):,} "
        f"clusters over {clusters.get('videos_clustered', 0):,} videos (largest "
        f"{clusters.get('max_cluster_size', 0)}).\n"
    )


def planted_duplicate_recall(run: Run, summary: dict) -> str:
    """Return how many of the generator's re-upload pairs share a near-duplicate cluster."""
    from recsys_spark.synthetic import ground_truth

    truth = ground_truth(run.spark, run.config)["near_duplicates"].collect()
    clusters = run.spark.read.parquet(summary["clusters"]).collect()
    label = {row.video_id: row.cluster_id for row in clusters}
    found = sum(
        1
        for row in truth
        if row.video_id in label and label[row.video_id] == label.get(row.original_video_id)
    )
    return (
        f"Planted re-uploads (synthetic ground truth): {found} of {len(truth)} (video, "
        "original) pairs share a cluster.\n"
    )


def header(command: str) -> str:
    return (
        "## Recommend job\n\n"
        f"Command: `{command}`\n\n"
        f"{machine_line()}\n\n"
        "Wall-clock seconds. Each step runs alone on cached inputs (forced with the noop "
        "writer); the end-to-end row is one full run, so the steps do not add up to it.\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lake",
        action="append",
        required=True,
        metavar="LABEL=PATH",
        help="A tier label and the lake root where the upstream stages ran; repeatable.",
    )
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", help="Config override KEY=VALUE."
    )
    parser.add_argument("--append", help="Append the results as one section to this file.")
    parser.add_argument(
        "--planted-duplicates",
        action="store_true",
        help="Synthetic lakes only: score the near-duplicate clusters against the generator's "
        "re-upload pairs; LABEL must then be the size tier the lake was generated with.",
    )
    args = parser.parse_args(argv)
    configure_logging()

    sections = []
    for item in args.lake:
        label, separator, path = item.partition("=")
        if not separator or not path:
            parser.error(f"--lake expects LABEL=PATH, got {item!r}.")
        overrides = [f"lake.root={path}", *args.overrides]
        if args.planted_duplicates:
            overrides.append(f"data.size={label}")
        config = load_config(overrides=overrides)
        run = Run(spark=get_spark(config), config=config)
        started = time.perf_counter()
        summary = recommend.run(run)
        job_seconds = time.perf_counter() - started
        print(f"recommend job ({label}): {job_seconds:.1f}s", file=sys.stderr, flush=True)
        results, sizes = step_times(run)
        text = section(label, results, sizes, job_seconds) + "\n" + effects(summary)
        if args.planted_duplicates:
            text += planted_duplicate_recall(run, summary)
        sections.append(text)

    text = header(command_line("bench_recommend.py", argv)) + "\n" + "\n".join(sections)
    publish(text, args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
