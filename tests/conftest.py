"""One session-scoped Spark session with real Delta Lake, built by the project's own session factory, and a real
Spark Connect server on its JVM for the tests that run the same code as a Connect client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
            # The Connect server (`connect_url`) on a free port (never one a parallel suite or a real server holds),
            # reachable from this machine only: it runs any client's Python code.
            "spark.conf.spark.connect.grpc.binding.port=0",
            "spark.conf.spark.connect.grpc.binding.address=127.0.0.1",
        ]
    )
    session = get_spark(cfg.spark)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect_url(spark: SparkSession) -> Iterator[str]:
    """Spark's own Connect service (gRPC), started on the test session's JVM: Connect clients, in this process or
    another, without a second JVM to start and warm up."""
    service = getattr(getattr(spark._jvm.org.apache.spark.sql.connect.service, "SparkConnectService$"), "MODULE$")
    service.start(spark.sparkContext._jsc.sc())
    yield f"sc://127.0.0.1:{service.localPort()}"
    service.stop(getattr(service, "stop$default$1")(), getattr(service, "stop$default$2")())  # Scala's defaults


@pytest.fixture
def connect(connect_url: str) -> Callable[[], AbstractContextManager[SparkSession]]:
    """`with connect() as remote:` a Spark Connect session. Inside, pyspark runs in Connect mode (its functions
    build Connect columns, `SparkSession.getActiveSession()` is `remote`, as in a Databricks serverless notebook);
    after it, the classic session is the active one again."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    @contextmanager
    def session() -> Iterator[SparkSession]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
            remote = ConnectSession.builder.remote(connect_url).create()
            try:
                yield remote
            finally:
                remote.stop()

    return session


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
