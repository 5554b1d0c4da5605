"""Deployment files: the Databricks bundle, the GPU Spark properties and discovery script, and the Airflow DAGs
(loaded by Airflow's own DagBag, in a virtualenv of its own: Airflow's pins conflict with ours)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobs.cli import COMMANDS
from tests.conftest import REPO

AIRFLOW_REQUIREMENTS = REPO / "conf" / "airflow" / "requirements.txt"
EXPECTED_TASKS = ["ingest", "embed_items", "embed_users", "similar_users", "segments", "recommend", "predict",
                  "search", "intents", "complete", "evaluate", "report"]  # fmt: skip


def test_databricks_bundle_runs_the_wheel_entry_point_on_gpus():
    bundle = yaml.safe_load((REPO / "conf" / "databricks.yml").read_text())
    job = bundle["resources"]["jobs"]["behaviorlm"]
    setup = (REPO / "setup.py").read_text()
    for task in job["tasks"]:
        wheel = task["python_wheel_task"]
        assert f"{wheel['entry_point']} = jobs.cli:main" in setup and wheel["package_name"] == "behaviorlm"
        assert wheel["parameters"][0] in COMMANDS and "--run-id" in wheel["parameters"]
    cluster = job["job_clusters"][0]["new_cluster"]
    assert "gpu" in cluster["spark_version"] and float(cluster["spark_conf"]["spark.task.resource.gpu.amount"]) < 1
    assert cluster["data_security_mode"] == "SINGLE_USER"  # a classic session: behaviorlm refuses Spark Connect


def test_gpu_properties_and_discovery_script():
    props = dict(
        line.split(None, 1)
        for line in (REPO / "conf" / "spark-gpu.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert props["spark.executor.resource.gpu.amount"].strip() == "1"
    assert 0 < float(props["spark.task.resource.gpu.amount"]) <= 1
    # One place for the Arrow batch size: `embed.arrow_batch_size`, applied by the embedding stages at run time.
    assert "spark.sql.execution.arrow.maxRecordsPerBatch" not in props
    # No nvidia-smi here: the script still answers in Spark's format, with no addresses.
    out = subprocess.run([str(REPO / "conf" / "gpu_discovery.sh")], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["name"] == "gpu" and isinstance(info["addresses"], list)


def airflow_python() -> Path:
    """A cached virtualenv with the pinned Airflow (created on first use, keyed on its requirements file)."""
    digest = hashlib.sha1(AIRFLOW_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("BEHAVIORLM_CACHE") or Path.home() / ".cache" / "behaviorlm")
    venv = cache / f"airflow-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".created").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(AIRFLOW_REQUIREMENTS)], check=True,
                       timeout=1800)  # fmt: skip
        (venv / ".created").touch()
    return python


DAGBAG_SCRIPT = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    args = [str(getattr(t, "application_args", None) or getattr(t, "json", "")) for t in dag.tasks]
    schedule = str(getattr(dag, "schedule", "")) + " " + str(getattr(dag.timetable, "description", ""))
    order = [t.task_id for t in dag.topological_sort()]
    out["dags"][dag_id] = {"order": order, "schedule": schedule, "retries": [t.retries for t in dag.tasks],
                           "run_ids": args}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_airflow_dagbag_loads_both_dags(tmp_path):
    python = airflow_python()
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([str(python), "-c", DAGBAG_SCRIPT, str(REPO / "conf" / "airflow")], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert set(result["dags"]) == {"behaviorlm", "behaviorlm_databricks"}
    for dag in result["dags"].values():
        assert dag["order"] == EXPECTED_TASKS
        assert all(r == 2 for r in dag["retries"])
        assert all("{{ ds }}" in args for args in dag["run_ids"])
        assert "daily" in dag["schedule"] or "0 0 * * *" in dag["schedule"]
