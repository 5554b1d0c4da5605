"""Reading raw sources as ingest reads them (`behaviorlm.delta.read_source`): CSV files as pandas, Excel and Spark
write them."""

from __future__ import annotations

import pandas as pd

from behaviorlm import delta

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
