"""Reading raw sources as ingest reads them (`behaviorlm.delta.read_source`): CSV files as pandas, Excel and Spark
write them."""

from __future__ import annotations

import pandas as pd
import pytest

from behaviorlm import delta
from behaviorlm.errors import InputContractError
from tests.test_ingest import run_ingest

TITLES = [("x", "Toy Story\n(remastered)", "1995"), ("y", 'Say "Hi", Bob', "1999"), ("z", "C:\\films", "2000")]


def rows(frame):
    return sorted(tuple(r) for r in frame.select("item_id", "title", "year").collect())


def test_csv_values_with_quotes_and_line_breaks_are_read_whole(spark, tmp_path):
    """pandas writes a quote inside a value as "" and keeps a line break inside the quotes: Spark's defaults read
    `"Say ""Hi"", Bob"` as two shifted values and the two-line title as two rows, one of them a junk item."""
    pandas_csv, spark_csv = tmp_path / "pandas", tmp_path / "spark"
    pandas_csv.mkdir()
    pd.DataFrame(TITLES, columns=["item_id", "title", "year"]).to_csv(pandas_csv / "items.csv", index=False)
    assert rows(delta.read_source(spark, str(pandas_csv), "csv")) == TITLES
    # JSON text with escaped quotes in a value puts a backslash before a quote too: its doubled quotes decide.
    json_titles = [*TITLES, ("w", '{"k": "a \\"b\\""}', "2001")]
    pd.DataFrame(json_titles, columns=["item_id", "title", "year"]).to_csv(pandas_csv / "items.csv", index=False)
    assert rows(delta.read_source(spark, str(pandas_csv), "csv")) == sorted(json_titles)
    # Spark's own writer escapes a quote with a backslash: that file is read whole too.
    written = spark.createDataFrame(TITLES, "item_id string, title string, year string")
    written.coalesce(1).write.option("header", "true").csv(str(spark_csv))
    assert "escape" not in delta.csv_options(spark, str(spark_csv), {})
    assert rows(delta.read_source(spark, str(spark_csv), "csv")) == TITLES
    # A reader option given in any case wins over the default.
    assert delta.csv_options(spark, str(pandas_csv), {"MULTILINE": "false"}) == {"header": "true", "escape": '"',
                                                                                "MULTILINE": "false"}  # fmt: skip
    assert "escape" not in delta.csv_options(spark, str(pandas_csv), {"quote": "'"})  # a " is no quote there


def test_a_default_event_type_and_a_comma_catalogue_beside_semicolon_events(spark, make_config, tmp_path):
    """Events without an event_type column, `;`-separated, beside a comma catalogue. The error listed an event_type
    column the file lacks (the default, added before the check) and lost the separator hint; the catalogue had to
    take the events' reader options."""
    (tmp_path / "events").mkdir(), (tmp_path / "catalogue").mkdir()
    (tmp_path / "events" / "e.csv").write_text("uid;sku;ts\na;x;2024-03-01 07:00:00\n")
    (tmp_path / "catalogue" / "c.csv").write_text("item_id,title\nx,Red shoes\n")
    source = ["ingest.source=table", "ingest.source_format=csv", f"ingest.behaviors_source={tmp_path / 'events'}",
              f"ingest.items_source={tmp_path / 'catalogue'}", "ingest.default_event_type=click",
              "ingest.behavior_columns.user_id=uid", "ingest.behavior_columns.item_id=sku"]  # fmt: skip
    one_column = r"columns present: \['uid;sku;ts'\]; the header reads as one column: set ingest.source_options.sep=';'"
    with pytest.raises(InputContractError, match=one_column):
        run_ingest(make_config(*source), source)
    source += ["ingest.source_options.sep=;"]
    with pytest.raises(InputContractError, match=r"catalogue'.*set ingest.items_source_options.sep=','"):
        run_ingest(make_config(*source), source)
    source += ["ingest.items_source_options.sep=,"]
    counts = run_ingest(make_config(*source), source)
    assert (counts["behaviors"].written, counts["items"].written) == (1, 1)
