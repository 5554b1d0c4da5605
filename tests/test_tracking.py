"""MLflow tracking: where runs go by default, the config as params, and an unreachable server that only warns."""

from __future__ import annotations

import logging

from jobs import tracking
from tests.util import write


def test_default_store_is_a_folder_beside_the_tables_and_env_wins(make_config, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = make_config()
    assert tracking.tracking_uri(cfg) == f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    assert tracking.tracking_uri(cfg) == "databricks"
    assert tracking.tracking_uri(make_config("mlflow.tracking_uri=http://mlflow:5000")) == "http://mlflow:5000"


def test_params_are_flat_cut_and_keep_spark_conf_whole():
    got = tracking.flat_params({"a": {"b": 1, "c": {"d": [1, 2]}}, "spark": {"conf": {"x.y": "1"}}, "e": "z" * 900})
    assert got == {"a.b": "1", "a.c.d": "[1, 2]", "spark.conf": "{'x.y': '1'}", "e": "z" * tracking.MAX_PARAM}


def test_an_unreachable_server_is_a_warning_not_a_failure(spark, make_config, caplog):
    cfg = make_config("mlflow.tracking_uri=http://127.0.0.1:9")
    write(spark, cfg, "run_metrics", [(cfg.run_id, "run", "x.done", 1.0)],
          "run_id string, stage string, metric string, value double")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="jobs.tracking"):
        assert tracking.track(spark, cfg, None) is None
    assert "MLflow tracking at http://127.0.0.1:9 failed" in caplog.text
