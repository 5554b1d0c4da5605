"""List the Delta tables named in config with their row counts, read back through a plain Delta reader.

Run: `behaviorlm tables --conf conf/local.yaml` (`make demo` ends with it).
"""

from __future__ import annotations

from behaviorlm import delta
from behaviorlm.config import TablesConfig
from behaviorlm.session import get_spark
from jobs.runtime import parse_job_args


def table_counts(spark, tables: TablesConfig) -> list[tuple[str, str, int | None]]:
    """(name, location, rows or None when the table does not exist yet) for every configured table."""
    out = []
    for name in tables.names():
        ref = delta.table_ref(tables, name)
        exists = delta.table_exists(spark, ref)
        out.append((name, ref.location, delta.read_table(spark, ref).count() if exists else None))
    return out


def main(argv: list[str] | None = None) -> list[tuple[str, str, int | None]]:
    cfg = parse_job_args(argv, "List the configured Delta tables with row counts.")
    rows = table_counts(get_spark(cfg.spark), cfg.tables)
    width = max(len(name) for name, _, _ in rows)
    print(f"{'table':<{width}}  {'rows':>9}  location")
    for name, location, count in rows:
        print(f"{name:<{width}}  {'-' if count is None else count:>9}  {location}")
    return rows
