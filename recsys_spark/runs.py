"""Run ids and the run summary written to ``lake/runs/<run_id>/summary.json``."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import SparkSession

from recsys_spark import config as config_module
from recsys_spark import io
from recsys_spark.settings import Config

logger = logging.getLogger(__name__)


def new_run_id(now: Optional[dt.datetime] = None) -> str:
    """Return a sortable, unique run id such as ``20261204T153000Z-1a2b3c4d``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_date(config: Config) -> str:
    """Return the configured run date, or today's UTC date, as YYYY-MM-DD."""
    if config.run_date:
        try:
            return dt.date.fromisoformat(config.run_date).isoformat()
        except ValueError as error:
            raise ValueError(
                f"run_date {config.run_date!r} is not a date; use YYYY-MM-DD."
            ) from error
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


@dataclass
class Run:
    """One run of one or more stages: its id, its config and the summary it builds up.

    Each stage records its counts with :meth:`record`; :meth:`save` writes the whole
    summary, so a pipeline's summary holds every stage that ran.
    """

    spark: SparkSession
    config: Config
    run_id: str = field(default_factory=new_run_id)
    stages: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def lake(self) -> io.Lake:
        return io.Lake(self.config.lake.root)

    @property
    def date(self) -> str:
        return run_date(self.config)

    def record(self, stage: str, summary: dict[str, Any]) -> None:
        """Store a stage's summary and write the run summary file."""
        self.stages[stage] = summary
        self.save()

    def summary_path(self) -> str:
        return io.Lake(self.config.lake.root).run(self.run_id) + "/summary.json"

    def save(self) -> None:
        data = {
            "run_id": self.run_id,
            "run_date": self.date,
            "started_at": self.started_at,
            "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": config_module.to_dict(self.config),
            "stages": self.stages,
        }
        io.write_json(self.spark, self.summary_path(), data)
