"""Freshness rule: a score boost that decays exponentially with the age of a video.

A video uploaded at the snapshot time gets the full ``boost``; the boost halves every
``half_life_days``. Scores are min-max scaled to [0, 1] per user before the boost is
added, so ``boost`` is in the same unit for every ranker. A video of unknown age (null
``age_days``) gets no boost and does not count as fresh.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

AGE_DAYS = "age_days"


def freshness_boost(
    boost: float, half_life_days: float, age_days: Column | str = AGE_DAYS
) -> Column:
    """Return ``boost * 0.5 ** (age_days / half_life_days)``, 0 for an unknown age.

    Ages below zero (an upload time after the snapshot time, which point-in-time features
    should never produce) are clipped to zero so the boost never exceeds ``boost``.
    """
    if half_life_days <= 0:
        raise ValueError(
            f"half_life_days must be positive, got {half_life_days} "
            "(config key rules.freshness.half_life_days)."
        )
    age = F.col(age_days) if isinstance(age_days, str) else age_days
    # greatest() skips nulls, so an unknown age is handled before the clip.
    decay = F.pow(F.lit(0.5), F.greatest(age, F.lit(0.0)) / F.lit(float(half_life_days)))
    return F.when(age.isNull(), F.lit(0.0)).otherwise(F.lit(float(boost)) * decay)


def is_fresh(fresh_days: float, age_days: Column | str = AGE_DAYS) -> Column:
    """Return true for a video uploaded at most ``fresh_days`` before the snapshot time."""
    age = F.col(age_days) if isinstance(age_days, str) else age_days
    return F.coalesce(age <= F.lit(float(fresh_days)), F.lit(False))
