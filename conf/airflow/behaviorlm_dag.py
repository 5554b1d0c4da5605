"""Airflow DAGs for behaviorlm: one task per stage, daily, the run date (`{{ ds }}`) as the run id.

- `behaviorlm`: a `SparkSubmitOperator` per stage against the `spark_default` connection (YARN, Kubernetes or a
  standalone master), shipping `behaviorlm.zip` with `--py-files` and the Delta package; the embedding stages also
  get the GPU properties of `conf/spark-gpu.conf`.
- `behaviorlm_databricks`: a `DatabricksSubmitRunOperator` per stage running the wheel's `behaviorlm` entry point
  on a GPU job cluster (the `databricks_default` connection).

Every stage is idempotent for a run id and `behaviorlm run` skips stages already done, so Airflow retries and
backfills are safe. Paths come from Airflow Variables (`behaviorlm_home`, `behaviorlm_conf`, `behaviorlm_wheel`)
with defaults for a quick start. Drop this file into the DAGs folder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

STAGES = ["ingest", "embed-items", "embed-users", "similar-users", "segments", "recommend", "predict", "search",
          "intents", "complete", "evaluate", "report"]  # fmt: skip
GPU_STAGES = {"embed-items", "embed-users", "search", "intents", "complete"}  # the ones that run the encoder
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
RUN_ID = "{{ ds }}"
DEFAULTS = {"owner": "behaviorlm", "retries": 2, "retry_delay": timedelta(minutes=10)}


def _setting(name: str, default: str) -> str:
    # Templated, so the Variable is read when a task runs, not each time the scheduler parses this file.
    return "{{ var.value.get('" + name + "', '" + default + "') }}"


def _gpu_conf() -> dict[str, str]:
    return {
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "0.25",
        "spark.executor.resource.gpu.discoveryScript": "/opt/behaviorlm/conf/gpu_discovery.sh",
    }


def _chain(tasks: list) -> None:
    for upstream, downstream in zip(tasks, tasks[1:]):
        upstream >> downstream


with DAG(
    dag_id="behaviorlm",
    description="behaviorlm pipeline with spark-submit, one task per stage",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULTS,
    tags=["behaviorlm", "spark"],
) as spark_dag:
    home = _setting("behaviorlm_home", "/opt/behaviorlm")
    conf = _setting("behaviorlm_conf", "/opt/behaviorlm/conf/cluster.yaml")
    _chain(
        [
            SparkSubmitOperator(
                task_id=stage.replace("-", "_"),
                conn_id="spark_default",
                application=f"{home}/jobs/cli.py",
                py_files=f"{home}/dist/behaviorlm.zip",
                packages=DELTA_PACKAGE,
                application_args=[stage, "--conf", conf, "--run-id", RUN_ID],
                conf=_gpu_conf() if stage in GPU_STAGES else {},
                name=f"behaviorlm-{stage}-{RUN_ID}",
            )
            for stage in STAGES
        ]
    )

with DAG(
    dag_id="behaviorlm_databricks",
    description="behaviorlm pipeline on Databricks job clusters, one task per stage",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULTS,
    tags=["behaviorlm", "databricks"],
) as databricks_dag:
    wheel = _setting("behaviorlm_wheel", "/Volumes/main/behaviorlm/dist/behaviorlm-0.1.0-py3-none-any.whl")
    conf = _setting("behaviorlm_conf", "/Workspace/Shared/behaviorlm/conf/cluster.yaml")
    cluster = {
        "spark_version": "17.3.x-gpu-ml-scala2.13",
        "node_type_id": "g5.xlarge",
        "num_workers": 2,
        "spark_conf": {k: v for k, v in _gpu_conf().items() if "discoveryScript" not in k},
    }
    _chain(
        [
            DatabricksSubmitRunOperator(
                task_id=stage.replace("-", "_"),
                databricks_conn_id="databricks_default",
                json={
                    "run_name": f"behaviorlm-{stage}-{RUN_ID}",
                    "new_cluster": cluster,
                    "libraries": [{"whl": wheel}],
                    "python_wheel_task": {
                        "package_name": "behaviorlm",
                        "entry_point": "behaviorlm",
                        "parameters": [stage, "--conf", conf, "--run-id", RUN_ID],
                    },
                },
            )
            for stage in STAGES
        ]
    )
