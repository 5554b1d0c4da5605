"""The one Spark session factory used by every job, test and notebook.

`get_spark(cfg)` decides how to get a session:
- a session is already active (Databricks notebook or job, a test fixture, a notebook that built one) -> reuse it;
- the process was launched by `spark-submit` (the JVM gateway is already up) -> leave master, resources and jars to
  the cluster and only add the Delta SQL settings;
- otherwise (laptop, local tests) -> local mode with Delta configured from the jars that `behaviorlm setup` cached,
  so no network is needed at run time.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import Config, cache_dir
from jobs.errors import BehaviorLMError

log = logging.getLogger(__name__)

DELTA_VERSION = version("delta-spark")
# Since Delta 4.x the artifact names the Spark minor version it was built for, as delta's own pip_utils does.
_SPARK_MINOR = ".".join(version("pyspark").split(".")[:2])
DELTA_PACKAGE = f"io.delta:delta-spark_{_SPARK_MINOR}_2.13:{DELTA_VERSION}"
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Event timestamps are stored and compared in UTC whatever the machine's zone; config may still override.
    "spark.sql.session.timeZone": "UTC",
}


class DeltaNotAvailableError(BehaviorLMError, RuntimeError):
    """The Delta Lake jars are not on the session's classpath."""


def delta_jars_dir() -> Path:
    """Folder where `behaviorlm setup` caches the Delta jars for this delta-spark version."""
    return cache_dir() / "jars" / f"delta-{DELTA_VERSION}"


def cached_delta_jars() -> list[str]:
    folder = delta_jars_dir()
    return sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []


def under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway port to the Python driver.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: Config) -> SparkSession:
    """Return the session for this process: the active one, a spark-submit one, or a local one with Delta."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(cfg.spark.app_name)
    for key, value in DELTA_SQL_CONF.items():
        builder = builder.config(key, value)
    if not under_spark_submit():
        # Python workers must run this interpreter (the one with our packages); pyspark reads only the variable.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(cfg.spark.master)
        jars = cached_delta_jars()
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        else:
            log.warning("Delta jars not cached (run `behaviorlm setup`); resolving %s from Maven", DELTA_PACKAGE)
            builder = builder.config("spark.jars.packages", DELTA_PACKAGE)
    for key, value in cfg.spark.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _check_delta(spark)
    return spark


def _check_delta(spark: SparkSession) -> None:
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:  # Spark Connect (e.g. Databricks serverless): Delta is built in.
        return
    try:
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
    except Exception as exc:  # py4j wraps ClassNotFoundException
        raise DeltaNotAvailableError(
            f"Delta Lake classes are not on the Spark classpath. Under spark-submit pass "
            f"--packages {DELTA_PACKAGE} (or --jars with the files in {delta_jars_dir()}); "
            f"locally run `behaviorlm setup` first."
        ) from exc
