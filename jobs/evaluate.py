"""Evaluate: score a run's recommendations against the held-out positives and write
evaluation/<run_id>/metrics.json and report.html."""

from __future__ import annotations

import logging
import posixpath
import sys
from collections.abc import Sequence
from typing import Any

from recsys_spark import io
from recsys_spark.cli import job_main
from recsys_spark.evaluation.evaluator import evaluate_run
from recsys_spark.evaluation.report import render_report
from recsys_spark.runs import Run

logger = logging.getLogger(__name__)


def run(run: Run) -> dict[str, Any]:
    metrics = evaluate_run(run)
    folder = run.lake.evaluation(run.run_id)
    metrics_path = posixpath.join(folder, "metrics.json")
    io.write_json(run.spark, metrics_path, metrics)
    report_path = None
    if run.config.evaluate.report:
        report_path = posixpath.join(folder, "report.html")
        io.write_text(run.spark, report_path, render_report(metrics))

    final = metrics["accuracy"].get("final", {}) if "accuracy" in metrics else {}
    k = min(metrics["ks"])
    summary = {
        "metrics": metrics_path,
        "report": report_path,
        "evaluated_run_id": metrics["evaluated_run_id"],
        "run_date": metrics["run_date"],
        "users_evaluated": final.get("users_evaluated"),
        "users_without_relevant": final.get("users_without_relevant"),
        "users_without_recommendations": final.get("users_without_recommendations"),
        f"ndcg_at_{k}": final.get(f"ndcg_at_{k}"),
        f"recall_at_{k}": final.get(f"recall_at_{k}"),
        "stages": metrics["stages_evaluated"],
        "not_available": sorted(metrics["not_available"]),
    }
    logger.info(
        "Evaluated run %s (%s users): nDCG@%d %s, recall@%d %s; metrics in %s",
        summary["evaluated_run_id"],
        summary["users_evaluated"],
        k,
        summary[f"ndcg_at_{k}"],
        k,
        summary[f"recall_at_{k}"],
        metrics_path,
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("evaluate", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
