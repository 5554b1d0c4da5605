# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm quickstart
# MAGIC Ingest MovieLens-100K (or your own tables, via the `overrides` widget: `ingest.source=table; ...`), then run
# MAGIC every stage and look at the results. Every cell calls the same job functions as `behaviorlm <command>`;
# MAGIC nothing is re-implemented here. Install the wheel on the cluster first (`%pip install behaviorlm-*.whl`)
# MAGIC and point `model.path` at a model folder on a volume (`overrides`: `model.path=/Volumes/...`).

# COMMAND ----------

from jobs.notebook import define_widgets, job_args, run_args

define_widgets(dbutils)

# COMMAND ----------

from jobs import ingest, run

ingest.main(job_args(dbutils))
result = run.main(run_args(dbutils))

# COMMAND ----------

from jobs.tables import main as list_tables

list_tables(job_args(dbutils))
print("run report:", result["report"])

# COMMAND ----------

# The encoder as a pyspark.ml stage for your own Pipeline (the model folder is the one the widgets configure);
# `display(...)` the result on Databricks.
from behaviorlm.ml import TextEmbedder
from jobs.runtime import parse_job_args

model_path = parse_job_args(job_args(dbutils), "notebook").model.path
texts = spark.createDataFrame([("a cheap hotel near the beach",), (None,)], "text string")
TextEmbedder(inputCol="text", outputCol="embedding", modelPath=model_path).transform(texts).show(truncate=60)
