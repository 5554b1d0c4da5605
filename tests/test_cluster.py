"""The main job through spark-submit on a real standalone cluster (one master, two workers on 127.0.0.1, each
announcing two GPUs), the package shipped as a zip with --py-files as a cluster user would: each embedding task sees
the GPU address Spark assigned it, and one worker is killed while embedding runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from behaviorlm.session import cached_delta_jars
from jobs import ingest, run
from tests.cluster import start_cluster
from tests.conftest import REPO
from tests.util import assert_same_rows, job_args, package_bundle, read

BIN = Path(sys.executable).parent
DATA = ["ingest.source=synthetic", "ingest.synthetic.users=300", "ingest.synthetic.items=1200",
        "ingest.synthetic.events=6000", "neighbors.k=10"]  # fmt: skip
# Embedding (the kill's target), then the stages that read its vectors; recommend's own re-runs are its tests'.
STAGES = "embed-items,embed-users,similar-users"
# The report and MLflow are tested in-process (tests/test_run.py); here they would only add minutes.
QUIET = ["report.enabled=false", "mlflow.enabled=false"]
OUTPUTS = ["item_embeddings", "user_embeddings", "user_neighbors"]
# Discovery reports two GPUs per worker (there are none: tasks must fall back to CPU and say so).
DISCOVERY = str(REPO / "tests" / "fake_gpu_discovery.sh")


@pytest.fixture
def cluster(tmp_path):
    gpus = {"spark.worker.resource.gpu.amount": "2", "spark.worker.resource.gpu.discoveryScript": DISCOVERY}
    c = start_cluster(tmp_path / "cluster", worker_conf=gpus)
    yield c
    c.stop()


def submit(cluster, cfg, bundle: tuple[str, str], log: Path) -> subprocess.Popen:
    zip_path, driver = bundle
    cmd = [str(BIN / "spark-submit"), "--master", cluster.url, "--jars", ",".join(cached_delta_jars()),
           "--py-files", zip_path, "--conf", f"spark.pyspark.python={sys.executable}",
           "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=1",
           "--conf", "spark.executor.resource.gpu.amount=1", "--conf", "spark.task.resource.gpu.amount=1",
           "--conf", f"spark.executor.resource.gpu.discoveryScript={DISCOVERY}",
           "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.enabled=false",
           # As conf/local.yaml: tiny Delta logs, read in 2 tasks rather than 50 on these two 1-core executors.
           "--conf", "spark.databricks.delta.snapshotPartitions=2",
           driver, "run", "--stages", STAGES,
           # Spark's own INFO/WARN lines (its default under spark-submit) are the evidence of the lost running task.
           *job_args(cfg, *DATA, *QUIET, "spark.log_level=INFO")]  # fmt: skip
    return subprocess.Popen(cmd, cwd=log.parent, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path) -> str:
    proc.wait(timeout=900)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def assigned_devices(log: str) -> dict[str, int]:
    """The job's `encoder devices` report: tasks per (Spark GPU address -> device the encoder used)."""
    lines = [x for x in log.splitlines() if "encoder devices" in x]
    assert lines, "no device report from the job"
    return ast.literal_eval(lines[0][lines[0].rindex("{") :])


@pytest.mark.slow
@pytest.mark.cluster
def test_gpu_scheduled_cluster_run_survives_a_killed_worker(spark, make_config, cluster, tmp_path):
    bundle = package_bundle(tmp_path)
    calm = make_config(run_id="cluster")
    hit = calm.but(tables={**calm.tables.model_dump(), "root": str(tmp_path / "hit")})
    for cfg in (calm, hit):
        ingest.main(job_args(cfg, *DATA))
    # The reference: the same stages undisturbed, in this process (the cluster run is the one under test).
    run.main(job_args(calm, *DATA, *QUIET) + ["--stages", STAGES])
    proc = submit(cluster, hit, bundle, tmp_path / "hit.log")
    # Wait until an executor computes in Python (the embedding UDF is the run's first Python work), then the
    # machine running it dies.
    deadline = time.time() + 300
    while (busy := cluster.busy_worker()) is None:
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "hit.log").read_text()[-3000:]
    cluster.kill_worker(busy)
    text = finish(proc, tmp_path / "hit.log")
    # The kill hit running tasks, which Spark re-ran on the surviving worker.
    assert "Lost executor" in text and "while it was being computed, its executor exited" in text, (
        "the kill did not reach a running task"
    )
    assert cluster.alive_workers() == 1
    # Every embedding task saw one of its worker's GPUs as its assigned address and, with no CUDA here, fell back
    # to CPU saying so.
    tasks = assigned_devices(text)
    assert tasks and sum(tasks.values()) >= 1
    for choice in tasks:
        assert re.fullmatch(r"gpu [01] -> cpu \(CUDA not available; CPU fallback\)", choice), choice
    for table in OUTPUTS:
        assert_same_rows(read(spark, hit, table).drop("updated_at"), read(spark, calm, table).drop("updated_at"))
