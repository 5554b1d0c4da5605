"""One session-scoped Spark session with real Delta Lake, built by the project's own session factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from behaviorlm.config import Config, load_config
from behaviorlm.session import get_spark

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    tmp = tmp_path_factory.mktemp("spark")
    cfg = load_config(
        overrides=[
            "spark.master=local[2]",
            "spark.app_name=behaviorlm-tests",
            "spark.conf.spark.sql.shuffle.partitions=2",
            "spark.conf.spark.default.parallelism=2",
            "spark.conf.spark.ui.enabled=false",
            "spark.conf.spark.ui.showConsoleProgress=false",
            # Whole-pipeline tests (notebooks, run) on ML-100K need more than the 1 GB default.
            "spark.conf.spark.driver.memory=4g",
            # Broadcasts and shuffles of finished tests are freed when the driver's JVM collects them; in a long
            # suite waiting for the default 30 min let them fill the heap (CI: a broadcast failed for memory).
            "spark.conf.spark.cleaner.periodicGC.interval=2min",
            "spark.conf.spark.databricks.delta.snapshotPartitions=1",
            f"spark.conf.spark.sql.warehouse.dir={tmp / 'warehouse'}",
            f"spark.conf.spark.local.dir={tmp / 'local'}",
        ]
    )
    session = get_spark(cfg.spark)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _clear_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop what a test left cached, so one test's persisted frames never squeeze the next one's memory."""
    yield
    if "spark" in request.fixturenames:
        request.getfixturevalue("spark").catalog.clearCache()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config whose tables live under this test's tmp dir; extra `key=value` overrides as arguments."""

    def make(*overrides: str, run_id: str = "test-run") -> Config:
        return load_config(overrides=[f"tables.root={tmp_path / 'delta'}", f"run_id={run_id}", *overrides])

    return make
