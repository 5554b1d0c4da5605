"""What every job's `main()` shares: argument parsing into a `Config`, logging, the session, stage timing, the run
id, and writing the stage's metrics to `run_metrics`."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TypeVar

from pyspark.sql import SparkSession

from behaviorlm import delta, runs
from behaviorlm.config import Config, load_config
from behaviorlm.logs import counts, counts_line, setup_logging, timed
from behaviorlm.session import get_spark

T = TypeVar("T")
# Metrics a stage writes while `one_metrics_commit` is open: stage -> metrics, written when it closes.
_HELD: ContextVar[dict[str, dict[str, float]] | None] = ContextVar("held_metrics", default=None)


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
    return cfg.but(run_id=run_id), args


def job_main(argv: list[str] | None, description: str, stage: str, run: Callable[[SparkSession, Config], T],
             timed_stage: bool = True) -> T:  # fmt: skip
    """What every job's `main()` does: logging, config from the command line, the session, then the stage and (with
    `timed_stage`) its seconds and rows in `run_metrics`."""
    setup_logging()
    cfg = parse_job_args(argv, description)
    spark = get_spark(cfg.spark)
    delta.check_schemas(spark, cfg.tables)
    with one_metrics_commit(spark, cfg):
        with timed(logging.getLogger(f"jobs.{stage}"), f"{stage} run_id={cfg.run_id}", spark) as note:
            result = run(spark, cfg)
            note["rows"] = counts_line(result)
        if timed_stage:
            write_metrics(spark, cfg, "run", stage_timing(stage, note, result))
    return result


@contextmanager
def one_metrics_commit(spark: SparkSession, cfg: Config) -> Iterator[None]:
    """Holds every `write_metrics` inside and writes them all in one `run_metrics` commit at the end. A Delta MERGE
    costs about as much for one row as for a hundred, and a `run` made two per stage. A stage that raises writes
    none of its metrics, as before it finished none of them."""
    held: dict[str, dict[str, float]] = {}
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
    if held:
        runs.write_metrics(spark, delta.table_ref(cfg.tables, "run_metrics"), cfg.run_id, held)


def stage_timing(stage: str, note: dict[str, str], result: object) -> dict[str, float]:
    """`<stage>.seconds` (from `timed`'s note) and the stage's `rows` metric as `<stage>.rows`, else its first count
    as `<stage>.rows` or, a count of users, `<stage>.users`: the report's stage chart, this run beside the previous."""
    found = sorted(counts(result), key=lambda kv: kv[0] != "rows")[:1]  # stable: the first count when no `rows`
    units = {name: "users" if name.endswith("users") else "rows" for name, _ in found}
    return {f"{stage}.seconds": float(note["seconds"]), **{f"{stage}.{units[name]}": n for name, n in found}}


def write_metrics(spark: SparkSession, cfg: Config, stage: str, metrics: dict[str, float]) -> None:
    """Upsert `stage`'s metrics of this run: now, or with the others when `one_metrics_commit` is open."""
    held = _HELD.get()
    if held is not None:
        held[stage] = {**held.get(stage, {}), **metrics}
        return
    runs.write_metrics(spark, delta.table_ref(cfg.tables, "run_metrics"), cfg.run_id, {stage: metrics})


def save_run(df, cfg: Config, name: str) -> int:
    """Write `df` as this run's rows of table `name` (replacing them); returns the rows written."""
    return delta.replace_run(df, delta.table_ref(cfg.tables, name), cfg.run_id)
