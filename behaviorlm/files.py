"""Text files beside the tables (the run report): a local path (Databricks volumes and workspace files are local
paths too: /Volumes/..., /Workspace/...) is read and written by this Python process; a file system URI (dbfs:/,
s3a://, abfss://...) is read through Spark and written through Hadoop's file system on a classic session. A Spark
Connect client has no Hadoop here, so a URI to write to is refused there, named with its setting, before any stage
runs (`check_writable`)."""

from __future__ import annotations

import os
import re

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from behaviorlm.errors import ConfigError
from behaviorlm.session import is_connect

GLOB_CHARS = re.compile(r"([\\\[\]{}*?])")


def is_uri(path: str) -> bool:
    """A file system URI (s3a://, abfss://, dbfs:/...), not a local path."""
    return "://" in path or path.startswith("dbfs:")


def check_writable(spark: SparkSession, path: str, setting: str) -> None:
    """Raise `ConfigError` naming `setting` when `write_text` could not write under `path` on this session."""
    if is_uri(path) and is_connect(spark):
        raise ConfigError(
            f"{setting}={path!r}: a Spark Connect session cannot write a single file to a file system URI (no Hadoop "
            f"on this side); give a local or mounted folder (on Databricks /Volumes/<catalog>/<schema>/<volume>/...)"
        )


def read_text(spark: SparkSession, path: str) -> str | None:
    """A text file's content, or None when it does not exist."""
    if not is_uri(path):
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    try:  # Spark reads a path as a glob: a run id with [ or * in it must name its own file only
        rows = spark.read.text(GLOB_CHARS.sub(r"\\\1", path), wholetext=True).collect()
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            return None
        raise
    return rows[0][0] if rows else ""


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a text file, replacing it (see `check_writable` for a URI on Spark Connect)."""
    if not is_uri(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    check_writable(spark, path, "path")
    jpath = spark._jvm.org.apache.hadoop.fs.Path(path)
    stream = jpath.getFileSystem(spark._jsc.hadoopConfiguration()).create(jpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
