"""Ingest: load raw behaviours and items (MovieLens-100K, the synthetic generator, or any table with a column
mapping), validate them against the input contract, and write the `behaviors` and `items` Delta tables plus
`rejected_behaviors` / `rejected_items` with a `reason` and the run id per bad row. Counts reconcile: read = written
+ rejected (+ already present, for a batch appended with `ingest.mode: append`).

Run: `behaviorlm ingest --conf conf/local.yaml` (or `spark-submit jobs/ingest.py --conf conf/local.yaml`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pyspark import StorageLevel
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from behaviorlm import delta, idcheck
from behaviorlm.config import Config, IngestConfig
from behaviorlm.errors import BehaviorLMError, InputContractError
from behaviorlm.schemas import (
    BEHAVIOR_COLUMNS,
    BEHAVIORS,
    ITEM_COLUMNS,
    ITEMS,
    REASON,
    REASON_HINTS,
    REQUIRED_BEHAVIOR_COLUMNS,
    REQUIRED_ITEM_COLUMNS,
    UNKNOWN_ITEM,
)
from behaviorlm.sources.movielens import read_movielens
from behaviorlm.sources.synthetic import Spec, generate_behaviors, generate_items
from behaviorlm.validate import (
    accepted,
    check_columns,
    check_types,
    rejected,
    rename_to_canonical,
    tag_behaviors,
    tag_items,
    tag_unknown_items,
    with_default,
)
from jobs.runtime import job_main, write_metrics

log = logging.getLogger(__name__)

# A behaviour dated later than the ingest's own clock plus this slack (for clocks and zones) is `future_ts`: left in,
# it would be every user's latest behaviour and the test side of every time split.
FUTURE_SLACK = timedelta(days=1)


class ReconciliationError(BehaviorLMError, RuntimeError):
    """Rows read do not equal rows written (or already present) plus rows rejected."""


@dataclass(frozen=True)
class LoadCounts:
    table: str
    read: int
    written: int
    rejected: int
    reasons: dict[str, int]
    flagged: dict[str, int] = field(default_factory=dict)  # rows with each flag column true, e.g. unknown_item
    present: int = 0  # append mode: valid rows whose key was in the table already, left as they were


# Append mode: the keys a batch's valid rows are merged on, and whether a row already there takes the batch's
# values. A behaviour is left as it was, so re-running a day adds nothing; an item takes its corrected text.
# (Rejected rows are not merged: each run replaces its own, under its run id.)
APPEND_KEYS = {"items": (["item_id"], True), "behaviors": (["user_id", "item_id", "event_type", "ts"], False)}


def _read_tables(spark: SparkSession, ing: IngestConfig) -> tuple[DataFrame, DataFrame]:
    """The `table` source: both tables read, renamed to canonical columns, and their columns' presence and types
    checked against the contract."""
    behaviors = delta.read_source(spark, ing.behaviors_source, ing.source_format, ing.source_options,
                                  "ingest.behaviors_source")  # fmt: skip
    if ing.behaviors_where:
        behaviors = _where(behaviors, ing.behaviors_where, ing.behaviors_source)
    item_options = ing.source_options if ing.items_source_options is None else ing.items_source_options
    items = delta.read_source(spark, ing.items_source, ing.items_format or ing.source_format, item_options,
                              "ingest.items_source")  # fmt: skip
    b_map, i_map = ing.behavior_columns.model_dump(), ing.item_columns.model_dump()
    # Checked before the default event type is added: the columns an error lists are the source's own.
    typed = ing.default_event_type is None
    required = [c for c in REQUIRED_BEHAVIOR_COLUMNS if typed or c != "event_type"]
    mapping = b_map if typed else {**b_map, "event_type": "event_type"}
    check_columns(behaviors, ing.behaviors_source, mapping, required, "ingest.behavior_columns")
    behaviors = with_default(behaviors, b_map["event_type"], ing.default_event_type)
    check_columns(items, ing.items_source, i_map, REQUIRED_ITEM_COLUMNS, "ingest.item_columns",
                  "ingest.items_source_options")  # fmt: skip
    behaviors = rename_to_canonical(behaviors, b_map, BEHAVIOR_COLUMNS)
    items = rename_to_canonical(items, i_map, ITEM_COLUMNS)
    check_types(behaviors, ing.behaviors_source, b_map)
    check_types(items, ing.items_source, i_map)
    return behaviors, items


def _where(df: DataFrame, condition: str, table: str) -> DataFrame:
    """`df` filtered by the SQL `condition`, or an error naming the table and the setting."""
    try:
        return df.where(condition)
    except (AnalysisException, ParseException) as exc:
        raise InputContractError(
            f"table {table!r}: ingest.behaviors_where {condition!r} cannot be applied: {delta.first_line(exc)}; "
            f"columns present: {sorted(df.columns)}"
        ) from None


def extract(spark: SparkSession, cfg: Config) -> tuple[DataFrame, DataFrame]:
    """Raw (behaviors, items) with canonical column names, from the configured source.

    Raises:
        TableNotFoundError: a `table` source does not exist.
        InputContractError: a source lacks a required column or has a column of a type the contract does not
            accept; raised before any Spark job runs.
    """
    ing = cfg.ingest
    if ing.source == "movielens":
        return read_movielens(spark, ing.path)
    if ing.source == "synthetic":
        spec = Spec(**ing.synthetic.model_dump())
        return generate_behaviors(spark, spec), generate_items(spark, spec)
    return _read_tables(spark, ing)


def transform(
    raw_behaviors: DataFrame, raw_items: DataFrame, cfg: Config, catalogue: DataFrame | None = None
) -> tuple[DataFrame, DataFrame]:
    """Tag every raw row with a rejection reason (null = valid); behaviours also get the `unknown_item` flag.

    The known items are the valid items of this same run (what `load` writes to `items`) and, in append mode, the
    `catalogue` already ingested, so a behaviour is checked against the catalogue it is published with. Behaviours
    dated after now + FUTURE_SLACK are `future_ts`, before `ingest.earliest_ts` `early_ts`.
    """
    ing = cfg.ingest
    tagged_items = tag_items(raw_items)
    latest = datetime.now(timezone.utc) + FUTURE_SLACK
    tagged_behaviors = tag_behaviors(
        raw_behaviors,
        ing.event_types,
        ing.rating_min,
        ing.rating_max,
        ing.ts_unit,
        ing.ts_format,
        latest,
        ing.earliest_ts,
    )
    known = accepted(tagged_items, ITEMS).select("item_id")
    if catalogue is not None:
        known = known.unionByName(catalogue.select("item_id"))
    return tag_unknown_items(tagged_behaviors, known, reject=ing.unknown_items == "reject"), tagged_items


def _write(rows: DataFrame, ref: delta.TableRef, n: int, append: tuple[list[str], bool] | None) -> tuple[int, int]:
    """Write the `n` `rows` to `ref`: replace the table, or with `append` = (keys, update) merge them in on keys.
    Returns (rows offered, rows written): both from Delta's own metrics, except that a merge which writes nothing
    commits nothing, and then all `n` were offered."""
    spark = rows.sparkSession
    if append is None:
        delta.overwrite(rows, ref)
        written = delta.written_rows(spark, ref)
        return written, written
    if n == 0 and delta.table_exists(spark, ref):
        return 0, 0  # an empty batch: nothing to commit
    written = delta.merge(rows, ref, append[0], update=append[1])
    # Delta commits nothing when every row was there already; otherwise its commit counts the rows offered.
    return (delta.offered_rows(spark, ref) if written else n), written


def load_split(
    tagged: DataFrame,
    schema: T.StructType,
    raw_columns: list[str],
    refs: tuple[delta.TableRef, delta.TableRef],
    flags: tuple[str, ...] = (),
    append: tuple[list[str], bool] | None = None,
    run_id: str = "",
) -> LoadCounts:
    """Write valid rows to `refs[0]` and rejected rows, with `run_id`, to `refs[1]`, then reconcile the counts
    against Delta's own commit metrics. Full snapshots, or with `append` = (keys, update) valid rows merged in on
    keys and this run's rejected rows replaced (a retry records them once, another day's are kept). `flags` names
    boolean columns of `tagged` whose true rows are counted too."""
    good, bad = refs
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # One small action: a row per reason (null = valid), so the counts cost a single pass over the input.
        aggs = [F.count(F.lit(1)).alias("count"), *[F.count_if(F.col(f)).alias(f) for f in flags]]
        rows = tagged.groupBy(REASON).agg(*aggs).collect()
        reasons = {r[REASON]: r["count"] for r in rows}
        flagged = {f: sum(r[f] for r in rows) for f in flags}
        offered, written = _write(accepted(tagged, schema), good, reasons.get(None, 0), append)
        bad_rows = rejected(tagged, raw_columns)
        if append:
            n_rejected = delta.replace_run(bad_rows, bad, run_id)
        else:
            delta.overwrite(bad_rows.withColumn("run_id", F.lit(run_id)), bad)
            n_rejected = delta.written_rows(tagged.sparkSession, bad)
    finally:
        tagged.unpersist()
    read = sum(reasons.values())
    present = offered - written
    counts = LoadCounts(good.name, read, written, n_rejected, {k: v for k, v in reasons.items() if k}, flagged, present)
    if read != offered + n_rejected or not 0 <= written <= offered:
        raise ReconciliationError(
            f"{good}: read {read} != written {written} + already present {present} + rejected {n_rejected}"
        )
    log.info("%s: read=%d = written=%d + %srejected=%d %s %s", good.name, read, written,
             f"already present={present} + " if append else "", n_rejected, counts.reasons, flagged)  # fmt: skip
    return counts


# Shares of a table's rows that get a warning: one reason's rejected rows (with the setting that may keep them), and
# kept behaviours of items the catalogue lacks.
HINTED_SHARE, UNKNOWN_SHARE = 0.01, 0.1
# What an empty table means downstream.
_EMPTY = {
    "behaviors": "every later stage will write empty tables",
    "items": "no item has a text, and every behaviour's item is unknown to the catalogue",
}


def _example(bad_rows: DataFrame, reason: str) -> dict:
    """One rejected row for `reason`, its non-null values."""
    row = bad_rows.where(F.col(REASON) == reason).drop(REASON, "run_id").first()
    return {k: v for k, v in (row.asDict() if row else {}).items() if v is not None}


def warn_rejections(counts: LoadCounts, source: str, bad_rows: DataFrame, batch: bool) -> None:
    """Log a warning when no valid row was read, which is rarely what the user meant: what an empty table means
    downstream, or, when rows were rejected, the most common reason, one rejected row and the likely setting. For a
    `batch` appended to existing tables an empty items batch is usual (the catalogue did not change): no warning.
    Where rows were written, each reason a setting may fix that took at least `HINTED_SHARE` of the rows (a second
    date format) gets one line with a row. `bad_rows`: this run's rejected rows."""
    if counts.written or counts.present:
        for reason, n in sorted(counts.reasons.items()):
            # Unknown items are rejected only when asked to; a few odd rows in millions ask nothing of the user.
            if reason in REASON_HINTS and reason != UNKNOWN_ITEM and n >= HINTED_SHARE * counts.read:
                log.warning("%d of the %d rows of table %r were rejected as %s, e.g. %s; %s", n, counts.read, source,
                            reason, _example(bad_rows, reason), REASON_HINTS[reason])  # fmt: skip
        return
    if not counts.rejected:
        if not batch:
            log.warning("table %r holds no rows: %s", source, _EMPTY[counts.table])
        elif counts.table == "behaviors":
            log.warning("table %r holds no rows: no behaviour to append", source)
        return
    reason, n = max(counts.reasons.items(), key=lambda kv: kv[1])
    log.warning(
        "every one of the %d rows of table %r was rejected; the most common reason is %s (%d), e.g. %s%s",
        counts.read, source, reason, n, _example(bad_rows, reason),
        f"; {REASON_HINTS[reason]}" if reason in REASON_HINTS else "",
    )  # fmt: skip


def warn_near_ids(
    spark: SparkSession, cfg: Config, behaviors: tuple[delta.TableRef, delta.TableRef], items: delta.TableRef
) -> None:
    """`idcheck.warn_unknown_items` of what was written (kept ids in `behaviors`, rejected ones of this run), not of
    the source read again."""
    catalogue = delta.read_table(spark, items).select("item_id")
    kept = delta.read_table(spark, behaviors[0]).select("item_id").distinct().join(catalogue, "item_id", "left_anti")
    rejected = delta.read_table(spark, behaviors[1]).where(
        (F.col("run_id") == cfg.run_id) & (F.col(REASON) == UNKNOWN_ITEM)
    )
    idcheck.warn_unknown_items(kept.unionByName(rejected.select("item_id")), catalogue)


def load(spark: SparkSession, cfg: Config, tagged_behaviors: DataFrame, tagged_items: DataFrame) -> list[LoadCounts]:
    append = cfg.ingest.mode == "append"
    keys = APPEND_KEYS if append else {}

    def refs(name: str) -> tuple[delta.TableRef, delta.TableRef]:
        return delta.table_ref(cfg.tables, name), delta.table_ref(cfg.tables, f"rejected_{name}")

    # An empty batch of items is usual once there is a catalogue, not before.
    batch = append and delta.table_exists(spark, refs("items")[0])
    results = [
        load_split(tagged_items, ITEMS, ITEM_COLUMNS, refs("items"), (), keys.get("items"), cfg.run_id),
        load_split(
            tagged_behaviors,
            BEHAVIORS,
            BEHAVIOR_COLUMNS,
            refs("behaviors"),
            (UNKNOWN_ITEM,),
            keys.get("behaviors"),
            cfg.run_id,
        ),
    ]
    sources = (cfg.ingest.items_source, cfg.ingest.behaviors_source) if cfg.ingest.source == "table" else ("", "")
    for c, source in zip(results, sources):
        bad_rows = delta.read_table(spark, refs(c.table)[1]).where(F.col("run_id") == cfg.run_id)
        warn_rejections(c, source or c.table, bad_rows, batch)
        unknown = c.flagged.get(UNKNOWN_ITEM, 0)
        if unknown >= UNKNOWN_SHARE * c.read > 0:  # ids that do not match the catalogue's spelling
            log.warning("%d of the %d behaviours read name an item_id the items table does not hold (ingest."
                        "unknown_items=%s): compare the two sources' item ids", unknown, c.read,
                        cfg.ingest.unknown_items)  # fmt: skip
        if c.flagged.get(UNKNOWN_ITEM, 0):
            warn_near_ids(spark, cfg, refs("behaviors"), refs("items")[0])
    # The whole table: the warning repeats with each batch until the ids are respelt (the table holds both all along).
    idcheck.warn_padded_users(delta.read_table(spark, refs("behaviors")[0]).select("user_id"))
    metrics: dict[str, float] = {}
    for c in results:
        metrics.update({f"{c.table}_read": c.read, f"{c.table}_written": c.written, f"{c.table}_rejected": c.rejected})
        # A retry of a day writes nothing (the first attempt did) and replaces the day's metrics: `in_table` says the
        # batch's valid rows are there either way, so a retried day does not read as a day that loaded nothing.
        metrics.update({f"{c.table}_already_present": c.present, f"{c.table}_batch_in_table": c.written + c.present}
                       if append else {})  # fmt: skip
        metrics.update({f"{c.table}_rejected_{reason}": n for reason, n in c.reasons.items()})
        metrics.update({f"{c.table}_{flag}": n for flag, n in c.flagged.items()})
    write_metrics(spark, cfg, "ingest", metrics)
    return results


def run(spark: SparkSession, cfg: Config) -> list[LoadCounts]:
    raw_behaviors, raw_items = extract(spark, cfg)
    items = delta.table_ref(cfg.tables, "items")
    # Append mode: a batch's behaviours may name items ingested before.
    before = (
        delta.read_table(spark, items) if cfg.ingest.mode == "append" and delta.table_exists(spark, items) else None
    )
    tagged_behaviors, tagged_items = transform(raw_behaviors, raw_items, cfg, before)
    return load(spark, cfg, tagged_behaviors, tagged_items)


def main(argv: list[str] | None = None) -> list[LoadCounts]:
    return job_main(argv, "Ingest and validate behaviours and items into Delta tables.", "ingest", run)


if __name__ == "__main__":
    main()
