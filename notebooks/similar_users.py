# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: similar-users
# MAGIC Top-K similar users into `user_neighbors`: approximate above `neighbors.exact_below` users, recall@K measured.
# MAGIC Runs `behaviorlm run --stages similar-users` for the widgets' run id: a stage this run already finished is
# MAGIC skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "similar-users"))
result
