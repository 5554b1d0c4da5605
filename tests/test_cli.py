"""The `behaviorlm` command and `spark-submit`, each in its own process; their tables are read back here, from
another Spark session, with a plain Delta reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from behaviorlm.session import cached_delta_jars
from jobs.cli import main
from tests.conftest import REPO
from tests.util import package_bundle

BIN = Path(sys.executable).parent
SYNTHETIC = ["--set", "ingest.source=synthetic", "--set", "ingest.synthetic.events=3000",
             "--set", "ingest.synthetic.bad_fraction=0.02"]  # fmt: skip


def test_usage_and_unknown_command(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0 and "embed-items" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err


def test_user_errors_exit_2_with_the_message_not_a_traceback(capsys):
    assert main(["ingest", "--set", "model.batch_size=big"]) == 2
    err = capsys.readouterr().err
    assert "behaviorlm ingest: error: config key 'model.batch_size': expected an integer, got 'big'" in err
    assert "Traceback" not in err


def run(cmd: list[str], cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **env_vars}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def rows_by_table(spark, root: Path) -> dict[str, int]:
    names = ("behaviors", "items", "rejected_behaviors", "rejected_items")
    return {name: spark.read.format("delta").load(str(root / name)).count() for name in names}


@pytest.mark.slow
def test_console_script_with_the_local_conf(spark, tmp_path, capsys):
    root = tmp_path / "delta"
    run([str(BIN / "behaviorlm"), "ingest", "--conf", "conf/local.yaml", "--set", f"tables.root={root}", *SYNTHETIC],
        REPO)  # fmt: skip
    counts = rows_by_table(spark, root)
    assert counts["behaviors"] + counts["rejected_behaviors"] == 3000 and counts["rejected_behaviors"] > 0
    # The listing through the same entry point, in this process (a second JVM would only add its start-up).
    assert main(["tables", "--set", f"tables.root={root}"]) == 0
    listing = capsys.readouterr().out
    line = next(row for row in listing.splitlines() if row.startswith("behaviors "))
    assert line.split()[1] == str(counts["behaviors"])


@pytest.mark.slow
def test_spark_submit_with_the_package_as_py_files(spark, tmp_path):
    bundle, driver = package_bundle(tmp_path)
    root = tmp_path / "delta"
    cmd = [str(BIN / "spark-submit"), "--master", "local[2]", "--jars", ",".join(cached_delta_jars()),
           "--py-files", bundle, driver, "ingest",
           "--set", f"tables.root={root}", *SYNTHETIC]  # fmt: skip
    run(cmd, tmp_path)
    counts = rows_by_table(spark, root)
    assert counts["behaviors"] + counts["rejected_behaviors"] == 3000


@pytest.mark.slow
def test_console_script_as_a_spark_connect_client(spark, connect_url, tmp_path):
    """SPARK_REMOTE makes the command a Spark Connect client (here of the server on the test session's JVM), as
    databricks-connect or a serverless job would, and writes the same tables."""
    root = tmp_path / "delta"
    done = run([str(BIN / "behaviorlm"), "ingest", "--set", f"tables.root={root}", *SYNTHETIC], REPO,
               SPARK_REMOTE=connect_url)  # fmt: skip
    assert f"Spark Connect session: server {connect_url}" in done.stderr
    counts = rows_by_table(spark, root)
    assert counts["behaviors"] + counts["rejected_behaviors"] == 3000 and counts["rejected_behaviors"] > 0
