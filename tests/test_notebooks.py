"""The Databricks notebooks: every one is Databricks source format with widgets, and all run locally, cell by cell,
on MovieLens-100K with a `dbutils` stand-in that serves only the widgets' defaults."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.util import read

NOTEBOOKS = {p.stem: p for p in sorted((REPO / "notebooks").glob("*.py"))}
# Pipeline order: quickstart ingests and runs everything; each stage notebook then finds its stage done.
ORDER = ["quickstart", "embed_items", "embed_users", "similar_users", "segments", "recommend", "predict", "search",
         "intents", "complete", "evaluate", "run"]  # fmt: skip
# Typed into the `overrides` widget, as a user would: an untuned backtest without ALS, a set number of segments and
# untuned predict weights keep the run short (tuning is tests/test_evaluation.py's and tests/test_predict.py's).
OVERRIDES = "evaluate.tune=false; evaluate.baselines=[popularity]; segments.k=20; predict.tune=false"


class Widgets:
    """The part of `dbutils.widgets` the notebooks use; `get` returns what was typed into a widget, else the default
    its `text` call gave."""

    def __init__(self, typed: dict[str, str]) -> None:
        self.defaults: dict[str, str] = {}
        self.typed = typed

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def get(self, name: str) -> str:
        return self.typed.get(name, self.defaults[name])


class DbutilsStandIn:
    def __init__(self, **typed: str) -> None:
        self.widgets = Widgets(typed)


def cells(name: str) -> list[str]:
    text = NOTEBOOKS[name].read_text(encoding="utf-8")
    assert text.startswith("# Databricks notebook source\n"), f"{name}: not in Databricks source format"
    chunks = text.split("\n# COMMAND ----------\n")
    return ["\n".join(line for line in c.splitlines() if not line.startswith("# MAGIC")) for c in chunks]


def test_every_notebook_is_databricks_source_calling_the_jobs():
    assert sorted(NOTEBOOKS) == sorted(ORDER)
    for name in NOTEBOOKS:
        parts = cells(name)
        assert len(parts) >= 3 and parts[0].strip().startswith("# Databricks notebook source")
        for i, cell in enumerate(parts):
            compile(cell, f"{name}[{i}]", "exec")
        body = "".join(parts)
        assert "define_widgets(dbutils)" in body and "run.main(" in body


@pytest.mark.slow
def test_notebooks_run_locally_on_movielens(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the widget defaults are relative: data/delta and reports/ land here
    results = {}
    for name in ORDER:
        scope = {"dbutils": DbutilsStandIn(overrides=OVERRIDES), "spark": spark}
        for cell in cells(name):
            exec(compile(cell, name, "exec"), scope)  # noqa: S102 - running the notebook is the test
        results[name] = scope.get("result")
    assert (tmp_path / "reports" / "run-notebook.html").is_file()
    recs = read(spark, _cfg(tmp_path), "recommendations").where("run_id = 'notebook'")
    assert recs.count() == 943 * 10
    # Stage notebooks after the full run: the same run id, so each found its stage done and skipped it (and only
    # wrote the report and resumed the run's MLflow run).
    for name in ORDER[1:-1]:
        assert set(v for k, v in results[name].items() if k not in ("report", "mlflow_run")) == {None}, name


def _cfg(root):
    from behaviorlm.config import load_config

    return load_config(overrides=[f"tables.root={root / 'data' / 'delta'}"])
