"""Build the training, validation and test rows: positives, histories and negatives.

Reads raw/{users,videos,interactions}, id_maps/{users,videos}, features/manifest.json
and features/item_frequencies (run build_features first), and training/mined_negatives
when training.negatives.mined > 0. Writes training/{train,validation,test} and
training/manifest.json, as described in docs/lake.md.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any, Optional, Sequence

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_spark import io
from recsys_spark.cli import job_main
from recsys_spark.columns import (
    NEGATIVE_SOURCES,
    NEGATIVE_TYPES,
    SPLIT,
    SPLITS,
    USER_IDX,
    VIDEO_IDX,
)
from recsys_spark.runs import Run
from recsys_spark.sampling import popularity_table, uniform_table
from recsys_spark.splits import Cutoffs
from recsys_spark.training_set import (
    TRAINING_COLUMNS,
    build_training_rows,
    indexed_first_positives,
    label_and_split,
    layout_for_streaming,
    read_raw_tables,
)

logger = logging.getLogger(__name__)


def _read_mined(run: Run) -> Optional[DataFrame]:
    """Return training/mined_negatives when enabled and present, else None (logged)."""
    if run.config.training.negatives.mined <= 0:
        return None
    path = run.lake.training("mined_negatives")
    if not io.exists(run.spark, path):
        logger.warning(
            "training.negatives.mined is %d but %s does not exist yet (mine_hard_negatives "
            "writes it after a two-tower model is trained); examples get no mined negatives.",
            run.config.training.negatives.mined,
            path,
        )
        return None
    return io.read_table(run.spark, path, "mined negatives").select(USER_IDX, VIDEO_IDX)


def _negatives_of(source: str) -> Column:
    """Return the number of the row's negatives that came from ``source``."""
    return F.size(F.filter(NEGATIVE_TYPES, lambda kind: kind == source))


def _count_by_split(rows: DataFrame) -> dict[str, dict[str, int]]:
    """Count rows, dropped rows and negatives per source in each split (one job)."""
    known = F.col(USER_IDX).isNotNull() & F.col(VIDEO_IDX).isNotNull()
    per_source = [
        F.sum(F.when(known, _negatives_of(source))).alias(source) for source in NEGATIVE_SOURCES
    ]
    stats = rows.groupBy(SPLIT).agg(
        F.count(F.when(known, F.lit(1))).alias("rows"),
        F.count(F.when(~known, F.lit(1))).alias("unknown_ids"),
        *per_source,
    )
    counts = {name: {"rows": 0, "unknown_ids": 0} for name in SPLITS}
    for row in stats.collect():
        counts[row[SPLIT]] = {
            key: int(value or 0) for key, value in row.asDict().items() if key != SPLIT
        }
    return counts


def run(run: Run) -> dict[str, Any]:
    spark, config, lake = run.spark, run.config, run.lake
    manifest = io.read_json(spark, lake.features("manifest.json"))
    if manifest.get("split") != config.training.split:
        raise ValueError(
            f"features/manifest.json was built with training.split={manifest.get('split')!r} "
            f"but this run uses {config.training.split!r}. Rerun build_features with the "
            "same config first."
        )
    cutoffs = Cutoffs.from_json(manifest)
    tables = read_raw_tables(spark, lake)
    frequencies = io.read_table(spark, lake.features("item_frequencies"), "item frequencies")
    uniform = uniform_table(tables.video_ids)
    popular = popularity_table(frequencies, config.training.negatives.popularity_exponent)
    mined = _read_mined(run)

    split_events = label_and_split(tables, config, cutoffs)
    firsts = indexed_first_positives(split_events.events, tables).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        rows = build_training_rows(
            split_events, firsts, tables, config, frequencies, uniform, popular, mined
        ).persist(StorageLevel.MEMORY_AND_DISK)
        counts = _count_by_split(rows)
        rows_per_file = config.training.rows_per_file
        for split in SPLITS:
            part = rows.filter(
                (F.col(SPLIT) == split) & F.col(USER_IDX).isNotNull() & F.col(VIDEO_IDX).isNotNull()
            ).select(*TRAINING_COLUMNS)
            io.write_table(
                layout_for_streaming(part, counts[split]["rows"], rows_per_file, config.seed),
                lake.training(split),
                max_records_per_file=rows_per_file,
            )
        rows.unpersist()
    finally:
        firsts.unpersist()
        split_events.unpersist()

    schema = io.read_table(spark, lake.training(SPLITS[0])).schema
    training_manifest = {
        "run_id": run.run_id,
        **cutoffs.to_json(),
        "schema": [{"name": f.name, "type": f.dataType.simpleString()} for f in schema.fields],
        "rows": {split: counts[split]["rows"] for split in SPLITS},
        "vocabulary_sizes": manifest.get("vocabulary_sizes", {}),
        "num_users": manifest.get("num_users"),
        "num_videos": manifest.get("num_videos"),
        "history_length": config.features.history_length,
        "repeat_positives": config.training.repeat_positives,
        "negative_mix": dataclasses.asdict(config.training.negatives),
        "mined_negatives_used": mined is not None,
        "negatives_per_split": {
            split: {source: counts[split].get(source, 0) for source in NEGATIVE_SOURCES}
            for split in SPLITS
        },
    }
    io.write_json(spark, lake.path("training", "manifest.json"), training_manifest)
    return {
        "split": cutoffs.method,
        "rows": training_manifest["rows"],
        "unknown_ids_dropped": {split: counts[split]["unknown_ids"] for split in SPLITS},
        "negatives": training_manifest["negatives_per_split"],
        "mined_negatives_used": mined is not None,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("build_training_set", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
