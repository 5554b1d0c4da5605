"""The library on Spark Connect: ids, popularity ranks, the EASE item model, the approximate neighbour search, the
encoder, ALS and the Delta module give the same answer as a Connect client of a real Spark Connect server (Spark's
own service on the test session's JVM, `connect` in conftest) as on the classic session. They used RDDs, MLlib's
RowMatrix, broadcast variables, accumulators, Delta's Python API and Hadoop's file system, none of which a Connect
client has. Whole runs on Connect: tests/test_run.py (every stage) and tests/test_cli.py (the console script)."""

from __future__ import annotations

import json
import logging
import re
import time

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.assets import model_dir
from behaviorlm.backtest import als_recommendations
from behaviorlm.embedding import make_embed_fn
from behaviorlm.errors import ConfigError, TableNotFoundError
from behaviorlm.files import check_writable, read_text, write_text
from behaviorlm.indexing import id_index
from behaviorlm.item_model import item_scores
from behaviorlm.logs import timed
from behaviorlm.neighbors import top_k
from behaviorlm.scoring import popularity
from behaviorlm.session import is_connect

# Users who chose a also chose b; c goes with d.
PAIRS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "b"), ("u3", "c"), ("u4", "c"),
         ("u4", "d"), ("u7", "c"), ("u7", "d"), ("u5", "a"), ("u6", "c")]  # fmt: skip
# Two clusters of unit vectors, near x and near y.
VECTORS = [(f"v{n}", [1.0, n / 100, 0.0]) for n in range(6)] + [(f"w{n}", [0.0, 1.0, n / 100]) for n in range(6)]


def delta_results(spark: SparkSession, root: str) -> dict:
    """Delta writes under `root`: a merge that creates, one that updates and inserts, the rows offered to it; a
    run's rows replaced; a Parquet folder refused as an input; paths found or not."""
    ref, schema = delta.location_ref("probe", f"{root}/probe"), "k string, v int"
    first = spark.createDataFrame([("a", 1), ("b", 2)], schema)
    later = spark.createDataFrame([("a", 1), ("b", 3), ("c", 4)], schema)
    counts = [delta.table_exists(spark, ref), delta.merge(first, ref, ["k"]), delta.merge(later, ref, ["k"]),
              delta.offered_rows(spark, ref)]  # fmt: skip
    runs = delta.location_ref("runs", f"{root}/runs")
    replaced = [delta.replace_run(first, runs, "r1"), delta.replace_run(later, runs, "r1")]
    spark.range(2).write.parquet(f"{root}/parquet")
    try:
        refused = str(delta.input_exists(spark, delta.location_ref("queries", f"{root}/parquet")))
    except TableNotFoundError as exc:
        refused = "holds files but no _delta_log" in str(exc)
    paths = [delta.path_exists(spark, f"{root}/{p}") for p in ("probe", "probe/_delta_log", "nothing")]
    rows = sorted(tuple(r) for r in delta.read_table(spark, ref).collect())
    return {"merges": counts, "replaced": replaced, "refused": refused, "paths": paths, "rows": rows,
            "run_rows": delta.read_table(spark, runs).count()}  # fmt: skip


def results(spark: SparkSession, root: str) -> dict:
    """Dense ids, popularity ranks, EASE scores with their reasons (X'X summed from partitions, B shipped to the
    executors), approximate neighbours (k-means cells, centroids shipped to the executors) and text vectors of the
    real encoder (its pandas UDF, with no accumulator on Connect), and MLlib ALS's best unseen item per user (Spark
    ML on Connect)."""
    pairs = spark.createDataFrame(PAIRS, "user_id string, item_id string")
    vectors = spark.createDataFrame(VECTORS, "user_id string, embedding array<float>")
    unit = vectors.select("user_id", F.transform("embedding", lambda x: x / F.sqrt(F.aggregate(
        "embedding", F.lit(0.0), lambda a, y: a + y * y))).cast("array<float>").alias("embedding"))  # fmt: skip
    scores = item_scores(pairs, reg=1.0, m=3)
    near = top_k(unit, 2, cells=2, nprobe=1, kmeans_iters=3)
    texts = spark.createDataFrame([("t1", "a funny movie for kids"), ("t2", None)], "id string, text string")
    embed = make_embed_fn(spark, str(model_dir()))
    encoded = embed.encode(texts, "text", "embedding").orderBy("id").collect()
    return {
        "connect": is_connect(spark),
        "als": sorted(
            (r["user_id"], r["item_id"], r["rank"]) for r in als_recommendations(pairs, 1, 2, iterations=3).collect()
        ),
        "ids": sorted(tuple(r) for r in id_index(pairs, "item_id", "ix").collect()),
        "ranks": sorted((r["item_id"], r["pop_rank"]) for r in popularity(pairs).collect()),
        "items": sorted((r["user_id"], r["item_id"], r["because_item"], r["items"]) for r in scores.collect()),
        "neighbours": sorted((r["user_id"], r["neighbor_id"]) for r in near.collect()),
        "vectors": [list(r["embedding"]) for r in encoded],
        "report": sorted(embed.report()),
        "delta": delta_results(spark, root),
    }


def test_library_parts_give_the_same_answer_on_spark_connect(spark, connect, tmp_path):
    with connect() as session:
        remote = json.loads(json.dumps(results(session, str(tmp_path / "connect"))))  # tuples as lists, as JSON
    classic = json.loads(json.dumps(results(spark, str(tmp_path / "classic"))))
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
    assert len(remote["neighbours"]) == 24 and np.shape(got_vectors) == (2, 384) and len(remote["als"]) == 7
    assert remote["delta"] == {"merges": [False, 2, 2, 3], "replaced": [2, 3], "refused": True,
                               "paths": [True, True, False], "rows": [["a", 1], ["b", 3], ["c", 4]],
                               "run_rows": 3}  # fmt: skip


def test_report_files_read_through_spark_and_a_uri_to_write_refused_on_connect(spark, connect, tmp_path):
    # A run id may hold glob characters: the report read is its own file's only (run-[a].html, not run-a.html).
    page, missing = f"file://{tmp_path / 'reports' / 'run-[a].html'}", f"file://{tmp_path / 'reports' / 'run-a*'}"
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "run-a.html").write_text("another run")
    write_text(spark, page, "<p>déjà vu</p>")  # a URI: Hadoop's file system on a classic session
    check_writable(spark, "s3a://bucket/reports", "report.dir")
    assert read_text(spark, page) == "<p>déjà vu</p>" and read_text(spark, missing) is None
    with connect() as remote:
        assert read_text(remote, page) == "<p>déjà vu</p>" and read_text(remote, missing) is None
        with pytest.raises(ConfigError, match="report.dir='s3a://bucket/reports': a Spark Connect session cannot"):
            check_writable(remote, "s3a://bucket/reports", "report.dir")
        write_text(remote, str(tmp_path / "local" / "run.html"), "ok")  # a local path: this process writes it
    assert (tmp_path / "local" / "run.html").read_text() == "ok"


LOG = logging.getLogger("tests.progress")


def _slow(batches):
    for batch in batches:
        time.sleep(1.0)
        yield batch


def progress_lines(session: SparkSession, caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    if is_connect(session):  # the server's progress messages every 2 s by default: more often than the tasks last
        session.conf.set("spark.connect.progress.reportInterval", "100ms")
    with caplog.at_level(logging.INFO, logger="tests.progress"), timed(LOG, "slow job", session, every=0.3):
        session.range(2, numPartitions=2).mapInPandas(_slow, "id long").collect()
    return [r.getMessage() for r in caplog.records if "running" in r.getMessage()]


def test_progress_lines_on_both_sessions(spark, connect, caplog):
    """A long Spark job inside `timed` logs how many of its tasks are done: from the status tracker on a classic
    session, from Spark Connect's progress messages on a Connect one."""
    classic = progress_lines(spark, caplog)
    with connect() as remote:
        on_connect = progress_lines(remote, caplog)
    for lines in (classic, on_connect):
        assert lines and all(re.fullmatch(r"  slow job: running, \d/2 tasks of 1 Spark stage\(s\) done", m)
                             for m in lines), lines  # fmt: skip
