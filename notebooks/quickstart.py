# Databricks notebook source
# MAGIC %md
# MAGIC # behaviorlm quickstart
# MAGIC Ingest MovieLens-100K (or your own tables), embed items and users. Every cell calls the same job functions
# MAGIC as `behaviorlm <command>`; nothing is re-implemented here. Install the wheel on the cluster first
# MAGIC (`%pip install behaviorlm-*.whl`) and point `model_path` at a model folder on DBFS / a volume.

# COMMAND ----------

try:
    dbutils  # noqa: F821  (defined on Databricks)
except NameError:  # running locally: a stand-in that serves widget defaults
    class _Widgets:
        def __init__(self):
            self.values = {}

        def text(self, name, default, label=None):
            self.values.setdefault(name, default)

        def get(self, name):
            return self.values[name]

    class dbutils:  # noqa: N801
        widgets = _Widgets()

dbutils.widgets.text("tables_root", "data/delta", "Delta tables root (path) ")
dbutils.widgets.text("source", "movielens", "ingest source: movielens | synthetic | table")
dbutils.widgets.text("model_path", "${BEHAVIORLM_CACHE}/models/all-MiniLM-L6-v2", "model folder")
dbutils.widgets.text("run_id", "notebook", "run id")

# COMMAND ----------

from jobs import embed_items, embed_users, ingest  # noqa: E402

args = [
    "--set", f"tables.root={dbutils.widgets.get('tables_root')}",
    "--set", f"ingest.source={dbutils.widgets.get('source')}",
    "--set", f"model.path={dbutils.widgets.get('model_path')}",
    "--run-id", dbutils.widgets.get("run_id"),
]  # fmt: skip

# COMMAND ----------

ingest.main(args)

# COMMAND ----------

embed_items.main(args)
embed_users.main(args)

# COMMAND ----------

from jobs.tables import main as list_tables  # noqa: E402

list_tables(args)
