"""What the Databricks notebooks in `notebooks/` share: their widgets (with defaults) and the job arguments built
from them, so each notebook is a few lines that call the same job `main` functions as the command line.

Widgets: `conf` (YAML file, optional), `tables_root`, `run_id`, `overrides` ("key=value; key=value"), `stages`
(comma list, empty = all) and `force` ("true" re-runs stages this run id already finished).
"""

from __future__ import annotations

from typing import Any

WIDGETS = {
    "conf": ("", "YAML config file (optional; e.g. /Workspace/.../conf/cluster.yaml)"),
    "tables_root": ("data/delta", "Delta tables root (path or volume)"),
    "run_id": ("notebook", "run id (the same id re-runs idempotently)"),
    "overrides": ("", "settings: key=value; key=value"),
    "stages": ("", "stages, comma separated (empty: all)"),
    "force": ("false", "re-run stages this run id already finished"),
}


def define_widgets(dbutils: Any) -> None:
    for name, (default, label) in WIDGETS.items():
        dbutils.widgets.text(name, default, label)


def job_args(dbutils: Any) -> list[str]:
    """Command-line style arguments for a job's `main` from the widgets."""
    get = dbutils.widgets.get
    args = ["--set", f"tables.root={get('tables_root')}", "--run-id", get("run_id")]
    if get("conf"):
        args += ["--conf", get("conf")]
    for item in (s.strip() for s in get("overrides").split(";")):
        if item:
            args += ["--set", item]
    return args


def run_args(dbutils: Any, stages: str | None = None) -> list[str]:
    """Arguments for `jobs.run.main`: the job arguments plus the stages (from the widget unless given) and force."""
    args = [*job_args(dbutils), "--stages", dbutils.widgets.get("stages") if stages is None else stages]
    return [*args, "--force"] if dbutils.widgets.get("force").lower() == "true" else args


def show_table(spark: Any, dbutils: Any, name: str, order: list[str], columns: list[str] | None = None,
               n: int = 10) -> None:  # fmt: skip
    """Print this run's first `n` rows of table `name` (the widgets' config, tables root and run id) in `order`, or
    a line saying the table is not there yet (`display(...)` the same rows on Databricks)."""
    from pyspark.sql import functions as F

    from behaviorlm import delta
    from jobs.runtime import parse_job_args

    cfg = parse_job_args(job_args(dbutils), "notebook")
    ref = delta.table_ref(cfg.tables, name)
    if not delta.table_exists(spark, ref):
        print(f"no table {name} yet: its stage found no input to write it from")
        return
    rows = delta.read_table(spark, ref).where(F.col("run_id") == cfg.run_id).orderBy(*order)
    rows.select(*(columns or rows.columns)).show(n, truncate=False)
