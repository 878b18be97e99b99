"""recsys-spark: a two-stage video recommender that runs as Spark jobs."""

__version__ = "0.1.0"
