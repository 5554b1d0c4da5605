"""Spark Connect, first parts: ids, popularity ranks, the EASE item model, the approximate neighbour search, the
encoder and the Delta module give the same answer on a real local Spark Connect server (pyspark's own, started by
`tests/connect_probe.py` in a process of its own) as on the classic session. They used RDDs, MLlib's RowMatrix,
broadcast variables, accumulators, Delta's Python API and Hadoop's file system, none of which a Connect client has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.connect_probe import results


@pytest.mark.slow
def test_library_parts_give_the_same_answer_on_spark_connect(spark, tmp_path):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    log = tmp_path / "probe.log"  # a file, not a pipe: the probe's Spark logs must not block it meanwhile
    with log.open("w") as err:
        probe = subprocess.Popen([sys.executable, "-m", "tests.connect_probe", "local[2]", str(tmp_path / "connect")],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
        try:  # the classic side meanwhile: the probe spends much of its time starting a JVM and Python workers
            classic = json.loads(json.dumps(results(spark, str(tmp_path / "classic"))))  # tuples as lists, as JSON
            out, _ = probe.communicate(timeout=600)
        finally:
            probe.kill()
    assert probe.returncode == 0, log.read_text()[-3000:]
    remote = json.loads(out.strip().splitlines()[-1])
    assert remote.pop("connect") and not classic.pop("connect")
    # No accumulators on Connect: the encoder reports its backend but no model-load counts.
    assert remote.pop("report") == ["backend_use_multilingual"] and "model_loads" in classic.pop("report")
    # Floats within 1e-5 (another batch split or BLAS path may move a last bit), the rest exactly.
    got, want = remote.pop("items"), classic.pop("items")
    assert [row[:3] for row in got] == [row[:3] for row in want] and len(got) == 12
    np.testing.assert_allclose([row[3] for row in got], [row[3] for row in want], atol=1e-5)
    got_vectors, want_vectors = remote.pop("vectors"), classic.pop("vectors")
    np.testing.assert_allclose(got_vectors, want_vectors, atol=1e-5)
    assert remote == classic
    # Not the same nothing on both sides.
    assert len(remote["neighbours"]) == 24 and np.shape(got_vectors) == (2, 384)
    assert remote["delta"] == {"merges": [False, 2, 2, 3], "replaced": [2, 3], "refused": True,
                               "paths": [True, True, False], "rows": [["a", 1], ["b", 3], ["c", 4]],
                               "run_rows": 3}  # fmt: skip
