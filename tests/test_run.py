"""The main `run` job: stages in order under one run id, skip-when-done, resume after a failure, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from behaviorlm.errors import BehaviorLMError
from jobs import ingest, run, tracking
from tests.browser import open_page
from tests.util import assert_same_rows, job_args, read

# Untuned backtest and predict weights (tuning is tests/test_evaluation.py's and tests/test_predict.py's).
SMALL = ["ingest.source=synthetic", "ingest.synthetic.users=80", "ingest.synthetic.items=40",
         "ingest.synthetic.events=1500", "ingest.synthetic.clusters=4", "neighbors.k=10", "evaluate.tune=false",
         "evaluate.baselines=[popularity]", "complete.holdout=0.05", "segments.k=4", "predict.tune=false"]  # fmt: skip
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
    with pytest.raises(BehaviorLMError, match="unknown stage 'recomend'"):
        run.pick_stages("recomend")


@pytest.mark.slow
def test_failed_run_resumes_and_reruns_change_nothing(spark, make_config, tmp_path):
    cfg = make_config()
    small = [*SMALL, f"report.dir={tmp_path / 'reports'}"]
    ingest.main(job_args(cfg, *small))
    # complete fails (a config error only that stage meets): the stages before it stay done and valid.
    with pytest.raises(BehaviorLMError, match="no_such_column"):
        run.main(job_args(cfg, *small, "complete.attributes=[no_such_column]"))
    done = read(spark, cfg, "run_metrics").where("stage = 'run' and metric like '%.done'").select("metric").collect()
    before = ["embed-items", "embed-users", "similar-users", "segments", "recommend", "predict", "search", "intents"]
    assert {r["metric"] for r in done} == {f"{stage}.done" for stage in before}
    results = run.main(job_args(cfg, *small))
    assert [s for s, r in results.items() if r is None] == before
    tracked = mlflow_runs(cfg)
    assert [r.info.run_id for r in tracked] == [results["mlflow_run"]]
    assert tracked[0].data.metrics["recommend.users"] == 80 and tracked[0].data.params["neighbors.k"] == "10"
    artifacts = {a.path for a in MlflowClient(tracking.tracking_uri(cfg)).list_artifacts(results["mlflow_run"])}
    assert {"run_metrics.csv", "run-test-run.html"} <= artifacts
    page = Path(results["report"]).read_text(encoding="utf-8")
    for part in ("Neighbour similarity", "Interest segments", "Segment trends", "Categories recommended most",
                 "behaviorlm.ndcg_at_k", "recommended, with reasons", "predicted next"):  # fmt: skip
        assert part in page
    # Opened in a real browser: every chart drawn, nothing on the console.
    seen = open_page(Path(results["report"]))
    assert {"quality", "seconds per stage", "segment map", "segment trends", "similarity",
            "categories"} <= {alt for alt, _, _ in seen.images}  # fmt: skip
    assert seen.broken == [] and seen.console == []
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
