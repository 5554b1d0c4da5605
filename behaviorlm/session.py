"""The one Spark session factory used by every job, test and notebook.

`get_spark(cfg)` decides how to get a session:
- a session is already active (Databricks notebook or job, a test fixture, a notebook that built one) -> reuse it;
- the process was launched by `spark-submit` (the JVM gateway is already up) -> leave master, resources and jars to
  the cluster and only add the Delta SQL settings;
- `SPARK_REMOTE` is set (`sc://host:15002`, or `local[N]` for pyspark's own local server) -> a Spark Connect session
  (an active Connect session, Databricks serverless or standard access mode or databricks-connect, is reused as
  above). Every stage runs on Connect: where a step used the JVM on the driver (broadcasts, accumulators, the status
  tracker, Hadoop's file system), `is_connect` picks a path that needs none;
- otherwise (laptop, local tests) -> local mode with Delta configured from the jars that `behaviorlm setup` cached,
  so no network is needed at run time.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.util import is_remote_only

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


def starts_local_jvm() -> bool:
    """Whether the session about to be built starts a JVM in this process: local mode, or pyspark's local Spark
    Connect server (`SPARK_REMOTE=local[N]`); not under spark-submit (the JVM is up) nor for a remote server."""
    return not under_spark_submit() and not os.environ.get("SPARK_REMOTE", "").startswith("sc://")


# Spark's JVM start-up notices are not for our readers: local sessions start with errors only (see the file).
LOG4J_FILE = Path(__file__).with_name("log4j2.properties")
# Our defaults where the config says nothing (both are fixed when the session starts):
# - Spark's progress bars interleave with our log lines (the stage timer logs progress instead);
# - a `run`, a backtest's grid and a test suite plan the same queries again and again. Spark keeps only 100 compiled
#   query classes by default, so it compiled them anew, and the JVM's JIT compiled the new classes again: measured
#   on tests/test_recommend.py, the driver JVM spent ~15% less CPU with 2,000 kept.
SESSION_DEFAULTS = {"spark.ui.showConsoleProgress": "false", "spark.sql.codegen.cache.maxEntries": "2000"}


def get_spark(conf: SparkConfig) -> SparkSession:
    """Return the session for this process: the active one, a spark-submit one, a Spark Connect one (SPARK_REMOTE),
    or a local one with Delta."""
    active = SparkSession.getActiveSession()
    if active is not None:
        _apply_to_active(active, conf.conf)
        return active
    remote = os.environ.get("SPARK_REMOTE", "")
    if not remote and is_remote_only():
        raise BehaviorLMError(
            "this pyspark has no JVM (pyspark-client, databricks-connect): set SPARK_REMOTE to a Spark Connect "
            "server (sc://host:15002), or build the session before calling behaviorlm (it reuses the active one)"
        )
    with warnings.catch_warnings():
        # pyspark sets every option again as a runtime setting of a new Connect session and warns for each static
        # one: Delta's and ours took effect as the local server started, or are a remote server's own. The user's
        # settings are checked below, with the warning `_apply_to_active` gives.
        warnings.filterwarnings("ignore", "Failed to set", UserWarning)
        spark = _builder(conf).getOrCreate()
    if not is_connect(spark):
        spark.sparkContext.setLogLevel(conf.log_level)
        _check_delta(spark)
        return spark
    if starts_local_jvm():  # pyspark's local Connect server, whose JVM is this process's: started with our settings
        from pyspark import SparkContext  # not in a pyspark without a JVM (pyspark-client)

        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.setLogLevel(conf.log_level)
    else:
        _apply_to_active(spark, conf.conf)
    log.info("Spark Connect session: server %s", remote.split(";")[0] or "local")  # never a token the URL carries
    return spark


def _builder(conf: SparkConfig) -> SparkSession.Builder:
    builder = SparkSession.builder.appName(conf.app_name)
    for key, value in {**DELTA_SQL_CONF, **SESSION_DEFAULTS}.items():
        builder = builder.config(key, value)
    if starts_local_jvm():
        # Python workers must run this interpreter (the one with our packages); pyspark reads only the variable.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if not os.environ.get("SPARK_REMOTE"):  # a local Connect server runs on the master SPARK_REMOTE names
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
        if key != "spark.driver.extraJavaOptions" or not starts_local_jvm():
            builder = builder.config(key, value)
    return builder


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
    jvm = spark._jvm
    try:
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
    except Exception as exc:  # py4j wraps ClassNotFoundException
        raise DeltaNotAvailableError(
            f"Delta Lake classes are not on the Spark classpath. Under spark-submit pass "
            f"--packages {DELTA_PACKAGE} (or --jars with the files in {delta_jars_dir()}); "
            f"locally run `behaviorlm setup` first."
        ) from exc
