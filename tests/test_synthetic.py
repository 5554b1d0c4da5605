from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import functions as F

from behaviorlm.config import load_config
from behaviorlm.sources.synthetic import generate_behaviors, generate_items, item_clusters, user_clusters


def synthetic(**overrides):
    return load_config(overrides=[f"ingest.synthetic.{k}={v}" for k, v in overrides.items()]).ingest.synthetic


def test_same_seed_same_rows_whatever_the_partitioning(spark):
    a = generate_behaviors(spark, synthetic(events=3000, partitions=2))
    b = generate_behaviors(spark, synthetic(events=3000, partitions=7))
    assert_df_equality(a, b, ignore_row_order=True)
    assert_df_equality(generate_items(spark, synthetic(partitions=1)), generate_items(spark, synthetic(partitions=5)))


def test_another_seed_gives_other_rows(spark):
    a = generate_behaviors(spark, synthetic(events=500, seed=1)).collect()
    b = generate_behaviors(spark, synthetic(events=500, seed=2)).collect()
    assert a != b


def test_sizes_and_value_domains(spark):
    cfg = synthetic(users=50, items=40, events=4000, clusters=4)
    events = generate_behaviors(spark, cfg)
    stats = events.agg(
        F.count("*").alias("n"),
        F.countDistinct("user_id").alias("users"),
        F.max(F.expr("cast(substr(item_id, 2) as int)")).alias("max_item"),
        F.collect_set("event_type").alias("types"),
        F.min("rating").alias("rmin"),
        F.max("rating").alias("rmax"),
    ).first()
    assert stats["n"] == 4000 and stats["users"] == 50 and stats["max_item"] < 40
    assert set(stats["types"]) == {"view", "click", "rating", "purchase"}
    assert stats["rmin"] >= 1.0 and stats["rmax"] <= 5.0
    assert events.where("event_type = 'rating'").where("rating is null").count() == 0
    assert generate_items(spark, cfg).count() == 40


def test_planted_clusters_are_the_ground_truth(spark):
    cfg = synthetic(users=200, items=120, events=20000, clusters=6, in_cluster=0.8)
    events = generate_behaviors(spark, cfg)
    joined = events.join(user_clusters(spark, cfg).withColumnRenamed("cluster", "uc"), "user_id").join(
        item_clusters(spark, cfg).withColumnRenamed("cluster", "ic"), "item_id"
    )
    share = joined.select(F.avg((F.col("uc") == F.col("ic")).cast("double"))).first()[0]
    # 80% planted in-cluster plus the uniform picks that land in-cluster by chance (1/6 of the other 20%).
    assert 0.8 < share < 0.87
    ratings = joined.where("event_type = 'rating'").groupBy((F.col("uc") == F.col("ic")).alias("same")).avg("rating")
    by_same = {r["same"]: r["avg(rating)"] for r in ratings.collect()}
    assert by_same[True] > 4.0 > 2.5 > by_same[False]


def test_bad_fraction_corrupts_that_share_of_rows(spark):
    cfg = synthetic(events=5000, bad_fraction=0.1)
    events = generate_behaviors(spark, cfg)
    bad = events.where("user_id is null or event_type = 'teleport' or rating > 5 or ts = 'not-a-time'").count()
    assert 400 < bad < 600
