"""The one Spark session factory used by every job, test and notebook.

`get_spark(cfg)` decides how to get a session:
- a session is already active (Databricks notebook or job, a test fixture, a notebook that built one) -> reuse it;
- the process was launched by `spark-submit` (the JVM gateway is already up) -> leave master, resources and jars to
  the cluster and only add the Delta SQL settings;
- otherwise (laptop, local tests) -> local mode with Delta configured from the jars that `behaviorlm setup` cached,
  so no network is needed at run time.
A Spark Connect session (Databricks serverless or standard access mode, databricks-connect, `SPARK_REMOTE`) is
refused with `SparkConnectNotSupportedError` before any stage starts: the stages use the JVM (Hadoop file checks,
broadcasts, accumulators, the status tracker), and would otherwise fail midway with PySpark's attribute error.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.utils import is_remote

from behaviorlm.config import SparkConfig, cache_dir
from behaviorlm.errors import BehaviorLMError

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


class SparkConnectNotSupportedError(BehaviorLMError, RuntimeError):
    """The session is (or would be) a Spark Connect client, which has no JVM on this side."""


def check_classic() -> None:
    """Raise `SparkConnectNotSupportedError` when this process runs Spark Connect: a remote session exists
    (pyspark marks it with SPARK_CONNECT_MODE_ENABLED) or SPARK_REMOTE would make the next session one."""
    if is_remote() or os.environ.get("SPARK_REMOTE"):
        raise SparkConnectNotSupportedError(
            "behaviorlm needs a classic Spark session (its stages use the JVM: Hadoop file checks, broadcasts, "
            "accumulators), and this one is Spark Connect (Databricks serverless or standard/shared access mode, "
            "databricks-connect, or SPARK_REMOTE set). On Databricks use a cluster in dedicated (single user) access "
            "mode; elsewhere unset SPARK_REMOTE."
        )


def is_connect(spark: SparkSession) -> bool:
    """Whether `spark` is a Spark Connect client: no JVM on this side, so no broadcast variables, accumulators or
    RDDs."""
    return getattr(spark, "_jvm", None) is None


def delta_jars_dir() -> Path:
    """Folder where `behaviorlm setup` caches the Delta jars for this delta-spark version."""
    return cache_dir() / "jars" / f"delta-{DELTA_VERSION}"


def cached_delta_jars() -> list[str]:
    folder = delta_jars_dir()
    return sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []


def under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway port to the Python driver.
    return "PYSPARK_GATEWAY_PORT" in os.environ


# Spark's JVM start-up notices are not for our readers: local sessions start with errors only (see the file).
LOG4J_FILE = Path(__file__).with_name("log4j2.properties")
# Our defaults where the config says nothing (both are fixed when the session starts):
# - Spark's progress bars interleave with our log lines (the stage timer logs progress instead);
# - a `run`, a backtest's grid and a test suite plan the same queries again and again. Spark keeps only 100 compiled
#   query classes by default, so it compiled them anew, and the JVM's JIT compiled the new classes again: measured
#   on tests/test_recommend.py, the driver JVM spent ~15% less CPU with 2,000 kept.
SESSION_DEFAULTS = {"spark.ui.showConsoleProgress": "false", "spark.sql.codegen.cache.maxEntries": "2000"}


def get_spark(conf: SparkConfig) -> SparkSession:
    """Return the session for this process: the active one, a spark-submit one, or a local one with Delta."""
    check_classic()
    active = SparkSession.getActiveSession()
    if active is not None:
        _apply_to_active(active, conf.conf)
        return active
    builder = SparkSession.builder.appName(conf.app_name)
    for key, value in {**DELTA_SQL_CONF, **SESSION_DEFAULTS}.items():
        builder = builder.config(key, value)
    if not under_spark_submit():
        # Python workers must run this interpreter (the one with our packages); pyspark reads only the variable.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(conf.master)
        options = f"-Dlog4j2.configurationFile={LOG4J_FILE} {conf.conf.get('spark.driver.extraJavaOptions', '')}"
        builder = builder.config("spark.driver.extraJavaOptions", options.strip())
        jars = cached_delta_jars()
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        else:
            log.warning("Delta jars not cached (run `behaviorlm setup`); resolving %s from Maven", DELTA_PACKAGE)
            builder = builder.config("spark.jars.packages", DELTA_PACKAGE)
    for key, value in conf.conf.items():
        if key != "spark.driver.extraJavaOptions" or under_spark_submit():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.log_level)
    _check_delta(spark)
    return spark


def _apply_to_active(spark: SparkSession, conf: dict[str, str]) -> None:
    """Settings for a session that already exists (Databricks, a notebook, tests): runtime settings are applied,
    and a static one that differs is named in a warning instead of being silently ignored."""
    for key, value in conf.items():
        if spark.conf.get(key, None) == value:
            continue
        if spark.conf.isModifiable(key):
            spark.conf.set(key, value)
        else:
            log.warning(
                "spark.conf %s=%s not applied: the session already exists with %s (a static setting; "
                "set it on the cluster or before the session starts)",
                key,
                value,
                spark.conf.get(key, None),
            )


def _check_delta(spark: SparkSession) -> None:
    if is_connect(spark):  # e.g. Databricks serverless: Delta is built in.
        return
    jvm = spark._jvm
    try:
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
    except Exception as exc:  # py4j wraps ClassNotFoundException
        raise DeltaNotAvailableError(
            f"Delta Lake classes are not on the Spark classpath. Under spark-submit pass "
            f"--packages {DELTA_PACKAGE} (or --jars with the files in {delta_jars_dir()}); "
            f"locally run `behaviorlm setup` first."
        ) from exc
