"""Run bookkeeping on Delta: the `run_metrics` table (run_id, stage, metric, value, updated_at), upserted so a
re-run replaces its own rows; the stages a run finished; and which run's rows a stage reads from a per-run table."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from behaviorlm import delta

log = logging.getLogger(__name__)
METRICS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("stage", StringType(), False),
        StructField("metric", StringType(), False),
        StructField("value", DoubleType(), True),
    ]
)
DONE = ".done"


def write_metrics(spark: SparkSession, ref: delta.TableRef, run_id: str, groups: dict[str, dict[str, float]]) -> None:
    """Upsert stages' metrics of one run in one commit (`groups`: stage -> metrics; a re-run replaces them)."""
    rows = [
        (run_id, stage, name, float(value))
        for stage, metrics in sorted(groups.items())
        for name, value in sorted(metrics.items())
    ]
    df = spark.createDataFrame(rows, METRICS_SCHEMA).withColumn("updated_at", F.current_timestamp())
    delta.merge(df, ref, ["run_id", "stage", "metric"])


def done_stages(spark: SparkSession, ref: delta.TableRef, run_id: str) -> set[str]:
    """Stages `run_id` already finished (`<stage>.done` rows of stage `run`)."""
    if not delta.table_exists(spark, ref):
        return set()
    rows = (
        delta.read_table(spark, ref)
        .where((F.col("run_id") == run_id) & (F.col("stage") == "run") & F.col("metric").endswith(DONE))
        .select("metric")
        .collect()
    )
    return {r["metric"].removesuffix(DONE) for r in rows}


def latest_run(table: DataFrame) -> str | None:
    """The run whose rows were written last (by the modification time of the table's data files: the commit that
    wrote them), not the largest id: ids need not sort by time ("demo-2026..." vs "2026-...")."""
    row = (
        table.groupBy("run_id")
        .agg(F.max("_metadata.file_modification_time").alias("_written"))
        .orderBy(F.col("_written").desc(), F.col("run_id").desc())
        .first()
    )
    return row["run_id"] if row else None


def latest_stage_run(metrics: DataFrame, stage: str) -> str | None:
    """The run under which `stage` last wrote metrics to the `run_metrics` frame `metrics` (by `updated_at`: a
    retry of an older run makes it the latest), or None when it never did."""
    row = metrics.where(F.col("stage") == stage).orderBy(F.desc("updated_at"), F.desc("run_id")).first()
    return row["run_id"] if row else None


def stage_ran(spark: SparkSession, ref: delta.TableRef, run_id: str, stage: str) -> bool:
    """Whether `stage` wrote metrics to the `run_metrics` table `ref` under `run_id`: it ran, whatever it wrote."""
    if not delta.table_exists(spark, ref):
        return False
    metrics = delta.read_table(spark, ref)
    return bool(metrics.where((F.col("run_id") == run_id) & (F.col("stage") == stage)).limit(1).count())


def rows_for_run(table: DataFrame, run_id: str, name: str, ran: bool = False) -> DataFrame:
    """The rows of a per-run table written under `run_id`. When that run wrote none: none either where the stage
    that writes the table `ran` under `run_id` (it found nothing to write), else (a stage run on its own) the rows of
    the run written last, with a warning naming it."""
    own = table.where(F.col("run_id") == run_id)
    if ran or own.limit(1).count():
        return own
    latest = latest_run(table)
    if latest is None:
        log.warning("%s has no rows for any run", name)
        return own
    log.warning("%s has no rows for run %s; reading run %s (written last) instead", name, run_id, latest)
    return table.where(F.col("run_id") == latest)
