from __future__ import annotations

import datetime
import re

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.assets import movielens_dir
from behaviorlm.errors import InputContractError, TableNotFoundError
from behaviorlm.idcheck import near_ids
from behaviorlm.sources.movielens import MovieLensNotFoundError
from jobs import cli, ingest, report


def read(spark, cfg, name):
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def metrics(spark, cfg, run_id=None):
    rows = read(spark, cfg, "run_metrics").where(F.col("run_id") == (run_id or cfg.run_id)).collect()
    return {r["metric"]: r["value"] for r in rows}


def test_movielens_100k_ingest(spark, make_config):
    cfg = make_config(f"ingest.path={movielens_dir()}")
    counts = ingest.main(["--set", f"tables.root={cfg.tables.root}", "--run-id", cfg.run_id, "--set",
                          f"ingest.path={movielens_dir()}"])  # fmt: skip
    behaviors = read(spark, cfg, "behaviors")
    items = read(spark, cfg, "items")
    assert behaviors.count() == 100_000
    assert behaviors.select("user_id").distinct().count() == 943
    assert items.count() == 1682
    assert read(spark, cfg, "rejected_behaviors").count() == 0
    toy = items.where("item_id = '1'").first()
    assert (toy["title"], toy["year"], toy["genres"]) == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    # RecBole's defects are repaired, not rejected.
    land = items.where("item_id = '1412'").first()
    assert (land["title"], land["year"]) == ("Land Before Time III: The Time of the Great Giving", 1995)
    assert {c.table: (c.read, c.written, c.rejected) for c in counts} == {
        "items": (1682, 1682, 0),
        "behaviors": (100_000, 100_000, 0),
    }
    assert metrics(spark, cfg)["behaviors_written"] == 100_000


def test_rejected_rows_reconcile_and_rerun_is_idempotent(spark, make_config, capsys):
    overrides = ["ingest.source=synthetic", "ingest.synthetic.events=4000", "ingest.synthetic.bad_fraction=0.05"]
    cfg = make_config(*overrides)
    argv = [a for o in overrides for a in ("--set", o)] + ["--set", f"tables.root={cfg.tables.root}"]
    first = ingest.main([*argv, "--run-id", cfg.run_id])
    behaviors = {c.table: c for c in first}["behaviors"]
    assert behaviors.read == 4000 == behaviors.written + behaviors.rejected
    assert {"null_user_id", "unknown_event_type", "rating_out_of_range", "invalid_ts"} <= set(behaviors.reasons)
    # A reason a setting may fix is said with a row, though most rows were written (a second date format).
    said = f"{behaviors.reasons['invalid_ts']} of the 4000 rows of table 'behaviors' were rejected as invalid_ts, e.g."
    assert said in capsys.readouterr().err
    rejected = read(spark, cfg, "rejected_behaviors")
    assert rejected.count() == behaviors.rejected == sum(behaviors.reasons.values())
    assert rejected.where("reason is null").count() == 0
    m = metrics(spark, cfg)
    assert m["behaviors_read"] == m["behaviors_written"] + m["behaviors_rejected"]

    before = {name: read(spark, cfg, name).collect() for name in ("behaviors", "items", "rejected_behaviors")}
    ingest.main([*argv, "--run-id", cfg.run_id])
    for name, rows in before.items():
        assert_df_equality(read(spark, cfg, name), spark.createDataFrame(rows, read(spark, cfg, name).schema),
                           ignore_row_order=True)  # fmt: skip
    assert read(spark, cfg, "run_metrics").where(F.col("run_id") == cfg.run_id).count() == len(m)


def test_table_source_with_column_mapping(spark, make_config, tmp_path):
    src_b, src_i = str(tmp_path / "raw_events"), str(tmp_path / "raw_items")
    spark.createDataFrame(
        [("a", "x", "click", 1700000000), ("b", "x", "purchase", 1700000100), ("c", "y", "bogus", 1700000200)],
        "uid string, sku string, action string, epoch long",
    ).write.format("delta").save(src_b)
    spark.createDataFrame([("x", "Red shoes"), ("y", "Blue hat")], "sku string, name string").write.format(
        "delta"
    ).save(src_i)
    mapping = ["user_id=uid", "item_id=sku", "event_type=action", "ts=epoch"]
    overrides = [
        "ingest.source=table", f"ingest.behaviors_source={src_b}", f"ingest.items_source={src_i}",
        *[f"ingest.behavior_columns.{m}" for m in mapping], "ingest.item_columns.item_id=sku",
        "ingest.item_columns.title=name",
    ]  # fmt: skip
    cfg = make_config(*overrides)
    ingest.main([a for o in [*overrides, f"tables.root={cfg.tables.root}"] for a in ("--set", o)])
    assert sorted(r["user_id"] for r in read(spark, cfg, "behaviors").collect()) == ["a", "b"]
    assert read(spark, cfg, "rejected_behaviors").first()["reason"] == "unknown_event_type"
    assert read(spark, cfg, "items").count() == 2

    broken = [o.replace("ts=epoch", "ts=event_time") for o in overrides]
    with pytest.raises(InputContractError, match=rf"table '{src_b}': required column 'event_time'"):
        ingest.main([a for o in [*broken, f"tables.root={cfg.tables.root}"] for a in ("--set", o)])


def test_grouplens_layout_is_read_too(spark, make_config, tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t874965758\n2\t1\t3\t876893171\n")
    flags = "|".join(["0"] * 3 + ["1", "1"] + ["0"] * 14)  # Animation, Children's
    (folder / "u.item").write_bytes(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags}\n2|Caf\xe9 au lait (1994)|01-Jan-1994||http://y|"
        f"{'|'.join(['1'] + ['0'] * 18)}\n".encode("latin-1")
    )
    cfg = make_config(f"ingest.path={folder}")
    ingest.main(["--set", f"ingest.path={folder}", "--set", f"tables.root={cfg.tables.root}"])
    items = {r["item_id"]: r for r in read(spark, cfg, "items").collect()}
    assert (items["1"]["title"], items["1"]["year"], items["1"]["genres"]) == (
        "Toy Story", 1995, ["Animation", "Children's"]
    )  # fmt: skip
    assert (items["2"]["title"], items["2"]["genres"]) == ("Café au lait", None)
    assert read(spark, cfg, "behaviors").count() == 2


def test_missing_movielens_folder_is_a_clear_error(spark, make_config, tmp_path):
    with pytest.raises(MovieLensNotFoundError, match="holds neither ml-100k.inter"):
        ingest.main(["--set", f"ingest.path={tmp_path}", "--set", f"tables.root={tmp_path / 'delta'}"])


def test_reading_a_table_that_was_never_written(spark, make_config):
    cfg = make_config()
    with pytest.raises(TableNotFoundError, match="item_embeddings"):
        read(spark, cfg, "item_embeddings")


def table_source(spark, tmp_path, behaviors, items, *extra):
    """Overrides pointing ingest at `behaviors` / `items` written as Delta tables under `tmp_path` (canonical
    column names), plus `extra` overrides."""
    src_b, src_i = str(tmp_path / "src_events"), str(tmp_path / "src_items")
    behaviors.write.format("delta").save(src_b)
    items.write.format("delta").save(src_i)
    return ["ingest.source=table", f"ingest.behaviors_source={src_b}", f"ingest.items_source={src_i}", *extra]


def run_ingest(cfg, overrides, run_id=None):
    argv = [a for o in [*overrides, f"tables.root={cfg.tables.root}"] for a in ("--set", o)]
    return {c.table: c for c in ingest.main([*argv, "--run-id", run_id or cfg.run_id])}


def test_append_mode_adds_a_day_once_and_updates_items(spark, make_config, tmp_path, capfd):
    events = [
        ("2026-12-01", "a", "x", "click", "2026-12-01 10:00"),
        ("2026-12-01", "b", "y", "click", "2026-12-01 11:00"),
        ("2026-12-01", "d", "x", "teleport", "2026-12-01 12:00"),
        ("2026-12-02", "a", "x", "click", "2026-12-01 10:00"),  # delivered again: left as it is
        ("2026-12-02", "a", "y", "click", "2026-12-02 09:00"),  # an item of yesterday's catalogue, not today's
        ("2026-12-02", "c", "z", "click", "2026-12-02 09:30"),  # an item new in today's batch
        ("2026-12-02", "d", "x", "teleport", "2026-12-01 12:00"),  # rejected yesterday too: recorded for each day
    ]
    schema = "day string, user_id string, item_id string, event_type string, ts string"
    events = spark.createDataFrame(events, schema)
    items1 = spark.createDataFrame([("x", "Red shoes"), ("y", "Blue hat")], "item_id string, title string")
    day1 = [*table_source(spark, tmp_path / "day1", events, items1), "ingest.behaviors_where=day = '2026-12-01'"]
    cfg = make_config(*day1)
    run_ingest(cfg, day1, "2026-12-01")
    items2 = spark.createDataFrame([("z", "Green scarf"), ("x", "Red shoes, size 40")], "item_id string, title string")
    day2 = [*table_source(spark, tmp_path / "day2", events, items2), "ingest.mode=append",
            "ingest.behaviors_where=day = '2026-12-02'"]  # fmt: skip
    counts = run_ingest(cfg, day2, "2026-12-02")
    b = counts["behaviors"]
    assert (b.read, b.written, b.present, b.rejected, b.flagged) == (4, 2, 1, 1, {"unknown_item": 0})
    assert (counts["items"].written, counts["items"].present) == (2, 0)
    titles = {r["item_id"]: r["title"] for r in read(spark, cfg, "items").collect()}
    assert titles == {"x": "Red shoes, size 40", "y": "Blue hat", "z": "Green scarf"}
    pairs = sorted((r["user_id"], r["item_id"]) for r in read(spark, cfg, "behaviors").collect())
    assert pairs == [("a", "x"), ("a", "y"), ("b", "y"), ("c", "z")]
    rejected = sorted((r["run_id"], r["user_id"]) for r in read(spark, cfg, "rejected_behaviors").collect())
    assert rejected == [("2026-12-01", "d"), ("2026-12-02", "d")]
    # The report counts the latest batch's rejected rows, not every day's.
    assert report.rejected_counts(spark, cfg) == ("2026-12-02", [("rejected_behaviors: unknown_event_type", 1)])

    names = ("behaviors", "items", "rejected_behaviors", "rejected_items")
    before = {name: read(spark, cfg, name).collect() for name in names}
    again = run_ingest(cfg, day2, "2026-12-02")  # an Airflow retry of the same day
    b = again["behaviors"]
    assert (b.read, b.written, b.present, b.rejected) == (4, 0, 3, 1)
    assert (again["items"].written, again["items"].present) == (0, 2)
    for name, rows in before.items():
        assert_df_equality(read(spark, cfg, name), spark.createDataFrame(rows, read(spark, cfg, name).schema),
                           ignore_row_order=True)  # fmt: skip
    m = metrics(spark, cfg, "2026-12-02")
    assert m["behaviors_already_present"] == 3 and m["behaviors_batch_in_table"] == 3
    capfd.readouterr()
    with pytest.raises(InputContractError, match=r"ingest.behaviors_where 'dya = 1' cannot be applied.*'day'"):
        run_ingest(cfg, [*day2[:-1], "ingest.behaviors_where=dya = 1"])
    # A syntax error is explained too (its text starts with a blank line), and PySpark's own log of either error,
    # the JVM's stack as JSON, is not printed.
    with pytest.raises(InputContractError, match=r"'day = = 1' cannot be applied: \[PARSE_SYNTAX_ERROR\]"):
        run_ingest(cfg, [*day2[:-1], "ingest.behaviors_where=day = = 1"])
    assert "org.apache.spark" not in capfd.readouterr().err


def test_near_ids_pair_ids_that_differ_only_in_leading_zeros_or_case(spark):
    ids = spark.createDataFrame([("0104",), ("007",), ("0",), ("00",), ("0104",), ("K1",)], "user_id string")
    others = spark.createDataFrame([("104",), ("7",), ("0",), ("1040",), ("007",), ("k1",)], "user_id string")
    pairs = [("0104", "104"), ("007", "7"), ("00", "0"), ("K1", "k1")]  # "007" is not near itself
    expected = spark.createDataFrame(pairs, "user_id string, other string")
    assert_df_equality(near_ids(ids, others, "user_id"), expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("policy", ["keep", "reject"])
def test_unknown_items_are_counted_and_kept_or_rejected_and_epoch_ns_is_read(
    spark, make_config, tmp_path, policy, capsys
):
    behaviors = spark.createDataFrame(
        [
            ("a", "x", "click", 1_700_000_000_123),  # epoch milliseconds
            ("b", "gone", "click", 1_700_000_000),  # an item the catalogue does not have
            ("c", "gone", "teleport", 1_700_000_000),  # already bad: counted under its own reason only
            ("d", "x", "click", 1_700_000_000_123_456_789),  # epoch nanoseconds, by its size
            ("e", "007", "click", 1_700_000_000),  # the catalogue says "7": unknown, and warned of
            ("0104", "x", "click", 1_700_000_000),  # beside user "104": two users, warned of
            ("104", "x", "click", 1_700_000_001),
        ],
        "user_id string, item_id string, event_type string, ts long",
    )
    items = spark.createDataFrame([("x", "Red shoes"), ("7", "Blue hat")], "item_id string, title string")
    overrides = table_source(spark, tmp_path, behaviors, items, f"ingest.unknown_items={policy}")
    cfg = make_config(*overrides)
    capsys.readouterr()
    counts = run_ingest(cfg, overrides)["behaviors"]
    err = capsys.readouterr().err
    assert "1 unknown item id(s) of the behaviours match a catalogue id but for leading zeros or case, e.g." in err
    assert "1 user id(s) of the behaviours match another user id but for leading zeros, e.g. '0104'" in err
    # 2 of the 7 rows read name no catalogue item, said whether they are kept or rejected (it was said of neither).
    unknown = "2 of the 7 behaviours read name an item_id the items table does not hold"
    assert f"{unknown} (ingest.unknown_items={policy})" in err
    assert counts.read == 7 == counts.written + counts.rejected
    assert counts.flagged == {"unknown_item": 2}
    written = {r["user_id"]: r["ts"] for r in read(spark, cfg, "behaviors").collect()}
    assert written["a"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)
    assert written["d"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 123457)
    assert ("b" in written) == (policy == "keep")
    rejected = {r["user_id"]: r["reason"] for r in read(spark, cfg, "rejected_behaviors").collect()}
    expected = {"c": "unknown_event_type"} | ({"b": "unknown_item", "e": "unknown_item"} if policy == "reject" else {})
    assert rejected == expected
    m = metrics(spark, cfg)
    assert m["behaviors_unknown_item"] == 2
    assert m.get("behaviors_rejected_unknown_item", 0) == 2 * (policy == "reject")
    assert m["behaviors_read"] == m["behaviors_written"] + m["behaviors_rejected"]


def test_source_column_of_an_unsupported_type_is_named_before_spark_runs(spark, make_config, tmp_path):
    behaviors = spark.createDataFrame(
        [("a", "x", "click", [1])], "uid string, item_id string, event_type string, t array<int>"
    )
    items = spark.createDataFrame([("x", "Red shoes")], "item_id string, title string")
    overrides = table_source(
        spark, tmp_path, behaviors, items, "ingest.behavior_columns.user_id=uid", "ingest.behavior_columns.ts=t"
    )
    cfg = make_config(*overrides)
    expected = (
        r"src_events': column 't' \(canonical 'ts'\) has type array<int>; accepted types: numeric .*; string; timestamp"
    )
    with pytest.raises(InputContractError, match=expected):
        run_ingest(cfg, overrides)


def test_missing_source_path_is_one_clear_line(spark, make_config, tmp_path, capsys):
    missing = str(tmp_path / "no_such_events")
    overrides = ["ingest.source=table", f"ingest.behaviors_source={missing}", f"ingest.items_source={tmp_path}"]
    cfg = make_config(*overrides)
    argv = [a for o in [*overrides, f"tables.root={cfg.tables.root}"] for a in ("--set", o)]
    assert cli.main(["ingest", *argv]) == 2
    err = capsys.readouterr().err
    assert f"behaviorlm ingest: error: ingest.behaviors_source {missing!r} does not exist" in err
    assert "JVM stacktrace" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 5, err


def test_pandas_parquet_with_nanosecond_times_and_no_event_type_column(spark, make_config, tmp_path):
    """pandas writes datetime64[ns] as Parquet nanosecond timestamps, which Spark cannot read as timestamps. The
    catalogue beside it is a CSV file."""
    clicks, catalogue = tmp_path / "clicks", tmp_path / "catalogue"
    clicks.mkdir(), catalogue.mkdir()
    times = pd.to_datetime(["2024-03-01 10:00:00.123456789", "2024-03-01 11:00:00.000000000"])
    pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "x"], "ts": times}).to_parquet(clicks / "part-0.parquet")
    (catalogue / "items.csv").write_text("item_id,title\nx,Red shoes\n")  # a catalogue in another format
    source = ["ingest.source=table", "ingest.source_format=parquet", "ingest.items_format=csv"]
    source += [f"ingest.behaviors_source={clicks}", f"ingest.items_source={catalogue}"]
    with pytest.raises(InputContractError, match="'event_type'.* is missing.*set ingest.default_event_type"):
        run_ingest(make_config(*source), source)

    overrides = [*source, "ingest.default_event_type=click"]
    cfg = make_config(*overrides)
    result = run_ingest(cfg, overrides)
    counts = result["behaviors"]

    assert (counts.read, counts.written, counts.rejected) == (2, 2, 0) and result["items"].written == 1
    assert sorted(read(spark, cfg, "behaviors").select("user_id", "event_type", "ts").collect()) == [
        ("a", "click", datetime.datetime(2024, 3, 1, 10, 0, 0, 123457)),
        ("b", "click", datetime.datetime(2024, 3, 1, 11)),
    ]


def test_semicolon_csv_with_day_first_dates_is_read_with_reader_options_and_a_ts_format(
    spark, make_config, tmp_path, capsys
):
    """A European export: `;` between fields and dates as dd.MM.yyyy. Each setting it needs is named by the
    error or warning that the run without it gives."""
    (tmp_path / "events").mkdir(), (tmp_path / "catalogue").mkdir()
    (tmp_path / "events" / "e.csv").write_text("user_id;item_id;event_type;ts\na;x;click;01.03.2024 07:00\n"
                                               "b;x;view;02.03.2024 18:30\n")  # fmt: skip
    (tmp_path / "catalogue" / "c.csv").write_text("item_id;title\nx;Red shoes\n")
    source = ["ingest.source=table", "ingest.source_format=csv", f"ingest.behaviors_source={tmp_path / 'events'}"]
    source += [f"ingest.items_source={tmp_path / 'catalogue'}"]
    with pytest.raises(InputContractError, match="header reads as one column: set ingest.source_options.sep=';'"):
        run_ingest(make_config(*source), source)

    source += ["ingest.source_options.sep=;"]
    assert run_ingest(make_config(*source), source)["behaviors"].reasons == {"invalid_ts": 2}
    warning = "every one of the 2 rows .* invalid_ts \\(2\\), e.g. .*'ts': '01.03.2024 07:00'.*ingest.ts_format"
    assert re.search(warning, capsys.readouterr().err)

    overrides = [*source, "ingest.ts_format=dd.MM.yyyy HH:mm"]
    cfg = make_config(*overrides)
    assert run_ingest(cfg, overrides)["behaviors"].written == 2
    assert sorted(read(spark, cfg, "behaviors").select("user_id", "ts").collect()) == [
        ("a", datetime.datetime(2024, 3, 1, 7)),
        ("b", datetime.datetime(2024, 3, 2, 18, 30)),
    ]


def test_catalog_tables_missing_or_in_a_missing_schema_are_one_clear_line(spark, make_config):
    ref = delta.location_ref("items", "default.never_written_items")
    with pytest.raises(TableNotFoundError, match="catalog is in memory .*catalogImplementation: hive"):
        delta.read_table(spark, ref)
    with pytest.raises(TableNotFoundError, match="catalog table .*main.recs.items.*REQUIRES_SINGLE_PART_NAMESPACE"):
        delta.table_exists(spark, delta.location_ref("items", "main.recs.items"))

    # Spark would log a JVM stack trace from the aborted write first; the job stops before writing anything.
    cfg = make_config(f"ingest.path={movielens_dir()}")
    overrides = [f"ingest.path={movielens_dir()}", "tables.behaviors=no_such_schema.behaviors"]
    with pytest.raises(TableNotFoundError, match="behaviors .*schema 'no_such_schema' does not exist"):
        run_ingest(cfg, overrides)
    assert not delta.table_exists(spark, delta.table_ref(cfg.tables, "items"))


def test_reader_options_reach_a_delta_source_too(spark, tmp_path):
    """`ingest.source_options: {versionAsOf: 0}` re-ingests a Delta source as it was (time travel)."""
    source = str(tmp_path / "events")
    spark.createDataFrame([("a",)], "user_id string").write.format("delta").save(source)
    spark.createDataFrame([("b",)], "user_id string").write.format("delta").mode("append").save(source)
    assert delta.read_source(spark, source, "delta").count() == 2
    assert [r["user_id"] for r in delta.read_source(spark, source, "delta", {"versionAsOf": 0}).collect()] == ["a"]
