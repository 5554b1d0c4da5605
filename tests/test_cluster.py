"""The main job through spark-submit on a real standalone cluster (one master, two workers on 127.0.0.1), the
package shipped as a zip with --py-files as a cluster user would; one worker is killed while embedding runs."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from jobs import ingest
from jobs.session import cached_delta_jars
from tests.cluster import start_cluster
from tests.util import assert_same_rows, job_args, package_bundle, read

BIN = Path(sys.executable).parent
DATA = ["ingest.source=synthetic", "ingest.synthetic.users=300", "ingest.synthetic.items=1200",
        "ingest.synthetic.events=6000", "neighbors.k=10"]  # fmt: skip
STAGES = "embed-items,embed-users,similar-users,recommend"
OUTPUTS = ["item_embeddings", "user_embeddings", "user_neighbors", "recommendations"]


@pytest.fixture
def cluster(tmp_path):
    c = start_cluster(tmp_path / "cluster")
    yield c
    c.stop()


def submit(cluster, cfg, bundle: tuple[str, str], log: Path) -> subprocess.Popen:
    zip_path, driver = bundle
    cmd = [str(BIN / "spark-submit"), "--master", cluster.url, "--jars", ",".join(cached_delta_jars()),
           "--py-files", zip_path, "--conf", f"spark.pyspark.python={sys.executable}",
           "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=1",
           "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.enabled=false",
           driver, "run", "--stages", STAGES, "--set", f"report.dir={log.parent / 'reports'}",
           *job_args(cfg, *DATA)]  # fmt: skip
    return subprocess.Popen(cmd, cwd=log.parent, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path) -> str:
    proc.wait(timeout=900)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


@pytest.mark.slow
@pytest.mark.cluster
def test_killed_worker_during_embedding_leaves_the_same_tables(spark, make_config, cluster, tmp_path):
    bundle = package_bundle(tmp_path)
    calm = make_config(run_id="cluster")
    hit = replace(calm, tables=replace(calm.tables, root=str(tmp_path / "hit")))
    for cfg in (calm, hit):
        ingest.main(job_args(cfg, *DATA))
    finish(submit(cluster, calm, bundle, tmp_path / "calm.log"), tmp_path / "calm.log")
    proc = submit(cluster, hit, bundle, tmp_path / "hit.log")
    # Wait until an executor runs Python (the embedding UDF is the run's first Python work), then kill its worker.
    deadline = time.time() + 300
    while not (busy := [w for w in range(len(cluster.workers)) if cluster.python_workers(w)]):
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "hit.log").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(2)
    cluster.kill_worker(busy[0])
    text = finish(proc, tmp_path / "hit.log")
    # The kill hit running tasks, which Spark re-ran on the surviving worker.
    assert "worker lost" in text and "Lost task" in text, "the kill did not reach a running job"
    assert cluster.alive_workers() == 1
    for table in OUTPUTS:
        assert_same_rows(read(spark, hit, table).drop("updated_at"), read(spark, calm, table).drop("updated_at"))
