"""Region rule: a video blocked in the user's region is never recommended.

``videos.blocked_regions`` lists the regions where a video must not be shown; an empty
array means it is available everywhere. A user whose region is unknown (null) gets only
videos available everywhere, because any region could be theirs.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsys_spark.columns import BLOCKED_REGIONS, REGION

BLOCKED = "region_blocked"
UNKNOWN_REGION = "region_unknown"


def available_everywhere(blocked_regions: Column) -> Column:
    """Return true for a video with no blocked region (an empty or null array).

    Note:
      A null ``blocked_regions`` is read as "not blocked anywhere", the same as an empty
      array, because the canonical schema allows the column to be null.
    """
    return F.coalesce(F.size(blocked_regions) == 0, F.lit(True))


def region_reason(region: Column | str = REGION, blocked: Column | str = BLOCKED_REGIONS) -> Column:
    """Return the removal reason code for each (user, video) row, or null when allowed.

    Args:
      region: The user's region (string, null when unknown).
      blocked: The video's ``blocked_regions`` (array<string>).

    Returns:
      ``"region_blocked"`` when the video is blocked in the user's region,
      ``"region_unknown"`` when the region is null and the video is blocked anywhere,
      otherwise null.
    """
    region = F.col(region) if isinstance(region, str) else region
    blocked = F.col(blocked) if isinstance(blocked, str) else blocked
    everywhere = available_everywhere(blocked)
    return F.when(region.isNull() & ~everywhere, F.lit(UNKNOWN_REGION)).when(
        region.isNotNull() & F.coalesce(F.array_contains(blocked, region), F.lit(False)),
        F.lit(BLOCKED),
    )
