"""The public MovieLens benchmark: protocols, peers, our pipeline, and the result tables.

The stratified protocol reproduces the Microsoft Recommenders MovieLens benchmark
(examples/06_benchmarks in their repository):

- a 75/25 random split stratified by item with seed 42, as their
  ``python_stratified_split(..., filter_by="item")`` call does;
- top-10 lists over the training items, with each user's training items removed;
- every test interaction relevant, and their metric definitions (MAP divides by the
  number of relevant items).

The temporal protocol puts one global time cut-off at the same ratio of interactions.

Both protocols evaluate every model on the same users: the test users who have at least
one training interaction. Microsoft Recommenders evaluates each model on the users it
returned a list for, which is the same set whenever a model covers every training user,
as all peers here do.

Our pipeline runs as a black box on each protocol's training interactions: they are
written as a Parquet source, the pipeline's stages run with ``training.test_fraction: 0``
into a lake of their own, and its lists are scored on the protocol's test interactions.
Inside, the pipeline holds out its validation split the way the protocol holds out its
test set (``training.split``: ``random`` for the stratified protocol, ``time`` for the
temporal one), so that the ranker learns from labels drawn like the test labels.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
import os
import platform
import posixpath
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark import config as config_module
from recsys_spark import io
from recsys_spark.columns import (
    EVENT_TS,
    EVENT_TYPE,
    INTERACTIONS,
    RANK,
    RATING,
    USER_ID,
    USERS,
    VIDEO_ID,
    VIDEOS,
)
from recsys_spark.evaluation import stages
from recsys_spark.evaluation.metrics import ranking_summary
from recsys_spark.evaluation.peers import AlsPeer, CornacPeer, PopularityPeer
from recsys_spark.evaluation.splits import stratified_split, time_cutoff_split
from recsys_spark.runs import Run
from recsys_spark.settings import BenchmarkConfig, Config

logger = logging.getLogger(__name__)

SECTION_HEADING = "## MovieLens 100K vs peers"
# Relative error of the approximate quantile that places the temporal cut-off.
CUTOFF_QUANTILE_ERROR = 1e-4

OURS_TWO_TOWER = "ours: two-tower"
OURS_RANKER = "ours: two-tower + ranker"
OURS_FULL = "ours: two-tower + ranker + rules"
OUR_ROWS = (OURS_TWO_TOWER, OURS_RANKER, OURS_FULL)


@dataclasses.dataclass
class Protocol:
    """One train/test protocol: its data and a one-line description for the table."""

    name: str
    title: str
    description: str
    train: DataFrame
    # Relevant (user_id, video_id) pairs of the evaluated users.
    relevant: DataFrame
    counts: dict[str, Any]
    # training.split of our pipeline's runs: its validation split mimics the test split.
    pipeline_split: str = "time"


@dataclasses.dataclass
class ModelResult:
    """One row of a results table."""

    model: str
    metrics: dict[str, Any] | None = None
    train_seconds: float | None = None
    recommend_seconds: float | None = None
    not_available: str | None = None


def protocol_interactions(interactions: DataFrame, event_types: Sequence[str]) -> DataFrame:
    """Keep one row per (user, video): the earliest event of the given types.

    Returns:
      The canonical interaction columns, one row per pair (ties on time by event type,
      then rating), so that a written training split is a valid interactions table.
    """
    events = interactions.where(F.col(EVENT_TYPE).isin(list(event_types)))
    first = Window.partitionBy(USER_ID, VIDEO_ID).orderBy(
        F.col(EVENT_TS), F.col(EVENT_TYPE), F.col(RATING).desc_nulls_last()
    )
    return (
        events.withColumn("_order", F.row_number().over(first))
        .where(F.col("_order") == 1)
        .drop("_order")
    )


def warm_relevant(train: DataFrame, test: DataFrame) -> DataFrame:
    """Return the test pairs of users who have at least one training interaction."""
    warm = train.select(USER_ID).distinct()
    return test.select(USER_ID, VIDEO_ID).distinct().join(warm, USER_ID)


def _counts(train: DataFrame, relevant: DataFrame) -> dict[str, Any]:
    row = relevant.agg(
        F.countDistinct(USER_ID).alias("users_evaluated"),
        F.count(F.lit(1)).alias("test_interactions"),
    ).first()
    return {
        "train_interactions": train.count(),
        "test_interactions": int(row["test_interactions"]),
        "users_evaluated": int(row["users_evaluated"]),
    }


def stratified_protocol(interactions: DataFrame, settings: BenchmarkConfig, seed: int) -> Protocol:
    """Split 75/25 at random within each item (or user) with the configured seed."""
    train, test = stratified_split(
        interactions,
        ratio=settings.ratio,
        by=settings.stratify_by,
        min_rating=settings.min_interactions,
        seed=seed,
    )
    train = train.persist(StorageLevel.MEMORY_AND_DISK)
    relevant = warm_relevant(train, test).persist(StorageLevel.MEMORY_AND_DISK)
    share = round(settings.ratio * 100)
    return Protocol(
        name="stratified",
        title="Stratified random split (the Microsoft Recommenders protocol)",
        description=(
            f"{share}/{100 - share} random split within each {settings.stratify_by} "
            f"(seed {seed}); top-{settings.k} over training items with each user's training "
            "items removed; every test interaction is relevant."
        ),
        train=train,
        relevant=relevant,
        counts=_counts(train, relevant),
        pipeline_split="random",
    )


def temporal_protocol(interactions: DataFrame, settings: BenchmarkConfig) -> Protocol:
    """Split at the global time before which ``ratio`` of the interactions happened."""
    seconds = interactions.select(F.col(EVENT_TS).cast("double").alias("_seconds"))
    (cutoff_seconds,) = seconds.approxQuantile("_seconds", [settings.ratio], CUTOFF_QUANTILE_ERROR)
    cutoff = dt.datetime.fromtimestamp(cutoff_seconds, dt.timezone.utc)
    train, test = time_cutoff_split(interactions, cutoff)
    train = train.persist(StorageLevel.MEMORY_AND_DISK)
    relevant = warm_relevant(train, test).persist(StorageLevel.MEMORY_AND_DISK)
    counts = _counts(train, relevant)
    counts["cutoff"] = cutoff.isoformat()
    return Protocol(
        name="temporal",
        title="Temporal split (one global time cut-off)",
        description=(
            f"interactions up to {cutoff:%Y-%m-%d %H:%M} UTC ({settings.ratio:.0%} of them) "
            f"train, later ones test; top-{settings.k} with training items removed; users "
            "without training interactions are not evaluated; test videos never seen in "
            "training stay relevant."
        ),
        train=train,
        relevant=relevant,
        counts=counts,
        pipeline_split="time",
    )


def list_metrics(lists: DataFrame, protocol: Protocol, k: int) -> dict[str, Any]:
    """Score top-k lists on the protocol's relevant pairs, plus catalog coverage."""
    lists = lists.where(F.col(RANK) <= k)
    evaluated = lists.join(protocol.relevant.select(USER_ID).distinct(), USER_ID)
    summary = ranking_summary(evaluated, protocol.relevant, ks=(k,)).first().asDict()
    catalog = protocol.train.select(VIDEO_ID).distinct()
    covered = lists.select(VIDEO_ID).distinct().join(catalog, VIDEO_ID).count()
    summary["catalog_coverage"] = covered / max(catalog.count(), 1)
    return summary


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, round(time.perf_counter() - started, 2)


def build_peer(name: str, config: Config, checkpoint_dir: str | None = None):
    """Return the peer named in ``benchmark.peers``; ALS checkpoints into ``checkpoint_dir``."""
    settings = config.benchmark
    if name == "popularity":
        return PopularityPeer()
    if name in ("als_explicit", "als_implicit"):
        return AlsPeer(
            f"ALS {name.split('_')[1]} (Spark MLlib)",
            getattr(settings, name),
            config.seed,
            checkpoint_dir,
        )
    if name == "ease":
        return CornacPeer("EASE (cornac)", settings.ease, config.seed)
    if name == "bpr":
        return CornacPeer("BPR (cornac)", settings.bpr, config.seed)
    raise ValueError(f"Unknown benchmark peer {name!r}.")


def run_peer(
    name: str, protocol: Protocol, config: Config, checkpoint_dir: str | None = None
) -> ModelResult:
    """Fit one peer on the protocol's training data, recommend, and score the lists."""
    k = config.benchmark.k
    peer = build_peer(name, config, checkpoint_dir)
    try:
        _, train_seconds = _timed(lambda: peer.fit(protocol.train))
    except ImportError as error:
        logger.warning("Peer %s skipped: %s", name, error)
        return ModelResult(peer.name, not_available=str(error))

    def recommend():
        lists = peer.recommend(k).persist(StorageLevel.MEMORY_AND_DISK)
        lists.count()
        return lists

    lists, recommend_seconds = _timed(recommend)
    metrics = list_metrics(lists, protocol, k)
    lists.unpersist()
    logger.info(
        "%s on %s: nDCG@%d %.4f, precision@%d %.4f (fit %.1fs, recommend %.1fs)",
        peer.name, protocol.name, k, metrics[f"ndcg_at_{k}"] or 0.0, k,
        metrics[f"precision_at_{k}"] or 0.0, train_seconds, recommend_seconds,
    )  # fmt: skip
    return ModelResult(peer.name, metrics, train_seconds, recommend_seconds)


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_tree(item) for item in value]
    return value


def derive_config(config: Config, overrides: Sequence[str]) -> Config:
    """Return ``config`` with ``dotted.key=value`` overrides applied and validated."""
    tree = _plain_tree(config_module.to_dict(config))
    tree.pop("sources", None)
    with tempfile.TemporaryDirectory(prefix="recsys-benchmark-") as folder:
        path = Path(folder) / "derived.yaml"
        path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        derived = config_module.load_config([path], overrides, base=None)
    # The temporary file is gone; record where the values really came from.
    return dataclasses.replace(derived, sources=tuple(config.sources) + tuple(overrides))


def _pipeline_stages() -> list[str]:
    from jobs import pipeline

    return [stage for stage in pipeline.STAGES if stage != "evaluate"]


def _stage_seconds(sub_run: Run, names: Sequence[str]) -> float:
    return round(sum(sub_run.stages.get(name, {}).get("seconds", 0.0) for name in names), 2)


def run_ours(
    run: Run, protocol: Protocol, users: DataFrame, videos: DataFrame
) -> list[ModelResult]:
    """Run our pipeline on the protocol's training interactions and score three lists."""
    from recsys_spark import output
    from recsys_spark.cli import run_stage

    settings = run.config.benchmark
    k = settings.k
    root = run.lake.path("benchmark", run.run_id, protocol.name)
    source = posixpath.join(root, "source")
    io.write_table(users, posixpath.join(source, USERS))
    io.write_table(videos, posixpath.join(source, VIDEOS))
    io.write_table(protocol.train, posixpath.join(source, INTERACTIONS))
    overrides = [
        "data.source=parquet",
        f"data.path={source}",
        f"lake.root={posixpath.join(root, 'lake')}",
        "training.test_fraction=0.0",
        f"training.split={protocol.pipeline_split}",
        f"recommend.k={k}",
        *settings.pipeline_overrides,
    ]
    sub_run = Run(
        spark=run.spark,
        config=derive_config(run.config, overrides),
        run_id=f"{run.run_id}-{protocol.name}",
    )
    names = _pipeline_stages()
    for name in names:
        module = importlib.import_module(f"jobs.{name}")
        run_stage(name, module.run, sub_run)
    lake, spark = sub_run.lake, run.spark
    train_stages = [n for n in names if n not in ("generate_candidates", "recommend")]
    train_seconds = _stage_seconds(sub_run, train_stages)
    candidates_seconds = _stage_seconds(sub_run, ["generate_candidates"])

    candidates = io.read_table(spark, posixpath.join(lake.candidates(), "test"), "candidates/test")
    results = [
        ModelResult(
            OURS_TWO_TOWER,
            list_metrics(stages.two_tower_lists(candidates, k), protocol, k),
            train_seconds,
            candidates_seconds,
        )
    ]
    from recsys_spark.ranking.scoring import score_candidates

    scored = score_candidates(spark, lake, "test")
    results.append(
        ModelResult(
            OURS_RANKER,
            list_metrics(stages.ranked_lists(scored, k), protocol, k),
            train_seconds,
            candidates_seconds,
        )
    )
    recommendations = output.read_partition(spark, lake, output.RECOMMENDATIONS, sub_run.date)
    results.append(
        ModelResult(
            OURS_FULL,
            list_metrics(stages.final_lists(recommendations), protocol, k),
            train_seconds,
            _stage_seconds(sub_run, ["generate_candidates", "recommend"]),
        )
    )
    return results


def run_ours_or_explain(
    run: Run, protocol: Protocol, users: DataFrame, videos: DataFrame
) -> list[ModelResult]:
    """Return our rows, or rows marked not available with the reason."""
    if not run.config.benchmark.include_ours:
        reason = "benchmark.include_ours is false"
        return [ModelResult(name, not_available=reason) for name in OUR_ROWS]
    try:
        return run_ours(run, protocol, users, videos)
    # A stage can fail in many ways: a missing module, TensorFlow or Spark errors. The
    # peers' tables are still worth writing, so each failure becomes a "not available"
    # row and is logged with its traceback.
    except Exception as error:
        logger.exception("Our pipeline failed on the %s protocol", protocol.name)
        reason = f"pipeline failed: {type(error).__name__}: {error}".splitlines()[0][:300]
        return [ModelResult(name, not_available=reason) for name in OUR_ROWS]


# --- the markdown tables -----------------------------------------------------------------


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def results_table(results: Sequence[ModelResult], k: int) -> str:
    """Render one protocol's results as a markdown table."""
    header = (
        f"| Model | nDCG@{k} | Precision@{k} | Recall@{k} | MAP | MRR@{k} | Hit rate@{k} "
        f"| Coverage@{k} | Train (s) | Recommend (s) |"
    )
    lines = [header, "|" + "---|" * 10]
    for result in results:
        if result.metrics is None:
            lines.append(f"| {result.model} | not available: {result.not_available} |" + " |" * 8)
            continue
        m = result.metrics
        cells = [
            m.get(f"ndcg_at_{k}"), m.get(f"precision_at_{k}"), m.get(f"recall_at_{k}"),
            m.get(f"map_at_{k}"), m.get(f"mrr_at_{k}"), m.get(f"hit_rate_at_{k}"),
            m.get("catalog_coverage"),
        ]  # fmt: skip
        lines.append(
            f"| {result.model} | "
            + " | ".join(_cell(c) for c in cells)
            + f" | {_seconds(result.train_seconds)} | {_seconds(result.recommend_seconds)} |"
        )
    return "\n".join(lines)


def describe_machine(config: Config) -> str:
    """Return the configured machine text, or cores, memory and platform of this one."""
    if config.benchmark.machine:
        return config.benchmark.machine
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory_text = f"{memory:.0f} GB RAM"
    except (ValueError, OSError, AttributeError):
        memory_text = "unknown RAM"
    cores = os.cpu_count()
    return f"{cores} CPU cores, {memory_text}, {platform.machine()}, Spark {config.spark.master}"


def command_line(config: Config) -> str:
    """Rebuild the benchmark command from the files and overrides the config came from."""
    parts = ["./spark-submit.sh", "benchmark"]
    for source in config.sources:
        if "=" in source:
            parts += ["--set", source]
        elif Path(source).name != config_module.BASE_FILE:
            path = Path(source)
            try:
                path = path.resolve().relative_to(Path.cwd())
            except ValueError:
                pass
            parts += ["--config", str(path)]
    return " ".join(parts)


def markdown_section(
    protocols: Sequence[Protocol], results: dict[str, list[ModelResult]], config: Config
) -> str:
    """Render the whole ``## MovieLens 100K vs peers`` section."""
    k = config.benchmark.k
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `{command_line(config)}`  ",
        f"Machine: {describe_machine(config)}; date {today}.",
        "",
        (
            "MAP is Microsoft Recommenders' MAP: the summed precision at each hit in the top "
            f"{k}, divided by the user's number of relevant items. Coverage is the share of "
            "training items that appear in any list. Train and Recommend are wall-clock seconds "
            "on the machine above. For our pipeline, Recommend is candidate generation (both "
            "snapshots), plus the recommend job in the row with rules, and Train sums every "
            "other stage, ingest included."
        ),
    ]
    for protocol in protocols:
        counts = protocol.counts
        lines += [
            "",
            f"### {protocol.title}",
            "",
            (
                f"{protocol.description} {counts['users_evaluated']} users evaluated, "
                f"{counts['train_interactions']} training and {counts['test_interactions']} "
                "relevant test interactions."
            ),
            "",
            results_table(results[protocol.name], k),
        ]
    return "\n".join(lines) + "\n"


def replace_section(text: str, heading: str, section: str) -> str:
    """Replace the ``heading`` section (up to the next ``## `` heading) or append it."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        if not text or text.endswith("\n\n"):
            separator = ""
        elif text.endswith("\n"):
            separator = "\n"
        else:
            separator = "\n\n"
        return text + separator + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def write_markdown(path: str, section: str) -> None:
    """Replace the benchmark section of the markdown file at ``path`` (a local file)."""
    target = Path(path)
    text = target.read_text(encoding="utf-8") if target.exists() else "# Benchmarks\n"
    target.write_text(replace_section(text, SECTION_HEADING, section), encoding="utf-8")


def result_records(results: dict[str, list[ModelResult]]) -> dict[str, list[dict[str, Any]]]:
    """Return the results as JSON-ready dicts."""
    return {
        protocol: [dataclasses.asdict(result) for result in rows]
        for protocol, rows in results.items()
    }
