# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: evaluate
# MAGIC Offline backtest of the recommender against popularity and ALS into `run_metrics`.
# MAGIC Runs `behaviorlm run --stages evaluate` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "evaluate"))
result
