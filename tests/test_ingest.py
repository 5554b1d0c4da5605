from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from behaviorlm import delta
from behaviorlm.assets import movielens_dir
from behaviorlm.sources.movielens import MovieLensNotFoundError
from behaviorlm.errors import InputContractError, TableNotFoundError
from jobs import ingest


def read(spark, cfg, name):
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def metrics(spark, cfg):
    rows = read(spark, cfg, "run_metrics").where(F.col("run_id") == cfg.run_id).collect()
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


def test_rejected_rows_reconcile_and_rerun_is_idempotent(spark, make_config):
    overrides = ["ingest.source=synthetic", "ingest.synthetic.events=4000", "ingest.synthetic.bad_fraction=0.05"]
    cfg = make_config(*overrides)
    argv = [a for o in overrides for a in ("--set", o)] + ["--set", f"tables.root={cfg.tables.root}"]
    first = ingest.main([*argv, "--run-id", cfg.run_id])
    behaviors = {c.table: c for c in first}["behaviors"]
    assert behaviors.read == 4000 == behaviors.written + behaviors.rejected
    assert {"null_user_id", "unknown_event_type", "rating_out_of_range", "invalid_ts"} <= set(behaviors.reasons)
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
