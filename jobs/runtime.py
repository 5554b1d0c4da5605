"""What every job's `main()` shares: argument parsing into a `Config`, logging, stage timing, the run id, and the
`run_metrics` Delta table (run_id, stage, metric, value, updated_at), upserted so a re-run replaces its own rows."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import TypeVar

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from jobs import delta_io
from jobs.config import Config, load_config
from jobs.session import get_spark

T = TypeVar("T")

METRICS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("stage", StringType(), False),
        StructField("metric", StringType(), False),
        StructField("value", DoubleType(), True),
    ]
)


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # py4j logs every gateway call at INFO; keep our own lines readable.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def parse_job_args(argv: list[str] | None, description: str) -> Config:
    """`--conf FILE` (repeatable), `--set key=value` (repeatable) and `--run-id` into a validated `Config`."""
    return parse_args(argv, description)[0]


def parse_args(
    argv: list[str] | None, description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> tuple[Config, argparse.Namespace]:
    """Like `parse_job_args`, plus a job's own flags (added by `add_arguments`), returned parsed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf", action="append", default=[], help="YAML config file (repeatable, later wins)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--run-id", default=None, help="run id for idempotent writes (default: config or now)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config(args.conf, args.overrides)
    run_id = args.run_id or cfg.run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return replace(cfg, run_id=run_id), args


@contextmanager
def timed(log: logging.Logger, what: str) -> Iterator[None]:
    log.info("%s: start", what)
    start = time.perf_counter()
    yield
    log.info("%s: done in %.1fs", what, time.perf_counter() - start)


def job_main(argv: list[str] | None, description: str, stage: str, run: Callable[[SparkSession, Config], T]) -> T:
    """What every job's `main()` does: logging, config from the command line, the session, then the stage."""
    setup_logging()
    cfg = parse_job_args(argv, description)
    spark = get_spark(cfg)
    with timed(logging.getLogger(f"jobs.{stage}"), f"{stage} run_id={cfg.run_id}"):
        return run(spark, cfg)


def write_metrics(spark: SparkSession, cfg: Config, stage: str, metrics: dict[str, float]) -> None:
    rows = [(cfg.run_id, stage, name, float(value)) for name, value in sorted(metrics.items())]
    df = spark.createDataFrame(rows, METRICS_SCHEMA).withColumn("updated_at", F.current_timestamp())
    delta_io.merge(df, delta_io.table_ref(cfg.tables, "run_metrics"), ["run_id", "stage", "metric"])
