# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: recommend
# MAGIC Top-K unseen items per user with reasons into `recommendations`.
# MAGIC Runs `behaviorlm run --stages recommend` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "recommend"))
result
