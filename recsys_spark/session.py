"""The one place that builds a SparkSession from the config.

Jobs, notebooks and tests all call :func:`get_spark`; nothing else builds a session.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from recsys_spark.settings import Config

logger = logging.getLogger(__name__)

# Shuffle partitions per core for each synthetic size tier: small data wants few tasks,
# because every task costs scheduling time that dwarfs its work.
_PARTITIONS_PER_CORE = {"tiny": 1, "s": 2, "m": 4, "l": 8}


def _local_cores(master: str) -> int:
    """Return the core count a local[...] master uses, or the machine's for other masters."""
    if master.startswith("local[") and master.endswith("]"):
        inner = master[len("local[") : -1].split(",")[0]
        if inner.isdigit():
            return int(inner)
    return os.cpu_count() or 2


def shuffle_partitions(config: Config) -> int:
    """Return the configured shuffle partition count, or one sized from cores and data."""
    if config.spark.shuffle_partitions is not None:
        return config.spark.shuffle_partitions
    cores = _local_cores(config.spark.master)
    tier = config.data.size if config.data.source == "synthetic" else "s"
    return max(2, cores * _PARTITIONS_PER_CORE[tier])


def get_spark(config: Config) -> SparkSession:
    """Return the active SparkSession, or build one from ``config.spark``.

    Under spark-submit the master is already set by its ``--master`` flag (which
    ``spark-submit.sh`` fills from ``spark.master``), and this function leaves it alone.
    In a notebook or a plain Python process it applies ``spark.master`` itself.

    Note:
      ``spark.driver.memory`` only takes effect when this call starts the JVM. In a
      notebook whose session already exists, the existing session is returned with the
      SQL settings below applied and the rest unchanged.
    """
    spark_conf = config.spark
    settings = {
        "spark.app.name": spark_conf.app_name,
        "spark.driver.memory": spark_conf.driver_memory,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.shuffle.partitions": str(shuffle_partitions(config)),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Parquet files written by one job are read back by tf.data and pyarrow, which
        # expect microsecond timestamps rather than the legacy INT96 encoding.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.showConsoleProgress": "false",
        **spark_conf.conf,
    }
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in settings.items():
            if key.startswith("spark.sql."):
                active.conf.set(key, value)
        return active

    # Python workers run this interpreter unless told otherwise, so they see the same
    # packages (pandas, TensorFlow, ScaNN) as the driver in local mode.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    # Under spark-submit the JVM already runs with its --master and --conf values as system
    # properties; attaching to it first lets SparkConf() read them.
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext._ensure_initialized()
    submitted = SparkConf()
    if not submitted.contains("spark.master"):
        builder = builder.master(spark_conf.master)
    for key, value in settings.items():
        # A value given to spark-submit (--conf, --driver-memory) wins over the defaults
        # derived here; keys from the config's spark.conf section are applied regardless.
        if submitted.contains(key) and key not in spark_conf.conf:
            continue
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_conf.log_level)
    logger.info(
        "Spark %s session on %s with %s shuffle partitions",
        spark.version,
        spark.sparkContext.master,
        spark.conf.get("spark.sql.shuffle.partitions"),
    )
    return spark
