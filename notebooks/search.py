# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: search
# MAGIC Free-text queries to items and audiences: every row of the `queries(query_id, text, user_id?)` table gets its
# MAGIC best-matching items in `query_results` (personal when the row names a user) and the users whose interests match
# MAGIC it best in `query_audience`. Runs `behaviorlm run --stages search` for the widgets' run id: a stage this run
# MAGIC already finished is skipped unless `force` is true; without a `queries` table the stage writes nothing.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "search"))
result

# COMMAND ----------

from jobs.notebook import show_table

show_table(spark, dbutils, "query_results", ["query_id", "rank"])
