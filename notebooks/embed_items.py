# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: embed-items
# MAGIC Encode item texts into `item_embeddings` (only new or changed texts).
# MAGIC Runs `behaviorlm run --stages embed-items` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "embed-items"))
result
