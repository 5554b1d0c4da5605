"""The one Delta Lake I/O module: where a table lives, reading it, and idempotent writes.

A table setting is a path (contains '/' or '://'), a catalog table (dotted name, e.g. `main.recs.items`), or a
bare word, which becomes a path under `tables.root`. Writes are idempotent: a full `overwrite` of a snapshot, a
`merge` on keys, or `replace_where` on a run id, so re-running a job on the same input leaves the same tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from behaviorlm.config import TablesConfig
from behaviorlm.errors import TableNotFoundError
from behaviorlm.files import is_uri
from behaviorlm.session import is_connect

CSV_DEFAULTS = {"header": "true", "multiLine": "true"}
CSV_SAMPLE_LINES = 10_000
# Options of Spark's file sources that choose which files are read: the escape sample reads the same ones.
_FILE_OPTIONS = {"pathglobfilter", "recursivefilelookup", "modifiedbefore", "modifiedafter", "ignorecorruptfiles",
                 "ignoremissingfiles", "linesep"}  # fmt: skip


@dataclass(frozen=True)
class TableRef:
    name: str  # the logical name in config, e.g. "behaviors"
    location: str  # a path or a catalog table name
    is_path: bool

    def __str__(self) -> str:
        return f"{self.name} ({'path ' if self.is_path else 'catalog table '}{self.location})"


def table_ref(tables: TablesConfig, name: str) -> TableRef:
    """Resolve the logical table `name` (a field of `TablesConfig`) to a path or catalog table."""
    value = getattr(tables, name, None)
    if not isinstance(value, str) or name not in tables.names():
        raise KeyError(f"no table named {name!r} in config section 'tables'")
    return location_ref(name, value, tables.root)


def location_ref(name: str, value: str, root: str = "") -> TableRef:
    if is_uri(value):
        return TableRef(name, value, True)
    if "/" in value:
        return TableRef(name, os.path.abspath(value), True)
    if "." in value:
        return TableRef(name, value, False)
    base = root if is_uri(root) else os.path.abspath(root)
    return TableRef(name, f"{base.rstrip('/')}/{value}", True)


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    if ref.is_path:
        return _is_delta_path(spark, ref.location)
    try:
        return spark.catalog.tableExists(ref.location)
    except AnalysisException as exc:  # e.g. a three-part name where the catalog takes two
        raise TableNotFoundError(f"catalog table {ref}: {first_line(exc)}") from None


def _check_schema(spark: SparkSession, ref: TableRef) -> None:
    """Fail in one line before a catalog table is written into a schema that does not exist: Spark itself would
    log a JVM stack trace from the aborted write task first."""
    schema = ref.location.rpartition(".")[0]
    try:
        found = spark.catalog.databaseExists(schema)
    except AnalysisException as exc:
        raise TableNotFoundError(f"catalog table {ref}: {first_line(exc)}") from None
    if not found:
        raise TableNotFoundError(f"cannot write {ref}: schema {schema!r} does not exist (CREATE SCHEMA {schema})")


def check_schemas(spark: SparkSession, tables: TablesConfig) -> None:
    """Fail before any work when a configured catalog table's schema does not exist (paths need nothing)."""
    catalog = [ref for ref in (table_ref(tables, name) for name in tables.names()) if not ref.is_path]
    for ref in {ref.location.rpartition(".")[0]: ref for ref in catalog}.values():  # one check per schema
        _check_schema(spark, ref)


def first_line(exc: Exception) -> str:
    # The first line says what is wrong; the rest is the JVM's stack trace, of no use to the reader.
    return str(exc).strip().splitlines()[0]


def _is_delta_path(spark: SparkSession, path: str) -> bool:
    if not is_connect(spark):
        return DeltaTable.isDeltaTable(spark, path)
    # Spark Connect: Delta's Python API needs a server plugin there; SQL does not. Delta 4.4 raises for a path that
    # is not a table; some versions describe it instead, with another format.
    try:
        row = spark.sql(f"DESCRIBE DETAIL {_sql_path(path)}").select("format").first()
    except AnalysisException as exc:
        if exc.getCondition() == "DELTA_MISSING_DELTA_TABLE":
            return False
        raise
    return row is not None and row["format"] == "delta"


def _listed(spark: SparkSession, path: str) -> bool | None:
    """On Spark Connect (no Hadoop file system on this side): whether Spark lists a file at `path` (a file, or in
    the folder; names starting with `_` or `.` are not listed, so a folder holding only `_SUCCESS` counts as empty
    here), None when the path does not exist. Recursive lookup: no partition columns guessed from folder names
    (a table whose partitioning changed would make the guess fail)."""
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    try:
        return len(files.load(path).select("path").take(1)) > 0
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            return None
        raise


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists, on any file system Spark can reach (local, DBFS, object stores)."""
    if is_connect(spark):
        return _listed(spark, path) is not None
    jpath = spark._jvm.org.apache.hadoop.fs.Path(path)
    return bool(jpath.getFileSystem(spark._jsc.hadoopConfiguration()).exists(jpath))


def input_exists(spark: SparkSession, ref: TableRef) -> bool:
    """Whether an optional input table (queries, messages, ...) exists. A path that holds files but no Delta table
    is an error, not an absent input: a `queries` table written as Parquet was otherwise skipped in silence. (Only
    for inputs: a folder of ours left by a failed first write must not stop the retry.)"""
    if table_exists(spark, ref):
        return True
    if ref.is_path and _holds_files(spark, ref.location):
        raise TableNotFoundError(
            f"table {ref} is not a Delta table: the folder holds files but no _delta_log. Write it with "
            f"format('delta'), or convert a Parquet folder once: CONVERT TO DELTA parquet.`{ref.location}`"
        )
    return False


def _holds_files(spark: SparkSession, path: str) -> bool:
    """Whether `path` is a file or a folder with anything in it (an empty folder is as good as none; on Spark
    Connect, see `_listed`, so is one holding only hidden files)."""
    if is_connect(spark):
        return bool(_listed(spark, path))
    jpath = spark._jvm.org.apache.hadoop.fs.Path(path)
    fs = jpath.getFileSystem(spark._jsc.hadoopConfiguration())
    return bool(fs.exists(jpath)) and (fs.getFileStatus(jpath).isFile() or len(fs.listStatus(jpath)) > 0)


def read_table(spark: SparkSession, ref: TableRef) -> DataFrame:
    if not table_exists(spark, ref):
        raise TableNotFoundError(
            f"Delta table {ref} does not exist; run the stage that writes it first{_catalog_hint(spark, ref)}"
        )
    return spark.read.format("delta").load(ref.location) if ref.is_path else spark.read.table(ref.location)


def _catalog_hint(spark: SparkSession, ref: TableRef) -> str:
    """Why a catalog table written by an earlier job can be missing: a local session's catalog lives in memory."""
    if ref.is_path or spark.conf.get("spark.sql.catalogImplementation") != "in-memory":
        return ""
    return (
        ". This session's catalog is in memory (local mode without a metastore), so catalog tables last one process:"
        " set spark.conf spark.sql.catalogImplementation: hive (a Derby metastore in the working folder) or give"
        " the tables as paths"
    )


def read_source(
    spark: SparkSession,
    location: str,
    fmt: str,
    options: Mapping[str, object] | None = None,
    setting: str = "source",
) -> DataFrame:
    """Read a raw input table in any Spark format (delta, parquet, csv, json, orc, or a catalog table); `options` are
    the reader's options for a path (for a CSV, over `csv_options`' defaults). Errors name `setting`, the setting
    that gave `location` (e.g. "complete.pairs")."""
    ref = location_ref(setting, location)
    if ref.is_path and not path_exists(spark, ref.location):
        raise TableNotFoundError(f"{setting} {location!r} does not exist (looked for {ref.location})")
    try:
        if not ref.is_path:
            return spark.read.table(ref.location)
        if fmt == "parquet":
            # Spark has no nanosecond timestamp type: without this, a file pandas wrote (datetime64[ns]) fails in the
            # first task with a JVM stack trace. As nanoseconds since the epoch, ingest's ts parsing reads it.
            spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        given = dict(options or {})
        if fmt == "csv":
            given = csv_options(spark, ref.location, given)
        return spark.read.format(fmt).options(**given).load(ref.location)
    except AnalysisException as exc:
        raise TableNotFoundError(f"cannot read {setting} {location!r} as {fmt}: {first_line(exc)}") from None


def csv_options(spark: SparkSession, location: str, options: Mapping[str, object]) -> dict[str, object]:
    """A CSV reader's options: `options` over these defaults (Spark's keys are case-insensitive, so a default is
    dropped when `options` names it in any case):
    - `header`: true;
    - `multiLine`: true: a quoted value may hold a line break (a title over two lines became two junk rows);
    - `escape`: `"`, RFC 4180's doubled quote, as pandas, Excel, Python's csv module and databases write it (Spark's
      default read `"Say ""Hi"", Bob"` as two shifted values); not when `quote` is another character, nor when the
      first lines escape quotes as Spark's own writer does (`_backslash_escaped`).
    """
    given = {k.lower(): v for k, v in options.items()}
    defaults = {k: v for k, v in CSV_DEFAULTS.items() if k.lower() not in given}
    if "escape" not in given and given.get("quote", '"') == '"' and not _backslash_escaped(spark, location, options):
        defaults["escape"] = '"'
    return {**defaults, **options}


def _backslash_escaped(spark: SparkSession, location: str, options: Mapping[str, object]) -> bool:
    """Whether the first `CSV_SAMPLE_LINES` lines hold a backslash before a quote and no quote doubled inside a value
    (next to a letter or digit). Both occur in an RFC 4180 file of JSON text with escaped quotes in it: the doubled
    quotes decide it. The lines are those of the files the CSV reader lists (its file options)."""
    listing = {k: v for k, v in options.items() if k.lower() in _FILE_OPTIONS}
    lines = spark.read.options(**listing).text(location).limit(CSV_SAMPLE_LINES)
    found = lines.agg(
        F.max(F.col("value").contains('\\"').cast("int")).alias("backslash"),
        F.max(F.col("value").rlike(r'[\p{L}\p{N}]""|""[\p{L}\p{N}]').cast("int")).alias("doubled"),
    ).first()
    return found["backslash"] == 1 and found["doubled"] != 1


def _writer(df: DataFrame, mode: str):
    return df.write.format("delta").mode(mode)


def _save(writer: DataFrameWriter, ref: TableRef) -> None:
    if ref.is_path:
        writer.save(ref.location)
    else:
        writer.saveAsTable(ref.location)


def overwrite(df: DataFrame, ref: TableRef) -> None:
    """Replace the table's contents (and schema) with `df`: idempotent for snapshot loads."""
    if not ref.is_path:
        _check_schema(df.sparkSession, ref)
    _save(_writer(df, "overwrite").option("overwriteSchema", "true"), ref)


def replace_where(df: DataFrame, ref: TableRef, predicate: str) -> None:
    """Atomically replace the rows matching `predicate` (e.g. one run id) with `df`; create the table if new. Columns
    `df` adds are added to the table (its other rows hold null there): a newer version's run beside older runs."""
    if not table_exists(df.sparkSession, ref):
        overwrite(df, ref)
        return
    _save(_writer(df, "overwrite").option("replaceWhere", predicate).option("mergeSchema", "true"), ref)


def sql_string(value: str) -> str:
    """`value` as a Spark SQL string literal: quotes and backslashes escaped, so an id can never end the literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def replace_run(df: DataFrame, ref: TableRef, run_id: str, column: str = "run_id") -> int:
    """Write `df` as the rows of one run (adds `column` = run_id, replaces that run's rows); returns rows written."""
    replace_where(df.withColumn(column, F.lit(run_id)), ref, f"{_quote(column)} = {sql_string(run_id)}")
    return written_rows(df.sparkSession, ref)


def written_rows(spark: SparkSession, ref: TableRef) -> int:
    """Rows the table's latest commit wrote, from Delta's own commit metrics (no second pass over the data)."""
    return int(last_operation_metrics(spark, ref).get("numOutputRows", 0))


def _sql_name(ref: TableRef) -> str:
    """The table as Spark SQL names it: delta.`<path>`, or the catalog name. Merges and history go through SQL, not
    Delta's Python API: SQL runs on Spark Connect too, where that API needs a server plugin."""
    return _sql_path(ref.location) if ref.is_path else ref.location


def _sql_path(path: str) -> str:
    return f"delta.{_quote(path)}"


def _quote(name: str) -> str:
    """A column name or path as a quoted SQL identifier (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def merge(
    df: DataFrame,
    ref: TableRef,
    keys: list[str],
    changed: str | None = None,
    delete_missing: bool = False,
    update: bool = True,
) -> int:
    """Upsert `df` into the table on `keys`; create the table if new. Returns the rows inserted or updated (a row
    whose values are all equal is left alone), Delta's own count: a merge that changes nothing commits nothing, so
    the table's history cannot tell.

    Args:
        changed: name of a boolean column in `df`: only rows where it is true are inserted or updated (the column
            itself is not written). Lets the source list every current key while carrying new values for few.
        delete_missing: delete target rows whose key is absent from `df` (the target mirrors the source's keys).
        update: false: insert only, a row whose key is in the table already leaves it as it is (Delta's
            de-duplicating append).
    """
    spark = df.sparkSession
    columns = [c for c in df.columns if c != changed]
    if not table_exists(spark, ref):
        overwrite(df.where(F.col(changed)).select(columns) if changed else df, ref)
        return written_rows(spark, ref)
    named = [_quote(c) for c in columns]
    only = f" AND s.{_quote(changed)}" if changed else ""
    # A matched row is rewritten only where a value differs, so re-running on the same input commits nothing.
    differs = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c, name in zip(named, columns) if name not in keys)
    update_set = ", ".join(f"t.{c} = s.{c}" for c in named)
    clauses = [f"WHEN MATCHED{only} AND ({differs}) THEN UPDATE SET {update_set}"] if update and differs else []
    clauses.append(f"WHEN NOT MATCHED{only} THEN INSERT ({', '.join(named)}) VALUES (s.{', s.'.join(named)})")
    if delete_missing:
        clauses.append("WHEN NOT MATCHED BY SOURCE THEN DELETE")
    condition = " AND ".join(f"t.{_quote(k)} <=> s.{_quote(k)}" for k in keys)
    source = f"_merge_source_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(source)
    try:
        done = spark.sql(f"MERGE INTO {_sql_name(ref)} t USING {source} s ON {condition} {' '.join(clauses)}").first()
    finally:
        spark.catalog.dropTempView(source)
    return int(done["num_inserted_rows"]) + int(done["num_updated_rows"]) if done else 0


def offered_rows(spark: SparkSession, ref: TableRef) -> int:
    """Rows given to the table's latest commit: a `merge`'s source rows, or the rows of the write that created it."""
    m = last_operation_metrics(spark, ref)
    return int(m.get("numSourceRows", m.get("numOutputRows", 0)))


def last_operation_metrics(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """Delta's own metrics of the latest commit (e.g. `numOutputRows`), used to reconcile row counts."""
    row = spark.sql(f"DESCRIBE HISTORY {_sql_name(ref)} LIMIT 1").select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}
