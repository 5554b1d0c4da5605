# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: complete
# MAGIC Fill missing ratings, item attributes and behaviour text into the `completed_*` tables.
# MAGIC Runs `behaviorlm run --stages complete` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "complete"))
result
