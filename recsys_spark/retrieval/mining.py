"""Hard-negative mining: the videos the trained model ranks highest that are not positives.

For each user, the index is searched with the user's query embedding and the user's
known positives are removed. The first ``skip_top`` remaining neighbours are skipped,
because the videos closest to a user's taste are often unlabelled positives (videos the
user would have liked but never saw), and the next ``num_negatives`` are kept. The
second training round appends them to the in-batch negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_spark.columns import HISTORY_VIDEO_IDX, USER_ID, USER_IDX, VIDEO_IDX
from recsys_spark.retrieval.index import VideoIndex
from recsys_spark.retrieval.serving import (
    QUERY_COLUMNS,
    Exclusions,
    RetrievalBundle,
    in_batches,
    search_excluding,
    shipped_bundle,
)
from recsys_spark.settings import MiningConfig

POSITIVE_VIDEO_IDX = "positive_video_idx"

MINED_NEGATIVES_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.StringType(), False),
        T.StructField(USER_IDX, T.LongType(), False),
        T.StructField(VIDEO_IDX, T.LongType(), False),
    ]
)


@dataclass(frozen=True)
class MiningSpec:
    """Settings that the executors need besides the shipped index folder."""

    bundle_name: str
    num_negatives: int
    skip_top: int
    # Extra neighbours fetched in the first search to replace positives.
    overfetch: int
    batch_size: int
    tf_threads: int

    @classmethod
    def from_config(
        cls,
        config: MiningConfig,
        bundle_name: str,
        overfetch: int,
        batch_size: int,
        tf_threads: int,
    ) -> MiningSpec:
        return cls(
            bundle_name=bundle_name,
            num_negatives=config.num_negatives,
            skip_top=config.skip_top,
            overfetch=overfetch,
            batch_size=batch_size,
            tf_threads=tf_threads,
        )


def mine_batch(
    users: pd.DataFrame, queries: np.ndarray, index: VideoIndex, spec: MiningSpec
) -> pd.DataFrame:
    """Return the mined negatives of a batch of users.

    Args:
      users: ``user_id``, ``user_idx``, ``positive_video_idx`` (array of ``video_idx``).
      queries: float32 [len(users), D] L2-normalised query embeddings, in row order.
      index: The index to search.
      spec: How many neighbours to skip and to keep.

    Returns:
      ``user_id``, ``user_idx``, ``video_idx``: up to ``num_negatives`` rows per user, in
      rank order.
    """
    exclusions = Exclusions(users[POSITIVE_VIDEO_IDX], index)
    rows, positions, ordinals = search_excluding(
        index, queries, exclusions, spec.skip_top + spec.num_negatives, spec.overfetch
    )
    past_skipped = ordinals >= spec.skip_top
    rows, positions = rows[past_skipped], positions[past_skipped]
    return pd.DataFrame(
        {
            USER_ID: users[USER_ID].to_numpy()[rows],
            USER_IDX: users[USER_IDX].to_numpy(dtype=np.int64)[rows],
            VIDEO_IDX: index.corpus.video_idx[positions],
        }
    )


def mining_inputs(users: DataFrame, train: DataFrame) -> DataFrame:
    """Attach each training user's positives to the user's query features.

    Args:
      users: A ``features/users/<snapshot>`` table (the query columns).
      train: ``training/train`` rows: ``user_id``, ``video_idx``, ``history_video_idx``.

    Returns:
      The query columns plus ``positive_video_idx`` (array<long>): every training positive
      and history entry of the user. Users without training rows are left out, because
      only training rows use mined negatives.
    """
    positives = train.select(
        USER_ID, F.explode(F.array_union(F.array(VIDEO_IDX), HISTORY_VIDEO_IDX)).alias("_video")
    )
    per_user = positives.groupBy(USER_ID).agg(
        F.array_sort(F.collect_set("_video")).alias(POSITIVE_VIDEO_IDX)
    )
    return users.select(*QUERY_COLUMNS).join(per_user, USER_ID)


def mine_hard_negatives(
    inputs: DataFrame, spec: MiningSpec, num_partitions: int, loads=None
) -> DataFrame:
    """Mine every input user's hard negatives on the executors.

    The index folder named ``spec.bundle_name`` must have been shipped with
    :func:`recsys_spark.retrieval.serving.ship_index`.

    Args:
      inputs: The output of :func:`mining_inputs`.
      spec: How many neighbours to skip and to keep.
      num_partitions: Tasks that embed and search.
      loads: Optional Spark accumulator that counts the index loads on the executors.

    Returns:
      :data:`MINED_NEGATIVES_SCHEMA`: ``user_id``, ``user_idx``, ``video_idx``.
    """

    def mine(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle: Optional[RetrievalBundle] = None
        for users in in_batches(batches, spec.batch_size):
            if bundle is None:
                bundle = shipped_bundle(spec.bundle_name, spec.tf_threads, loads)
            yield mine_batch(users, bundle.encoder.encode(users), bundle.index, spec)

    return inputs.repartition(num_partitions).mapInPandas(mine, MINED_NEGATIVES_SCHEMA)
