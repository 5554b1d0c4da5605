"""Run isolation on Delta: which run's rows a stage reads, and run ids that are awkward in SQL."""

from __future__ import annotations

from pyspark.sql import functions as F

from behaviorlm import delta, runs
from tests.util import read

SCHEMA = "user_id string, neighbor_id string"


def test_rows_for_run_falls_back_to_the_run_written_last_not_the_largest_id(spark, make_config):
    cfg = make_config()
    ref = delta.table_ref(cfg.tables, "user_neighbors")
    for run_id, rows in [("b-first", [("u1", "old")]), ("a-second", [("u1", "new"), ("u2", "new")])]:
        delta.replace_run(spark.createDataFrame(rows, SCHEMA), ref, run_id)
    table = read(spark, cfg, "user_neighbors")
    assert runs.latest_run(table) == "a-second"
    fallback = runs.rows_for_run(table, "third", "user_neighbors")
    assert {(r["neighbor_id"], r["run_id"]) for r in fallback.collect()} == {("new", "a-second")}
    # A run that wrote rows reads its own, however old.
    assert [r["neighbor_id"] for r in runs.rows_for_run(table, "b-first", "user_neighbors").collect()] == ["old"]
    assert runs.latest_run(table.where(F.lit(False))) is None


def test_replace_run_takes_any_run_id(spark, make_config):
    cfg = make_config()
    ref = delta.table_ref(cfg.tables, "user_neighbors")
    awkward = ["o'brien-run", "back\\slash'", "plain"]
    for _ in range(2):  # the second round replaces each run's rows: the id must not end the replaceWhere literal
        for run_id in awkward:
            delta.replace_run(spark.createDataFrame([("u1", run_id)], SCHEMA), ref, run_id)
    got = sorted((r["run_id"], r["neighbor_id"]) for r in read(spark, cfg, "user_neighbors").collect())
    assert got == sorted((run_id, run_id) for run_id in awkward)
