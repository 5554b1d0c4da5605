"""What the console shows: one line per stage start and end (rows, seconds), a progress line while a long Spark
job runs, and warnings that mean something to the reader; py4j, Spark's own INFO/WARN chatter and progress bars are
turned down (`spark.log_level`, `spark.ui.showConsoleProgress`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from pyspark.logger import PySparkLogger
from pyspark.sql import SparkSession

from behaviorlm.session import is_connect

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT, datefmt="%H:%M:%S", force=True)
    # py4j logs every gateway call at INFO, and these libraries chat at INFO too; keep our own lines readable.
    for noisy in ("py4j", "transformers", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A CJK fallback font has no bold face: the report's chart titles are drawn in its regular one, as they should be.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    # PySpark logs every analysis error it raises, with the JVM's whole stack, as JSON on its own handler: an error
    # we catch and explain (a bad `ingest.behaviors_where`) would still print 60 frames of Catalyst before it.
    for context in QUERY_CONTEXT_LOGGERS:
        PySparkLogger.getLogger(context).disabled = True


def _progress(spark: SparkSession, log: logging.Logger, what: str, every: float, stop: threading.Event) -> None:
    with _stage_reader(spark) as running:
        while not stop.wait(every):
            stages = running()
            if stages:
                done, total = sum(s[0] for s in stages), sum(s[1] for s in stages)
                log.info("  %s: running, %d/%d tasks of %d Spark stage(s) done", what, done, total, len(stages))


@contextmanager
def _stage_reader(spark: SparkSession) -> Iterator[Callable[[], list[tuple[int, int]]]]:
    """A function giving the running Spark stages as (tasks done, tasks): read from the status tracker on a classic
    session; on Spark Connect (no JVM here), the latest progress the server sent for each running query, kept by a
    progress handler registered meanwhile. The server sends it every `spark.connect.progress.reportInterval` (2 s by
    default) while a query runs; a client without progress handlers (before pyspark 4) logs no progress lines."""
    if not is_connect(spark):
        tracker = spark.sparkContext.statusTracker()

        def running() -> list[tuple[int, int]]:
            infos = (tracker.getStageInfo(s) for s in tracker.getActiveStageIds())
            return [(s.numCompletedTasks, s.numTasks) for s in infos if s is not None]

        yield running
        return
    latest: dict[str | None, list[tuple[int, int]]] = {}

    def handler(stages: Iterable | None, inflight_tasks: int, operation_id: str | None, done: bool) -> None:
        if done:
            latest.pop(operation_id, None)
        else:
            latest[operation_id] = [(s.num_completed_tasks, s.num_tasks) for s in stages or () if not s.done]

    register = getattr(spark, "registerProgressHandler", None)
    if register is not None:
        register(handler)
    try:
        yield lambda: [stage for running in list(latest.values()) for stage in running]
    finally:
        if register is not None:
            spark.removeProgressHandler(handler)


def counts(metrics: object) -> list[tuple[str, float]]:
    """The row counts among a stage's metrics (a stage returns a dict of them), in the stage's order."""
    if not isinstance(metrics, dict):
        return []
    return [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and _is_count(k)]


def counts_line(metrics: object, limit: int = 4) -> str:
    """The row counts among a stage's metrics, as `name=value` pairs for its end line ("" when there are none)."""
    return " ".join(f"{k}={v:g}" for k, v in counts(metrics)[:limit])


def _is_count(name: str) -> bool:
    return name.endswith(("_written", "_embedded", "_filled", "users", "rows", "_read")) and "share" not in name


@contextmanager
def timed(
    log: logging.Logger, what: str, spark: SparkSession | None = None, every: float = 30.0
) -> Iterator[dict[str, str]]:
    """Log `what: start` and `what: done in Ns` (plus what the block put under "rows" in the yielded dict, which
    holds the seconds under "seconds" afterwards); with `spark`, a progress line every `every` seconds while the
    block runs."""
    log.info("%s: start", what)
    start = time.perf_counter()
    stop = threading.Event()
    note: dict[str, str] = {}
    if spark is not None:
        threading.Thread(target=_progress, args=(spark, log, what, every, stop), daemon=True).start()
    try:
        yield note
    finally:
        stop.set()
    rows = f" · {note['rows']}" if note.get("rows") else ""
    elapsed = time.perf_counter() - start
    note["seconds"] = repr(elapsed)
    log.info("%s: done in %.1fs%s", what, elapsed, rows)
