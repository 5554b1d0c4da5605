"""What an ML-100K bench starts with: `--root` and `--seed` flags, logging, the local config with the bench's own
settings and a table folder of its own (a new temporary one by default), and one Spark session on every core."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable

from pyspark.sql import SparkSession

from behaviorlm.config import Config, load_config
from behaviorlm.logs import setup_logging
from behaviorlm.session import get_spark


def bench_args(extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The command line: `--root`, `--seed` and what `extra` adds for one bench."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="", help="table folder (default: a new temporary folder)")
    # Another seed re-draws every split and slice: how far a number moves with it is the bench's noise.
    parser.add_argument("--seed", type=int, default=42, help="seed of every split and sample (default 42)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def open_bench(
    name: str, settings: list[str], args: argparse.Namespace | None = None
) -> tuple[Config, SparkSession, str]:
    """(config, Spark session, table folder) for the bench `name` (also its run id) with `settings` overrides;
    `args` from `bench_args` (default: the command line with no flag of the bench's own)."""
    args = bench_args() if args is None else args
    setup_logging()
    root = args.root or tempfile.mkdtemp(prefix=f"{name}-")
    overrides = [f"spark.master=local[{os.cpu_count() or 2}]", "spark.conf.spark.ui.showConsoleProgress=false",
                 f"tables.root={root}", f"run_id={name}", f"seed={args.seed}", *settings]  # fmt: skip
    cfg = load_config(["conf/local.yaml"], overrides)
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    return cfg, spark, root
