"""Benchmark two-tower training: training examples per second on a synthetic size tier.

Builds the lake's training set once (ingest, build_features, build_training_set, skipped
when training/train already exists), then trains each variant for a fixed number of
epochs without early stopping and reports, per variant:

- the input pipeline alone: examples per second of one pass over the tf.data stream,
- training throughput: examples per second of the first epoch (includes tracing) and of
  the later epochs (steady state),
- validation recall@K after the last epoch, beside the untrained and popularity baselines.

Variants: ``features`` (the defaults), ``features+negatives`` (128 random corpus
negatives per batch and 4 row negatives per example), ``id_only``. It prints a Markdown
section; --append FILE appends it as a ``## Two-tower training throughput`` section.

  python benchmarks/bench_train.py --size s --epochs 3 \\
      --set spark.master=local[2] --set spark.driver_memory=3g --append BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tempfile
import time

# common puts the repository root on sys.path, so the package imports follow it.
from common import REPO_ROOT, command_line, machine_line, publish

from jobs.train_two_tower import read_training_inputs, resolve_history_length
from recsys_spark import io
from recsys_spark.cli import configure_logging, run_stage
from recsys_spark.config import load_config
from recsys_spark.models import data
from recsys_spark.models.train import train_two_tower
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

logger = logging.getLogger("bench_train")

SECTION = "## Two-tower training throughput"
UPSTREAM_STAGES = ("ingest", "build_features", "build_training_set")
VARIANTS = {
    "features": (),
    "features+negatives": ("two_tower.random_negatives=128", "two_tower.row_negatives=4"),
    "id_only": ("two_tower.mode=id_only",),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="s", choices=("tiny", "s", "m", "l"))
    parser.add_argument("--epochs", type=int, default=3, help="Epochs per variant (default 3).")
    parser.add_argument(
        "--variant",
        action="append",
        choices=tuple(VARIANTS),
        help="Variant to train; repeat for several (default: all).",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument(
        "--lake",
        help="Lake root to train from (default: lake-benchmark/two-tower-<size>).",
    )
    parser.add_argument("--append", metavar="FILE", help="Append the results to this file.")
    return parser.parse_args(argv)


def ensure_training_set(config) -> None:
    """Run the upstream stages unless the lake already has training/train."""
    spark = get_spark(config)
    lake = io.Lake(config.lake.root)
    if io.exists(spark, lake.training("train")):
        logger.info("Reusing the training set in %s", config.lake.root)
        return
    run = Run(spark=spark, config=config)
    for name in UPSTREAM_STAGES:
        run_stage(name, importlib.import_module(f"jobs.{name}").run, run)


def input_pipeline_rate(path: str, settings, history_length: int, seed: int) -> float:
    """Return examples per second of one pass over the training stream, without a model."""
    row_format = data.RowFormat(
        history_length,
        row_negatives=settings.row_negatives,
        row_negative_types=tuple(settings.row_negative_types),
        sampling_probability=settings.logq_correction,
    )
    dataset = data.training_dataset(
        path,
        row_format,
        settings.batch_size,
        settings.shuffle_buffer,
        settings.read_batch_rows,
        seed,
        epoch=0,
    )
    started = time.perf_counter()
    examples = sum(int(batch["video_idx"].shape[0]) for batch in dataset)
    return examples / (time.perf_counter() - started)


def bench_variant(name: str, args: argparse.Namespace, lake_root: str) -> dict:
    overrides = [
        f"lake.root={lake_root}",
        f"data.size={args.size}",
        *args.overrides,
        *VARIANTS[name],
        f"two_tower.epochs={args.epochs}",
        # Every epoch runs, so the throughput of each is measured.
        f"two_tower.early_stopping_patience={args.epochs}",
    ]
    config = load_config(args.config, overrides)

    spark = get_spark(config)
    lake = io.Lake(config.lake.root)
    settings = config.two_tower
    history_length = resolve_history_length(spark, lake, config)
    inputs = read_training_inputs(spark, lake, settings.snapshot)

    pipeline_rate = input_pipeline_rate(inputs.train_path, settings, history_length, config.seed)
    with tempfile.TemporaryDirectory(prefix="bench-two-tower-") as model_dir:
        result = train_two_tower(
            inputs,
            settings,
            history_length,
            config.seed,
            model_dir,
            exclude_history=not config.training.repeat_positives,
        )

    epochs = result.epochs
    later = epochs[1:] or epochs
    return {
        "variant": name,
        "settings": settings,
        "train_rows": result.metrics["train_rows"],
        "corpus_videos": result.metrics["corpus_videos"],
        "pipeline_rate": pipeline_rate,
        "first_epoch_rate": epochs[0]["examples_per_second"],
        "steady_rate": result.metrics["train_examples_per_second"],
        "epoch_seconds": sum(epoch["seconds"] for epoch in later) / len(later),
        "recall": epochs[-1][f"recall_at_{settings.recall_k}"],
        "untrained": result.metrics["untrained_recall_at_k"],
        "popularity": result.metrics["popularity_recall_at_k"],
        "k": settings.recall_k,
    }


def markdown(results: list[dict], args: argparse.Namespace, command: str) -> str:
    first = results[0]
    settings = first["settings"]
    lines = [
        SECTION,
        "",
        f"Command: `{command}`",
        "",
        machine_line(),
        "",
        (
            f"Synthetic tier `{args.size}`: {first['train_rows']} training rows, "
            f"{first['corpus_videos']} videos. Batch {settings.batch_size}, embedding_dim "
            f"{settings.embedding_dim}, hidden units {list(settings.hidden_units)}, "
            f"{args.epochs} epochs, no early stopping."
        ),
        "",
        (
            "| variant | input pipeline alone (examples/s) | epoch 1 incl. tracing (examples/s) "
            "| later epochs (examples/s) | s per later epoch "
            f"| recall@{first['k']} after last epoch | untrained | popularity |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result['variant']} | {result['pipeline_rate']:,.0f} "
            f"| {result['first_epoch_rate']:,.0f} | {result['steady_rate']:,.0f} "
            f"| {result['epoch_seconds']:.1f} | {result['recall']:.4f} "
            f"| {result['untrained']:.4f} | {result['popularity']:.4f} |"
        )
    lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    lake_root = args.lake or str(REPO_ROOT / "lake-benchmark" / f"two-tower-{args.size}")
    upstream = load_config(
        args.config, [f"lake.root={lake_root}", f"data.size={args.size}", *args.overrides]
    )
    ensure_training_set(upstream)
    results = [bench_variant(name, args, lake_root) for name in args.variant or VARIANTS]
    publish(markdown(results, args, command_line("bench_train.py", argv)), args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
