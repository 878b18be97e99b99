"""Seeded pseudo-random numbers computed from row contents.

A uniform drawn from a hash of the row's key and the seed is the same whatever the row
order, the partitioning or the number of executors, which ``F.rand(seed)`` is not:
``rand`` depends on the partition a row lands in.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# A double has 53 bits of mantissa, so 53 hash bits map exactly onto [0, 1).
_MANTISSA_BITS = 53
_MANTISSA_MASK = (1 << _MANTISSA_BITS) - 1


def uniform(seed: int, salt: str, *columns: Column | str) -> Column:
    """Return a uniform double in [0, 1) determined by ``seed``, ``salt`` and ``columns``.

    Args:
      seed: The run's seed (``config.seed``).
      salt: Names the random stream, so that two draws over the same key (a split and a
        negative sample, say) are independent.
      columns: The key of the row, for example ``user_id`` and ``video_id``.
    """
    hashed = F.xxhash64(F.lit(seed), F.lit(salt), *columns)
    return hashed.bitwiseAND(F.lit(_MANTISSA_MASK)).cast("double") / float(1 << _MANTISSA_BITS)
