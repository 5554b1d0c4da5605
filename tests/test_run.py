"""The main `run` job: stages in order under one run id, skip-when-done, resume after a failure, idempotent. The
whole-pipeline run here is on the edge case of almost no data: 3 users of an implicit-only log (no rating column),
every stage and the tuned backtest included, then once more as a Spark Connect client (the notebooks test runs the
pipeline on MovieLens-100K)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from behaviorlm.errors import BehaviorLMError
from jobs import ingest, run, tracking
from tests.browser import open_page
from tests.implicit_log import SETTINGS, implicit_source
from tests.util import assert_same_rows, job_args, read

USERS, EVENTS = 3, 30
OUTPUTS = ["item_embeddings", "user_embeddings", "user_neighbors", "segments", "item_segments", "user_interests",
           "segment_trends", "recommendations", "next_behaviors", "completed_ratings", "completed_attributes",
           "completed_behaviors"]  # fmt: skip


def snapshot(spark, cfg):
    """Every output table, minus columns that hold wall-clock times."""
    return {t: read(spark, cfg, t).drop("updated_at") for t in OUTPUTS}


def mlflow_runs(cfg):
    """The MLflow runs tagged with this run id, read back as a data team would (`mlflow runs list`)."""
    client = MlflowClient(tracking.tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    return client.search_runs([experiment.experiment_id], f"tags.`{tracking.TAG}` = '{cfg.run_id}'")


def test_stage_selection():
    assert run.pick_stages("evaluate, embed-users") == ["embed-users", "evaluate"]
    assert run.pick_stages("") == list(run.STAGES)
    with pytest.raises(BehaviorLMError, match="names no stage"):
        run.pick_stages(" , ")
    with pytest.raises(BehaviorLMError, match="unknown stage 'recomend'"):
        run.pick_stages("recomend")


def check_implicit_outputs(spark, cfg) -> None:
    """What an implicit-only log of 3 users must still get from every stage."""
    this_run = F.col("run_id") == cfg.run_id
    metrics = {(r["stage"], r["metric"]): r["value"] for r in read(spark, cfg, "run_metrics").where(this_run).collect()}
    # Nothing to learn ratings from: skipped with its metric, the rest of complete still ran.
    assert metrics[("complete", "ratings_skipped_no_ratings")] == 1.0
    assert ("complete", "ratings_filled") not in metrics
    assert read(spark, cfg, "recommendations").where(this_run).select("user_id").distinct().count() == USERS
    filled = read(spark, cfg, "completed_attributes").where(this_run)
    # The two items without genres (beside any the holdout hid to score the fills).
    assert {"i4", "i15"} <= {r["item_id"] for r in filled.select("item_id").distinct().collect()}
    assert read(spark, cfg, "completed_behaviors").where(this_run).count() == EVENTS  # no row had text
    assert 0.0 <= metrics[("evaluate", "behaviorlm.ndcg_at_k")] <= 1.0 and ("run", "evaluate.done") in metrics
    assert ("evaluate", "tuned.validation_ndcg_at_k") in metrics
    assert (Path(cfg.tables.root) / "_evaluate" / cfg.run_id / "test").is_dir()


def check_tracking_and_report(cfg, results) -> None:
    """One MLflow run with the metrics, parameters and artifacts; a report whose every chart a real browser draws."""
    tracked = mlflow_runs(cfg)
    assert [r.info.run_id for r in tracked] == [results["mlflow_run"]]
    assert tracked[0].data.metrics["recommend.users"] == USERS and tracked[0].data.params["neighbors.k"] == "5"
    artifacts = {a.path for a in MlflowClient(tracking.tracking_uri(cfg)).list_artifacts(results["mlflow_run"])}
    assert {"run_metrics.csv", "run-test-run.html"} <= artifacts
    page = Path(results["report"]).read_text(encoding="utf-8")
    for part in ("Neighbour similarity", "Interest segments", "Segment trends", "Categories recommended most",
                 "behaviorlm.ndcg_at_k", "recommended, with reasons", "predicted next"):  # fmt: skip
        assert part in page
    seen = open_page(Path(results["report"]))
    assert {"quality", "seconds per stage", "segment map", "segment trends", "similarity",
            "categories"} <= {alt for alt, _, _ in seen.images}  # fmt: skip
    assert seen.broken == [] and seen.console == []


@pytest.mark.slow
def test_failed_run_resumes_and_reruns_change_nothing_and_connect_gives_the_same(spark, connect, make_config,
                                                                                 tmp_path):  # fmt: skip
    cfg = make_config()
    small = [*implicit_source(spark, tmp_path / "raw", USERS, EVENTS, rating_column=False), *SETTINGS,
             f"report.dir={tmp_path / 'reports'}"]  # fmt: skip
    ingest.main(job_args(cfg, *small))
    assert read(spark, cfg, "behaviors").where("rating is not null").count() == 0
    # complete fails (a config error only that stage meets): the stages before it stay done and valid.
    with pytest.raises(BehaviorLMError, match="no_such_column"):
        run.main(job_args(cfg, *small, "complete.attributes=[no_such_column]"))
    done = read(spark, cfg, "run_metrics").where("stage = 'run' and metric like '%.done'").select("metric").collect()
    before = ["embed-items", "embed-users", "similar-users", "segments", "recommend", "predict", "search", "intents"]
    assert {r["metric"] for r in done} == {f"{stage}.done" for stage in before}
    results = run.main(job_args(cfg, *small))
    assert [s for s, r in results.items() if r is None] == before
    check_implicit_outputs(spark, cfg)
    check_tracking_and_report(cfg, results)
    first = {t: df.collect() for t, df in snapshot(spark, cfg).items()}
    # The same run again: nothing to do. Forced: the stages before the neighbours re-run, the same tables, no
    # duplicates (every stage's own re-run is its module's test: test_recommend, test_predict, test_complete, ...).
    written = Path(results["report"]).stat().st_mtime_ns
    again = run.main(job_args(cfg, *small))
    assert all(again[s] is None for s in run.STAGES)
    # Nothing ran, so no metric changed: the report stands as written.
    assert Path(again["report"]).stat().st_mtime_ns == written
    run.main(job_args(cfg, *small) + ["--force", "--stages", "embed-items,embed-users,similar-users"])
    for table, df in snapshot(spark, cfg).items():
        expected = spark.createDataFrame(first[table], df.schema)
        assert_same_rows(df, expected)
    # Re-runs resumed the same MLflow run.
    assert [r.info.run_id for r in mlflow_runs(cfg)] == [results["mlflow_run"]]
    # The same run as a Spark Connect client (a Databricks serverless notebook, databricks-connect): the same tables.
    remote_cfg = make_config(f"tables.root={tmp_path / 'connect' / 'delta'}")
    remote_args = job_args(remote_cfg, *small, f"report.dir={tmp_path / 'connect' / 'reports'}")
    with connect():
        ingest.main(remote_args)
        assert run.main(remote_args)["mlflow_run"] is not None
    for table, df in snapshot(spark, remote_cfg).items():
        assert_same_rows(df, spark.createDataFrame(first[table], df.schema))
