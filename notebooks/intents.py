# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm: intents
# MAGIC Messages to intents and answers: a classifier (MLlib, on the frozen embeddings) trained on `intent_examples`
# MAGIC labels every row of `messages`, fills its `intent_answers` template, and answers "out of scope" (intent null,
# MAGIC `fallback` true) below a confidence threshold chosen on validation data, into `message_intents`. Runs
# MAGIC `behaviorlm run --stages intents` for the widgets' run id; without `intent_examples` and `messages` tables the
# MAGIC stage writes nothing.

# COMMAND ----------

from jobs.notebook import define_widgets, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import run

result = run.main(run_args(dbutils, "intents"))
result

# COMMAND ----------

from jobs.notebook import show_table

show_table(spark, dbutils, "message_intents", ["message_id"])
