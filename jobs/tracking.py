"""MLflow tracking of a `behaviorlm run`: one MLflow run per our run id, with the config as params, this run's
`run_metrics` as metrics (`<stage>.<metric>`), and the HTML report and the metric table as artifacts, tagged
`behaviorlm.run_id`. Re-running the same run id resumes that MLflow run (new metric values join its history; a
param whose value changed is kept and named in a warning), so retries never multiply runs.

The tracking URI is `mlflow.tracking_uri`, else `MLFLOW_TRACKING_URI` (Databricks sets it), else a local `mlruns/`
folder beside `tables.root`, which needs no server. Tracking never fails a run: an unreachable server or a missing
`mlflow` package is one warning line. Called by `jobs/run.py` after the report.
"""

from __future__ import annotations

import csv
import logging
import os
import posixpath
import re
import tempfile
import time
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.config import Config

log = logging.getLogger(__name__)
TAG = "behaviorlm.run_id"
# MLflow allows letters, digits, '_', '-', '.', ' ', '/' and ':' in keys.
_BAD_KEY = re.compile(r"[^\w\-. /:]")
MAX_PARAM = 500  # characters of a param value: the smallest limit MLflow stores have had (Databricks)


def tracking_uri(cfg: Config) -> str:
    """Where the run is tracked (see the module docstring)."""
    uri = cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return uri
    root = cfg.tables.root.rstrip("/")
    parent = posixpath.dirname(root) if "://" in root else os.path.dirname(os.path.abspath(root))
    folder = posixpath.join(parent, "mlruns")
    return folder if "://" in folder else f"file://{folder}"


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"section.key": text}, each value cut at MAX_PARAM characters."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name != "spark.conf":
            out |= flat_params(value, f"{name}.")
        else:
            out[_BAD_KEY.sub("_", name)] = str(value)[:MAX_PARAM]
    return out


def run_metrics(spark: SparkSession, cfg: Config) -> list[tuple[str, str, float]]:
    """(stage, metric, value) rows of this run id, NaN-free."""
    ref = delta.table_ref(cfg.tables, "run_metrics")
    if not delta.table_exists(spark, ref):
        return []
    rows = delta.read_table(spark, ref).where(F.col("run_id") == cfg.run_id).orderBy("stage", "metric").collect()
    return [(r["stage"], r["metric"], float(r["value"])) for r in rows if r["value"] is not None]


def track(spark: SparkSession, cfg: Config, report_path: str | None) -> str | None:
    """Log this run to MLflow; returns the MLflow run id, or None when tracking is off or failed (logged)."""
    if not cfg.mlflow.enabled:
        return None
    try:
        return _log_run(cfg, run_metrics(spark, cfg), report_path)
    except Exception as exc:  # noqa: BLE001 - tracking must never fail the pipeline it reports on
        log.warning("MLflow tracking at %s failed; the run itself is fine: %s", tracking_uri(cfg), exc)
        return None


def _log_run(cfg: Config, metrics: list[tuple[str, str, float]], report_path: str | None) -> str:
    # A local folder store is MLflow's no-server option; recent MLflow asks for this switch to use it.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # An unreachable server should cost seconds, not MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.mlflow.experiment)
    found = client.search_runs([experiment_id], f"tags.`{TAG}` = '{cfg.run_id.replace(chr(39), '')}'", max_results=1)
    run = found[0] if found else client.create_run(experiment_id, tags={TAG: cfg.run_id}, run_name=cfg.run_id)
    run_id = run.info.run_id
    params = flat_params(cfg.model_dump(exclude={"run_id"}))
    logged = run.data.params if found else {}
    changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
    if changed:
        log.warning("MLflow run %s keeps its first value of changed params: %s", run_id, ", ".join(changed))
    fresh = [mlflow.entities.Param(k, v) for k, v in params.items() if k not in logged]
    now = int(time.time() * 1000)
    values = [mlflow.entities.Metric(_BAD_KEY.sub("_", f"{s}.{m}"), v, now, 0) for s, m, v in metrics]
    for start in range(0, max(len(fresh), len(values)), 100):  # MLflow's batch limit
        client.log_batch(run_id, metrics=values[start : start + 100], params=fresh[start : start + 100])
    _log_artifacts(client, run_id, metrics, report_path)
    client.set_terminated(run_id)
    log.info("MLflow run %s (experiment %r) at %s", run_id, cfg.mlflow.experiment, uri)
    return run_id


def _log_artifacts(client: Any, run_id: str, metrics: list[tuple[str, str, float]], report: str | None) -> None:
    """The metric table as run_metrics.csv, and the report when it is a local file."""
    with tempfile.TemporaryDirectory() as folder:
        table = os.path.join(folder, "run_metrics.csv")
        with open(table, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("stage", "metric", "value"), *metrics])
        client.log_artifact(run_id, table)
    if report and os.path.isfile(report):
        client.log_artifact(run_id, report)
