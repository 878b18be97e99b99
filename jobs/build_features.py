"""Build point-in-time user and video features, vocabularies and item frequencies.

Reads raw/{users,videos,interactions} and id_maps/{users,videos} (written by ingest).
Writes features/{users,videos}/{validation,test}, features/vocabularies/<name>.txt,
features/item_frequencies and features/manifest.json, as described in docs/lake.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from typing import Any, Optional, Sequence

from pyspark import StorageLevel
from pyspark.ml.feature import StopWordsRemover
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark import features, io, vocab
from recsys_spark.cleaning import count_rows_and_non_finite, replace_non_finite
from recsys_spark.cli import job_main
from recsys_spark.columns import SNAPSHOTS, USER_IDX, VIDEO_IDX
from recsys_spark.positives import clean_videos
from recsys_spark.runs import Run
from recsys_spark.sampling import item_frequencies
from recsys_spark.splits import isoformat, snapshot_time, visible_splits
from recsys_spark.training_set import (
    RawTables,
    SplitEvents,
    indexed_first_positives,
    label_and_split,
    read_raw_tables,
    train_examples,
)

logger = logging.getLogger(__name__)


def _write_features(
    df: DataFrame, path: str, doubles: Sequence[str], key: str, rows_per_file: int
) -> dict[str, Any]:
    """Count and replace non-finite values, then write ``df`` in files of bounded size."""
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows, bad = count_rows_and_non_finite(df, doubles)
        if any(bad.values()):
            logger.warning("Replacing non-finite values with 0 in %s: %s", path, bad)
        files = max(1, math.ceil(rows / rows_per_file))
        cleaned = replace_non_finite(df, doubles, 0.0).repartition(files, key)
        io.write_table(cleaned.sortWithinPartitions(key), path, max_records_per_file=rows_per_file)
    finally:
        df.unpersist()
    return {"rows": rows, "non_finite_replaced": {k: v for k, v in bad.items() if v}}


def _max_index(df: DataFrame, column: str) -> int:
    return int(df.agg(F.max(column)).first()[0] or 0)


def _write_snapshot(
    run: Run,
    snapshot: str,
    split_events: SplitEvents,
    firsts: DataFrame,
    catalog: DataFrame,
    tables: RawTables,
) -> dict[str, Any]:
    """Build and write one snapshot's user and video features; return its summary."""
    cutoffs = split_events.cutoffs
    users, videos = features.build_snapshot(
        snapshot,
        split_events.events,
        firsts,
        catalog,
        tables.user_ids,
        tables.users,
        cutoffs,
        run.config.features,
        split_events.user_cutoffs,
    )
    rows_per_file = run.config.features.rows_per_file
    return {
        "as_of": isoformat(snapshot_time(cutoffs, snapshot)),
        "users_as_of": "global" if split_events.user_cutoffs is None else "per_user",
        "visible_splits": list(visible_splits(snapshot)),
        "users": _write_features(
            users,
            run.lake.features("users", snapshot),
            features.USER_DOUBLE_FEATURES,
            USER_IDX,
            rows_per_file,
        ),
        "videos": _write_features(
            videos,
            run.lake.features("videos", snapshot),
            features.VIDEO_DOUBLE_FEATURES,
            VIDEO_IDX,
            rows_per_file,
        ),
    }


def run(run: Run) -> dict[str, Any]:
    spark, config, lake = run.spark, run.config, run.lake
    tables = read_raw_tables(spark, lake)
    split_events = label_and_split(tables, config)
    cutoffs = split_events.cutoffs
    logger.info("Split %s with cut-offs %s", cutoffs.method, cutoffs.to_json())

    stop_words: Sequence[str] = ()
    if config.features.remove_stop_words:
        stop_words = StopWordsRemover.loadDefaultStopWords("english")
    catalog = features.video_catalog(
        clean_videos(tables.videos),
        tables.video_ids,
        config.features.duration_bucket_edges_s,
        stop_words,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    firsts = indexed_first_positives(split_events.events, tables).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    summary: dict[str, Any] = {
        "interactions": split_events.profile.rows,
        "non_finite_inputs": dict(split_events.profile.non_finite),
        "split": cutoffs.method,
    }
    snapshots: dict[str, Any] = {}
    try:
        for snapshot in SNAPSHOTS:
            snapshots[snapshot] = _write_snapshot(
                run, snapshot, split_events, firsts, catalog, tables
            )
        vocabulary_sizes = _write_vocabularies(run, catalog, tables.users)
        frequencies = item_frequencies(train_examples(firsts))
        io.write_table(frequencies, lake.features("item_frequencies"))
    finally:
        firsts.unpersist()
        catalog.unpersist()
        split_events.unpersist()

    written = io.read_table(spark, lake.features("item_frequencies"))
    frequency_row = written.agg(F.count(F.lit(1)), F.sum("count")).first()
    manifest = {
        "run_id": run.run_id,
        **cutoffs.to_json(),
        "snapshots": {
            name: {key: value for key, value in info.items() if key not in ("users", "videos")}
            for name, info in snapshots.items()
        },
        "vocabulary_sizes": vocabulary_sizes,
        "num_users": _max_index(tables.user_ids, USER_IDX) + 1,
        "num_videos": _max_index(tables.video_ids, VIDEO_IDX) + 1,
        "history_length": config.features.history_length,
        "positives": dataclasses.asdict(config.training.positives),
        "training_positives": int(frequency_row[1] or 0),
        "videos_with_training_positives": int(frequency_row[0]),
    }
    io.write_json(spark, lake.features("manifest.json"), manifest)
    summary.update(
        snapshots=snapshots,
        vocabulary_sizes=vocabulary_sizes,
        num_users=manifest["num_users"],
        num_videos=manifest["num_videos"],
        training_positives=manifest["training_positives"],
        videos_with_training_positives=manifest["videos_with_training_positives"],
    )
    return summary


def _write_vocabularies(run: Run, catalog: DataFrame, users: DataFrame) -> dict[str, int]:
    values = vocab.vocabulary_values(catalog, users)
    vocabularies = vocab.collect_vocabularies(values, run.config.features.vocabulary_min_count)
    for name, entries in vocabularies.items():
        path = run.lake.features("vocabularies", f"{name}.txt")
        io.write_text(run.spark, path, vocab.vocabulary_text(entries))
        if not entries:
            logger.warning("Vocabulary %s is empty: the source has no %s values.", name, name)
    return {name: len(entries) for name, entries in vocabularies.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    return job_main("build_features", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
