# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: predict
# MAGIC Each user's most likely next behaviours — item-to-item transitions, the recent-interest vector and interest
# MAGIC segments, blended with weights tuned on the last-but-one behaviour — with a reason per row, into
# MAGIC `next_behaviors`. Runs `behaviorlm run --stages predict` for the widgets' run id: a stage this run already
# MAGIC finished is skipped unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "predict"))
result

# COMMAND ----------

from jobs.notebook import show_table

show_table(spark, dbutils, "next_behaviors", ["user_id", "rank"], n=9)
