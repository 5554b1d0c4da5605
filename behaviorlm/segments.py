"""Interest segments: item vectors clustered by cosine with Spark MLlib (`KMeans` or `BisectingKMeans`); their
readable labels are `behaviorlm.labels`.

`choose_k` picks the number of segments from a grid by the cosine silhouette (`ClusteringEvaluator`) on a seeded
sample; `cluster_items` assigns every item a segment and its cosine to the segment's centroid. Segment ids are dense,
0 for the largest segment. k is clamped to the number of items - 1 (a clustering with one item per segment says
nothing), so tiny catalogues work: 1 or 2 items make one segment, without MLlib.

Vectors given to these functions must be valid (non-null, non-zero, one length: see `neighbors.split_valid`).
"""

from __future__ import annotations

import math

from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import ITEM_COL, SEED, SIMILARITY_COL, VECTOR_COL
from behaviorlm.summaries import smallest_by_hash
from behaviorlm.users import weighted_mean_vectors
from behaviorlm.vectors import l2_normalize

SEGMENT_COL = "segment_id"
ALGORITHMS = ("kmeans", "bisecting")
BELOW_CAP = 6  # k values tried under the cap when the grid is for a larger catalogue (`_ks`)
_FEATURES = "_features"
_CLUSTER = "_cluster"


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"segments: algorithm {algorithm!r} is not one of {ALGORITHMS}")


def _estimator(k: int, seed: int, algorithm: str, max_iter: int) -> KMeans | BisectingKMeans:
    kind = KMeans if algorithm == "kmeans" else BisectingKMeans
    return kind(k=k, seed=seed, maxIter=max_iter, distanceMeasure="cosine", featuresCol=_FEATURES,
                predictionCol=_CLUSTER)  # fmt: skip


def _features(item_vectors: DataFrame, id_col: str, vector_col: str) -> DataFrame:
    """(id, vector, features) in a layout fixed by the ids alone: k-means' seeded start samples per partition, so
    rows read from a rewritten Delta table in another file order would otherwise make other segments."""
    feats = item_vectors.select(id_col, vector_col, array_to_vector(vector_col).alias(_FEATURES))
    return feats.repartition(id_col).sortWithinPartitions(id_col)


def clamp_k(k: int, n_items: int) -> int:
    """k within [1, n_items - 1]: every segment should hold more than one item on average; 1 for 2 items or fewer."""
    return max(1, min(k, n_items - 1))


def _silhouette(assigned: DataFrame) -> float:
    """Cosine silhouette of (_features, _cluster) rows; 0.0 where it is undefined (fewer than two clusters used)."""
    if assigned.select(_CLUSTER).distinct().limit(2).count() < 2:
        return 0.0
    evaluator = ClusteringEvaluator(featuresCol=_FEATURES, predictionCol=_CLUSTER, distanceMeasure="cosine")
    return float(evaluator.evaluate(assigned))


def _sample(frame: DataFrame, sample: int, seed: int, id_col: str) -> DataFrame:
    """A seeded sample of at most `sample` rows: the same rows on every run, whatever the partitioning."""
    return smallest_by_hash(frame, sample, F.xxhash64(F.col(id_col).cast("string"), F.lit(seed)), id_col)


def choose_k(
    item_vectors: DataFrame,
    k_grid: list[int],
    sample: int,
    seed: int = SEED,
    algorithm: str = "kmeans",
    max_iter: int = 30,
    id_col: str = ITEM_COL,
    vector_col: str = VECTOR_COL,
    min_size: int = 1,
) -> tuple[int, dict[int, float]]:
    """(the k of `k_grid` with the best cosine silhouette, {k: silhouette}), each k clustered and measured on one
    seeded sample of `sample` items; ties go to the smaller k. A grid made for a larger catalogue is scaled down to
    this one (`_ks`), so a small catalogue is not cut into segments of one or two items.
    When the sample holds every item, the chosen k's silhouette is that of `cluster_items` with the same k, seed,
    algorithm, max_iter and min_size: the sample is laid out as `cluster_items` lays out the items, so k-means starts
    alike."""
    _check_algorithm(algorithm)
    # Not cached: MLlib's KMeans starts differently on a cached input (it persists an uncached one itself), and
    # `cluster_items` fits an uncached one.
    picked = _features(_sample(item_vectors, sample, seed, id_col), id_col, vector_col)
    n = picked.count()
    # A sample of a tenth of the items holds a tenth of each segment: the minimum shrinks with it.
    sampled_min = math.ceil(min_size * n / max(item_vectors.count(), 1))
    scores: dict[int, float] = {}
    for k in _ks(k_grid, n, min_size):
        if k < 2:
            scores[k] = 0.0
            continue
        fitted = _estimator(k, seed, algorithm, max_iter).fit(picked).transform(picked)
        scores[k] = _silhouette(_merged(fitted, sampled_min, id_col, vector_col))
    return max(scores, key=lambda k: (scores[k], -k)), scores


def _ks(k_grid: list[int], n: int, min_size: int) -> list[int]:
    """The k values to try on `n` items: the grid's, clamped (`clamp_k`) and capped at n // `min_size` (at least 2);
    where the grid reaches past that cap, also BELOW_CAP values spread from 2 to it, for the silhouette to choose."""
    cap = clamp_k(max(2, n // max(min_size, 1)), n)
    ks = {min(clamp_k(k, n), cap) for k in k_grid}
    if max(k_grid) > cap >= 3:
        ks |= {round(2 + (cap - 2) * i / (BELOW_CAP - 1)) for i in range(BELOW_CAP)}
    return sorted(ks)


def _renumbered(assigned: DataFrame, id_col: str) -> DataFrame:
    """MLlib's cluster ids replaced by dense ids, 0 for the largest (ties: the smallest item id): stable across
    runs and free of gaps where a cluster came out empty."""
    sizes = assigned.groupBy(_CLUSTER).agg(F.count("*").alias("_n"), F.min(F.col(id_col).cast("string")).alias("_f"))
    # One row per cluster: one window partition is cheap (named, so Spark Connect's client does not warn about it).
    order = Window.partitionBy(F.lit(0)).orderBy(F.col("_n").desc(), "_f")
    ids = sizes.select(_CLUSTER, (F.row_number().over(order) - 1).cast("int").alias(SEGMENT_COL))
    return assigned.join(F.broadcast(ids), _CLUSTER).drop(_CLUSTER)


def _merged(assigned: DataFrame, min_size: int, id_col: str, vector_col: str) -> DataFrame:
    """`assigned` (id, vector, _cluster, ...) with the items of every cluster smaller than `min_size` moved to the
    cluster, among those of at least `min_size` items (the largest alone if none is), whose centroid is closest by
    cosine. k-means leaves such clusters (an outlier item, a few near-duplicates); a segment of one item is noise."""
    if min_size <= 1:
        return assigned
    sizes = {r[_CLUSTER]: r["_n"] for r in assigned.groupBy(_CLUSTER).agg(F.count("*").alias("_n")).collect()}
    largest = max(sizes, key=lambda c: (sizes[c], -c))
    small = [c for c, n in sizes.items() if n < min_size and c != largest]
    if not small:
        return assigned
    unit = assigned.select(id_col, _CLUSTER, l2_normalize(F.col(vector_col)).alias("vec"), F.lit(1.0).alias("w"))
    centroids = weighted_mean_vectors(unit.where(~F.col(_CLUSTER).isin(small)), _CLUSTER)
    moved = unit.where(F.col(_CLUSTER).isin(small)).drop(_CLUSTER).crossJoin(F.broadcast(centroids))
    # Ties go to the smaller cluster id, on every run.
    nearest = F.max_by(_CLUSTER, F.struct(dot(F.col("vec"), F.col("embedding")), -F.col(_CLUSTER)))
    target = moved.groupBy(id_col).agg(nearest.alias("_to"))
    joined = assigned.join(F.broadcast(target), id_col, "left")
    return joined.select(*[c for c in assigned.columns if c != _CLUSTER], F.coalesce("_to", _CLUSTER).alias(_CLUSTER))


def dot(a: Column, b: Column) -> Column:
    """Dot product of two array columns of one length."""
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda acc, x: acc + x)


def cluster_items(
    item_vectors: DataFrame,
    k: int,
    seed: int = SEED,
    algorithm: str = "kmeans",
    max_iter: int = 30,
    id_col: str = ITEM_COL,
    vector_col: str = VECTOR_COL,
    min_size: int = 1,
) -> DataFrame:
    """(id_col, segment_id int, similarity double): each item's segment and its cosine to the segment's centroid
    (the normalised mean of its members' unit vectors, what cosine k-means uses). k is clamped (`clamp_k`).
    A cluster of fewer than `min_size` items is dissolved into the nearest of the others (`_merged`)."""
    _check_algorithm(algorithm)
    feats = _features(item_vectors, id_col, vector_col)
    k = clamp_k(k, feats.count())
    if k < 2:  # MLlib needs k > 1; one segment needs no fitting
        assigned = feats.withColumn(_CLUSTER, F.lit(0))
    else:
        fitted = _estimator(k, seed, algorithm, max_iter).fit(feats).transform(feats)
        assigned = _merged(fitted, min_size, id_col, vector_col)
    members = _renumbered(assigned, id_col).select(id_col, SEGMENT_COL, l2_normalize(F.col(vector_col)).alias("vec"))
    centroids = weighted_mean_vectors(members.withColumn("w", F.lit(1.0)), SEGMENT_COL)
    joined = members.join(F.broadcast(centroids), SEGMENT_COL)
    similarity = dot(F.col("vec"), F.col("embedding")).cast("double")
    return joined.select(id_col, SEGMENT_COL, similarity.alias(SIMILARITY_COL))


def silhouette(
    item_vectors: DataFrame,
    item_segments: DataFrame,
    sample: int,
    seed: int = SEED,
    id_col: str = ITEM_COL,
    vector_col: str = VECTOR_COL,
) -> float:
    """Cosine silhouette of a segmentation on a seeded sample of `sample` items; 0.0 for a single segment."""
    assigned = _features(item_vectors, id_col, vector_col).join(
        item_segments.select(id_col, F.col(SEGMENT_COL).alias(_CLUSTER)), id_col
    )
    return _silhouette(_sample(assigned, sample, seed, id_col))
