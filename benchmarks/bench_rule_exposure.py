"""Measure how each post-processing rule moves creator-exposure Gini and long-tail share.

Runs the recommend job once with every rule on, then once per rule with that rule off
(or relaxed), on a lake where the upstream stages ran, and prints a Markdown table of
the exposure before and after the rules. Each run writes its own run_date partition
(2026-08-01, 2026-08-02...) into that lake.

  python benchmarks/bench_rule_exposure.py --lake /path/to/lake \\
      --set data.size=s --set spark.master=local[2] --append BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import sys
import time

from common import command_line, machine_line, publish

from jobs import recommend
from recsys_spark.cli import configure_logging
from recsys_spark.config import load_config
from recsys_spark.runs import Run
from recsys_spark.session import get_spark

# Variant name -> the overrides that turn one rule off or relax it.
VARIANTS = {
    "all rules": [],
    "misinformation off": ["rules.misinformation.enabled=false"],
    "unreviewed videos allowed": ["rules.misinformation.unreviewed=allow"],
    "duplicates off": ["rules.duplicates.enabled=false"],
    "fairness (caps, long-tail share) off": ["rules.fairness.enabled=false"],
    "freshness off": ["rules.freshness.enabled=false"],
    "re-watches allowed": ["rules.rewatch=allow"],
    "region off": ["rules.region.enabled=false"],
    "diversity (MMR) off": ["rules.diversity.method=none"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", required=True, help="Lake root where the upstream stages ran.")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--append", metavar="FILE", help="Append the results to this file.")
    args = parser.parse_args(argv)
    configure_logging()

    spark = None
    rows = []
    for day, (name, variant) in enumerate(VARIANTS.items(), start=1):
        config = load_config(
            overrides=[
                f"lake.root={args.lake}",
                *args.overrides,
                f"run_date=2026-08-{day:02d}",
                *variant,
            ]
        )
        spark = spark or get_spark(config)
        started = time.perf_counter()
        summary = recommend.run(Run(spark=spark, config=config))
        seconds = time.perf_counter() - started
        before, after = summary["exposure"]["before_rules"], summary["exposure"]["after_rules"]
        print(f"{name}: {after} in {seconds:.0f}s", file=sys.stderr, flush=True)
        rows.append((name, before, after, summary["scorer"]))

    lines = [
        "### Exposure per rule",
        "",
        f"Command: `{command_line('bench_rule_exposure.py', argv)}`",
        "",
        machine_line(),
        "",
        f"Scorer: {rows[0][3]}. Before the rules (each user's top k by score): creator-exposure "
        f"Gini {rows[0][1]['creator_gini']}, long-tail share {rows[0][1]['long_tail_share']}.",
        "",
        "| rules | Gini after | long-tail share after |",
        "|---|---:|---:|",
    ]
    for name, _, after, _ in rows:
        lines.append(f"| {name} | {after['creator_gini']} | {after['long_tail_share']} |")
    publish("\n".join(lines) + "\n", args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
