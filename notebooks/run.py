# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: the whole pipeline
# MAGIC embed-items → embed-users → similar-users → recommend → complete → evaluate under one run id (the
# MAGIC `stages` widget picks a subset), then the HTML run report. The same as `behaviorlm run`.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils))
print("run report:", result["report"])
