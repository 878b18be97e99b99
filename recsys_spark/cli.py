"""Command-line handling shared by every job: arguments, config, session, logging."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable, Optional, Sequence

from recsys_spark.config import ConfigError, load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

logger = logging.getLogger(__name__)

StageFn = Callable[[Run], dict[str, Any]]


def build_parser(job: str, description: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"spark-submit.sh {job}", description=description)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="Overlay config merged over conf/base.yaml, in order; a path or a name in conf/.",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="Override one config key, for example --set recommend.k=20; applied last.",
    )
    return parser


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def job_main(
    job: str, stage: StageFn, argv: Optional[Sequence[str]] = None, description: str = ""
) -> int:
    """Parse ``argv``, load the config, start Spark, run ``stage`` and record its summary.

    Returns the process exit code: 0 on success, 2 for a config error, 1 when the stage
    raises ``ValueError`` or ``FileNotFoundError`` (bad input, named in the message).
    """
    configure_logging()
    args = build_parser(job, description).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = Run(spark=get_spark(config), config=config)
    try:
        run_stage(job, stage, run)
    except (ValueError, FileNotFoundError) as error:
        # The summary of a failed run records the error, so every run id has one.
        run.record(job, {"status": "failed", "error": str(error)})
        logger.error("%s failed (run %s, error in %s)", job, run.run_id, run.summary_path())
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_stage(job: str, stage: StageFn, run: Run) -> dict[str, Any]:
    """Run one stage, time it, and add its summary to the run's summary file."""
    logger.info("%s started (run %s, lake %s)", job, run.run_id, run.config.lake.root)
    started = time.perf_counter()
    summary = stage(run) or {}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    run.record(job, summary)
    logger.info("%s finished in %.1fs; summary in %s", job, summary["seconds"], run.summary_path())
    return summary
