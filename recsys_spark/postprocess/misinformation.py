"""Misinformation rule: flagged videos are dropped; unreviewed ones follow a policy.

``videos.misinformation`` is true for a flagged video, false for a reviewed clean one and
null for one not reviewed yet. The policy for unreviewed videos is ``allow`` (treat as
clean), ``demote`` (subtract a penalty from the score, so they sink below reviewed videos
of similar score) or ``drop``.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsys_spark.columns import MISINFORMATION

FLAGGED = "misinformation_flagged"
UNREVIEWED = "misinformation_unreviewed"
POLICIES = ("allow", "demote", "drop")


def _check_policy(unreviewed: str) -> None:
    if unreviewed not in POLICIES:
        raise ValueError(
            f"Unknown policy for unreviewed videos {unreviewed!r}; choose one of {POLICIES} "
            "(config key rules.misinformation.unreviewed)."
        )


def misinformation_reason(unreviewed: str, flag: Column | str = MISINFORMATION) -> Column:
    """Return the removal reason code per row, or null when the video may be shown.

    Args:
      unreviewed: Policy for a null flag: ``allow``, ``demote`` or ``drop``.
      flag: The video's ``misinformation`` flag (boolean, null when not reviewed).

    Returns:
      ``"misinformation_flagged"`` for a flagged video, ``"misinformation_unreviewed"`` for
      an unreviewed one under ``drop``, otherwise null.
    """
    _check_policy(unreviewed)
    flag = F.col(flag) if isinstance(flag, str) else flag
    reason = F.when(flag, F.lit(FLAGGED))
    if unreviewed == "drop":
        reason = reason.when(flag.isNull(), F.lit(UNREVIEWED))
    return reason


def misinformation_demoted(unreviewed: str, flag: Column | str = MISINFORMATION) -> Column:
    """Return true for rows whose score is demoted: unreviewed videos under ``demote``."""
    _check_policy(unreviewed)
    flag = F.col(flag) if isinstance(flag, str) else flag
    return flag.isNull() if unreviewed == "demote" else F.lit(False)
