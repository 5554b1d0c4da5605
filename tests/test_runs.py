"""Run isolation on Delta: which run's rows a stage reads, run ids that are awkward in SQL, and a stage's metrics
written in one commit."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from behaviorlm import delta, runs
from jobs import params
from jobs.runtime import one_metrics_commit, write_metrics
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


def test_a_run_whose_stage_wrote_no_rows_reads_none_not_another_runs(spark, make_config):
    cfg = make_config(run_id="empty-run")
    delta.replace_run(
        spark.createDataFrame([("u1", "old")], SCHEMA), delta.table_ref(cfg.tables, "user_neighbors"), "old"
    )
    metrics = delta.table_ref(cfg.tables, "run_metrics")
    assert not runs.stage_ran(spark, metrics, cfg.run_id, "similar_users")
    assert [r["run_id"] for r in params.run_rows(spark, cfg, "user_neighbors", "similar_users").collect()] == ["old"]
    # similar-users ran under this run id and found nobody to search (every vector zero, say): no rows, not "old".
    write_metrics(spark, cfg, "similar_users", {"users": 0.0})
    assert runs.stage_ran(spark, metrics, cfg.run_id, "similar_users")
    assert params.run_rows(spark, cfg, "user_neighbors", "similar_users").count() == 0


def test_replace_run_takes_any_run_id(spark, make_config):
    cfg = make_config()
    ref = delta.table_ref(cfg.tables, "user_neighbors")
    awkward = ["o'brien-run", "back\\slash'", "plain"]
    for _ in range(2):  # the second round replaces each run's rows: the id must not end the replaceWhere literal
        for run_id in awkward:
            delta.replace_run(spark.createDataFrame([("u1", run_id)], SCHEMA), ref, run_id)
    got = sorted((r["run_id"], r["neighbor_id"]) for r in read(spark, cfg, "user_neighbors").collect())
    assert got == sorted((run_id, run_id) for run_id in awkward)


def test_a_stage_writes_its_metrics_in_one_commit_and_none_when_it_fails(spark, make_config):
    cfg = make_config()
    write_metrics(spark, cfg, "ingest", {"rows": 3.0})  # outside: written at once
    table = DeltaTable.forPath(spark, delta.table_ref(cfg.tables, "run_metrics").location)
    before = table.history().count()
    with one_metrics_commit(spark, cfg):
        write_metrics(spark, cfg, "recommend", {"users": 2.0})
        write_metrics(spark, cfg, "recommend", {"items": 5.0})  # a second call adds, as separate commits did
        write_metrics(spark, cfg, "run", {"recommend.done": 1.0})
        assert read(spark, cfg, "run_metrics").count() == 1  # held until the stage ends
    assert table.history().count() == before + 1
    with pytest.raises(ValueError), one_metrics_commit(spark, cfg):
        write_metrics(spark, cfg, "predict", {"users": 2.0})
        raise ValueError("the stage failed")
    got = {(r["stage"], r["metric"], r["value"]) for r in read(spark, cfg, "run_metrics").collect()}
    assert got == {("ingest", "rows", 3.0), ("recommend", "users", 2.0), ("recommend", "items", 5.0),
                   ("run", "recommend.done", 1.0)}  # fmt: skip
