"""Spark Connect, first parts: ids, popularity ranks, the EASE item model, the approximate neighbour search and the
encoder give the same answer on a real local Spark Connect server (pyspark's own, started by `tests/connect_probe.py`
in a process of its own) as on the classic session. They used RDDs, MLlib's RowMatrix, broadcast variables and
accumulators, none of which Spark Connect has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO
from tests.connect_probe import results


def test_library_parts_give_the_same_answer_on_spark_connect(spark):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tests.connect_probe", "local[2]"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    classic = json.loads(json.dumps(results(spark)))  # tuples as lists, as they came back
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
