from __future__ import annotations

import pytest
from pydantic import ValidationError

from behaviorlm.config import Config, ConfigError, cache_dir, load_config
from behaviorlm.delta import location_ref, table_ref
from tests.conftest import REPO


def test_default_yaml_spells_out_the_dataclass_defaults():
    assert load_config([str(REPO / "conf" / "default.yaml")]) == load_config([])


def test_defaults_expand_the_cache_variable():
    cfg = load_config([])
    assert cfg.model.path == f"{cache_dir()}/models/all-MiniLM-L6-v2"
    assert "${" not in cfg.ingest.path


def test_overrides_are_yaml_typed_and_reach_nested_sections():
    cfg = load_config(overrides=["ingest.synthetic.users=77", "ingest.rating_max=10", "ingest.source=synthetic"])
    assert cfg.ingest.synthetic.users == 77
    assert cfg.ingest.rating_max == 10.0 and isinstance(cfg.ingest.rating_max, float)
    assert cfg.ingest.source == "synthetic"
    # A value YAML cannot read is the text it is: a comma separator was a raw ParserError.
    # From a file that leaves the optional mapping null; `|` is a bar, not YAML's block scalar.
    cfg = load_config(
        [str(REPO / "conf" / "default.yaml")], ["ingest.items_source_options.sep=,", "ingest.source_options.sep=|"]
    )
    assert (cfg.ingest.items_source_options, cfg.ingest.source_options) == ({"sep": ","}, {"sep": "|"})
    cfg = load_config(overrides=['ingest.source_options.nullValue=""', "ingest.source_options.sep=-"])
    assert cfg.ingest.source_options == {"nullValue": "", "sep": "-"}  # quotes still make an empty text
    with pytest.raises(ConfigError, match=r"--set value '\{sep: ;' is not valid YAML"):
        load_config(overrides=["ingest.source_options={sep: ;"])


def test_spark_conf_keys_keep_their_dots():
    cfg = load_config(overrides=["spark.conf.spark.sql.shuffle.partitions=3"])
    assert cfg.spark.conf == {"spark.sql.shuffle.partitions": "3"}


def test_later_files_override_earlier_ones(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("model:\n  batch_size: 8\n  max_length: 64\n")
    b.write_text("model:\n  batch_size: 16\n")
    cfg = load_config([str(a), str(b)])
    assert (cfg.model.batch_size, cfg.model.max_length) == (16, 64)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ingest.colour=red", "unknown config key 'ingest.colour'"),
        ("model.batch_size=big", "config key 'model.batch_size': expected an integer, got 'big'"),
        ("model.batch_size=true", "expected an integer"),
        ("ingest.event_types=view", "config key 'ingest.event_types': expected a list"),
        ("ingest.source=kafka", "config key 'ingest.source': 'kafka' is not one of"),
        ("recommend.onboarding.features=words", "config key 'recommend.onboarding.features': 'words' is not one of"),
        ("recommend.onboarding.max_ids=0", "recommend.onboarding.max_ids"),
        ("recommend.item_model.max_items=20000", "recommend.item_model.max_items.*less than or equal to 10000"),
        ("recommend.onboarding.holdout=1.0", "recommend.onboarding.holdout"),
        ("ingest.rating_min=6", "ingest.rating_min"),
        ("ingest.synthetic.in_cluster=1.5", "ingest.synthetic.in_cluster"),
        ("ingest.default_event_type=tap", "ingest.default_event_type 'tap' is not one of ingest.event_types"),
        ("ingest.source=table", "needs 'ingest.behaviors_source'"),
        # An accepted type with no weight would have been ingested and then weighed 0 everywhere (nobody served).
        ("ingest.event_types=[view, add_to_cart]", "'add_to_cart' but embed.event_weights gives it no weight"),
        ("novalue", "--set expects key=value"),
        ("tables.root.x=1", "config key 'tables.root': expected a string"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(overrides=[override])


def test_missing_file_and_unset_variable(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([str(tmp_path / "nope.yaml")])
    monkeypatch.delenv("BEHAVIORLM_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=r"\$\{BEHAVIORLM_NOT_SET\} is not set"):
        load_config(overrides=["tables.root=${BEHAVIORLM_NOT_SET}/x"])


def test_config_is_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        Config().run_id = "x"  # type: ignore[misc]


def test_table_locations_path_catalog_or_under_root():
    cfg = load_config(overrides=["tables.root=s3://bucket/lake", "tables.items=main.recs.items"])
    assert table_ref(cfg.tables, "behaviors").location == "s3://bucket/lake/behaviors"
    items = table_ref(cfg.tables, "items")
    assert (items.location, items.is_path) == ("main.recs.items", False)
    assert location_ref("x", "/data/t").is_path and location_ref("x", "dbfs:/t").location == "dbfs:/t"
    with pytest.raises(KeyError, match="no table named 'root'"):
        table_ref(cfg.tables, "root")
