"""Shared parts of the benchmark scripts: arguments, the machine line and the output.

Each script records the command that produced its numbers and the machine it ran on, and
prints a Markdown section that ``--append FILE`` adds to a file such as BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import posixpath
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SIZES = ("tiny", "s", "m", "l")


def parse_tier_args(
    doc: str, work_dir: str, argv: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Parse the arguments of a script that runs on synthetic tiers.

    Args:
      doc: The script's docstring; its first paragraph is the description.
      work_dir: Default parent folder of the tiers' lakes, relative to the repository.
      argv: The arguments, or None for this process's.

    Returns:
      ``size`` (list or None), ``config``, ``overrides``, ``work_dir`` and ``append``.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--size",
        action="append",
        choices=SIZES,
        help="Synthetic size tier; repeat for several, smallest first (default: s).",
    )
    parser.add_argument("--config", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument(
        "--work-dir",
        default=str(REPO_ROOT / work_dir),
        help=f"Parent folder of the tiers' lakes (default: {work_dir}).",
    )
    add_append_argument(parser)
    return parser.parse_args(argv)


def add_append_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--append", metavar="FILE", help="Append the results to this file.")


def write_synthetic_source(spark, config, source: str) -> None:
    """Generate the synthetic tables of ``config`` and write them as Parquet under ``source``."""
    from recsys_spark import io
    from recsys_spark.synthetic import generate

    for name, table in generate(spark, config).items():
        io.write_table(table, posixpath.join(source, name))


def machine_line() -> str:
    """Describe this machine, its load now and today's date, as one Markdown line."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Machine: {os.cpu_count()} cores, {memory_gib:.0f} GiB, shared with other jobs (load "
        f"average over 1, 5 and 15 min at the end: {load}); {platform.platform()}; Python "
        f"{platform.python_version()}. Date: {dt.date.today().isoformat()}."
    )


def command_line(script: str, argv: Optional[Sequence[str]]) -> str:
    """Return the command that ran ``script`` with ``argv`` (or this process's arguments)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    return f"python benchmarks/{script} {shlex.join(arguments)}".rstrip()


def publish(text: str, append: Optional[str]) -> None:
    """Print a results section, and append it to the file ``append`` when given."""
    print(text)
    if append:
        with open(append, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
