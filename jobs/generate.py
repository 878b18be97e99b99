"""Generate the synthetic video platform and write its tables as Parquet.

Writes ``<lake.root>/synthetic/<size>-seed<seed>/{users,videos,interactions}`` in the
canonical schemas, and the latent structure behind them to
``.../ground_truth/{user_tastes,videos,near_duplicates}``. The folder can be read back
with ``data.source: parquet`` and ``data.path`` set to it.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Sequence
from typing import Any

from recsys_spark import io
from recsys_spark.cli import job_main
from recsys_spark.runs import Run
from recsys_spark.synthetic import SyntheticSpec, generate, ground_truth


def run(run: Run) -> dict[str, Any]:
    """Write the synthetic tables and their ground truth; return the row count of each."""
    spec = SyntheticSpec.from_config(run.config)
    folder = run.lake.path("synthetic", spec.folder_name())
    counts = {}
    for name, table in generate(run.spark, run.config).items():
        path = posixpath.join(folder, name)
        io.write_table(table, path)
        # Counting the written Parquet reads file footers instead of generating again.
        counts[name] = io.read_table(run.spark, path, name).count()
    for name, table in ground_truth(run.spark, run.config).items():
        path = posixpath.join(folder, "ground_truth", name)
        io.write_table(table, path)
        counts[f"ground_truth.{name}"] = io.read_table(run.spark, path, name).count()
    return {"path": folder, "size": spec.size, "seed": spec.seed, "rows": counts}


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("generate", run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
