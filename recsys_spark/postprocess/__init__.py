"""Post-processing rules of the recommend job, one module per rule family.

- :mod:`~recsys_spark.postprocess.region`: videos blocked in the user's region.
- :mod:`~recsys_spark.postprocess.misinformation`: flagged and unreviewed videos.
- :mod:`~recsys_spark.postprocess.watched`: videos the user already watched.
- :mod:`~recsys_spark.postprocess.duplicates`: near-duplicate clusters (MinHash LSH on
  title and tag shingles, random-hyperplane LSH on embeddings, connected components).
- :mod:`~recsys_spark.postprocess.freshness`: a boost decaying with the age of a video.
- :mod:`~recsys_spark.postprocess.fairness`: caps per creator and category, a minimum
  long-tail share, MMR diversification, creator-exposure Gini.
- :mod:`~recsys_spark.postprocess.backfill`: the regional popularity pool for short lists
  and for users without candidates.
- :mod:`~recsys_spark.postprocess.apply`: the chain, in the order described there.
"""

from pyspark.sql import Column
from pyspark.sql import functions as F


def timestamp_literal(instant: str) -> Column:
    """Return a timestamp literal from an ISO-8601 string read in the session time zone.

    Instants travel between stages as UTC ISO strings rather than Python datetimes,
    because PySpark converts naive datetimes with the Python process's local time zone.
    """
    return F.to_timestamp(F.lit(instant))
