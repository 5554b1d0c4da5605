"""Small helpers the job tests share: command-line arguments for a test config, and Delta reads/writes by name."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from jobs import delta_io
from jobs.config import Config


def job_args(cfg: Config, *overrides: str) -> list[str]:
    """argv that points a job's `main` at `cfg`'s tables and run id, plus `key=value` overrides."""
    pairs = [f"tables.root={cfg.tables.root}", *overrides]
    return [a for o in pairs for a in ("--set", o)] + ["--run-id", cfg.run_id]


def write(spark: SparkSession, cfg: Config, name: str, rows: list[tuple], schema) -> DataFrame:
    df = spark.createDataFrame(rows, schema)
    delta_io.overwrite(df, delta_io.table_ref(cfg.tables, name))
    return df


def read(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return delta_io.read_table(spark, delta_io.table_ref(cfg.tables, name))
