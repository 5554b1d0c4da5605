# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: segments
# MAGIC Interest segments of the catalogue (MLlib k-means on item embeddings, cosine) with readable labels, each user's
# MAGIC top interests and each segment's trend per period with surge alerts, into `segments`, `item_segments`,
# MAGIC `user_interests` and `segment_trends`.
# MAGIC Runs `behaviorlm run --stages segments` for the widgets' run id: a stage this run already finished is skipped
# MAGIC unless `force` is true.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "segments"))
result

# COMMAND ----------

# MAGIC %md The labels (segment 0 is the largest).

# COMMAND ----------

from jobs.notebook import show_table

show_table(spark, dbutils, "segments", ["segment_id"], ["segment_id", "n_users", "label"], n=30)
