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
