# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: embed-users
# MAGIC User vectors (pooled item vectors, or encoded history) into `user_embeddings`.
# MAGIC Runs `behaviorlm run --stages embed-users` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "embed-users"))
result
