"""The session factory with a session already active (Databricks, notebooks, tests): settings are applied or
named in a warning, never silently dropped."""

from __future__ import annotations

import logging

from behaviorlm.config import SparkConfig
from behaviorlm.session import get_spark


def test_active_session_gets_runtime_settings_and_a_warning_for_static_ones(spark, caplog):
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        with caplog.at_level(logging.WARNING, logger="behaviorlm.session"):
            same = get_spark(SparkConfig(conf={"spark.sql.shuffle.partitions": "3", "spark.driver.cores": "7"}))
        assert same is spark
        assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        assert "spark.driver.cores=7 not applied" in caplog.text
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)


def test_the_session_keeps_2000_compiled_queries(spark):
    """Every session the factory starts (this one too) keeps 2,000 compiled query classes, not Spark's 100."""
    assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == "2000"


def test_the_heartbeat_race_and_lbfgs_restarts_are_kept_off_the_console_and_other_errors_are_not(spark):
    """Spark 4's heartbeat thread can log a NullPointerException while an accumulator deserializes (SPARK-59451);
    our log4j2 file drops that one message at the console and lets every other through."""
    jvm = spark._jvm
    console = jvm.org.apache.logging.log4j.LogManager.getContext(False).getConfiguration().getAppender("console")

    def verdict(message: str) -> str:
        event = jvm.org.apache.logging.log4j.core.impl.Log4jLogEvent.newBuilder()
        event = event.setLoggerName("org.apache.spark.util.Utils").setLevel(jvm.org.apache.logging.log4j.Level.ERROR)
        event = event.setMessage(jvm.org.apache.logging.log4j.message.SimpleMessage(message)).build()
        return console.getFilter().filter(event).toString()

    assert verdict("Uncaught exception in thread executor-heartbeater") == "DENY"
    assert verdict("Uncaught exception in thread main") == "NEUTRAL"
    # breeze's LBFGS restart notice too, by the same filter (a second one was refused by log4j at start-up).
    assert verdict("Failure! Resetting history: breeze.optimize.NaNHistory: ") == "DENY"
    assert verdict("Failure again! Giving up and returning. Maybe the objective is just poorly behaved?") == "NEUTRAL"
