"""Implicit-only behaviour logs (views, clicks, purchases; no rating anywhere) at ingest: both raw shapes become the
same table. The whole pipeline on such a log (3 users) is tests/test_run.py's."""

from __future__ import annotations

import pytest

from jobs import ingest
from tests.implicit_log import implicit_source
from tests.util import job_args, read


@pytest.mark.parametrize("rating_column", [False, True], ids=["no_rating_column", "rating_all_null"])
def test_ingest_takes_a_log_without_ratings(spark, make_config, tmp_path, rating_column):
    """Both shapes of an implicit-only log become the same table: every row kept, `rating` null in each."""
    cfg = make_config()
    ingest.main(job_args(cfg, *implicit_source(spark, tmp_path / "raw", 30, 300, rating_column)))
    behaviors = read(spark, cfg, "behaviors")
    assert behaviors.count() == 300 and behaviors.where("rating is not null").count() == 0
    assert read(spark, cfg, "rejected_behaviors").count() == 0
