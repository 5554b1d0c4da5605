"""Interest segments: item vectors clustered by cosine with Spark MLlib (`KMeans` or `BisectingKMeans`), and readable
labels for them.

`choose_k` picks the number of segments from a grid by the cosine silhouette (`ClusteringEvaluator`) on a seeded
sample; `cluster_items` assigns every item a segment and its cosine to the segment's centroid. Segment ids are dense,
0 for the largest segment. k is clamped to the number of items - 1 (a clustering with one item per segment says
nothing), so tiny catalogues work: 1 or 2 items make one segment, without MLlib.

Labels (`describe_segments`): the dominant value of a categorical item attribute with its share, the most central
items (medoids: highest cosine to the centroid) by title, and the distinctive terms of the segment's item texts by
class-based TF-IDF (each segment's texts as one document: `RegexTokenizer`, `StopWordsRemover`, `CountVectorizer`,
`IDF`), e.g. "Sci-Fi 72% · Star Wars; Return of the Jedi; Alien · space, alien, future".

Vectors given to these functions must be valid (non-null, non-zero, one length: see `neighbors.split_valid`).
"""

from __future__ import annotations

import math

from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import IDF, CountVectorizer, RegexTokenizer, StopWordsRemover
from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from behaviorlm.constants import ITEM_COL, SEED, SIMILARITY_COL, VECTOR_COL
from behaviorlm.summaries import smallest_by_hash
from behaviorlm.text import clean_text, short_name
from behaviorlm.users import weighted_mean_vectors
from behaviorlm.vectors import l2_normalize

SEGMENT_COL = "segment_id"
ALGORITHMS = ("kmeans", "bisecting")
BELOW_CAP = 6  # k values tried under the cap when the grid is for a larger catalogue (`_ks`)
_FEATURES = "_features"
_CLUSTER = "_cluster"
# Chinese and Japanese are written without spaces: a Han character is a token by itself, a kana run is one token.
# Every other script: runs of 2+ letters, marks and digits (Hangul is written with spaces, so it falls here).
_CJK = r"\p{IsHan}\p{InHiragana}\p{InKatakana}"
TOKEN_PATTERN = rf"\p{{IsHan}}|\p{{InHiragana}}+|\p{{InKatakana}}+|[\p{{L}}\p{{M}}\p{{N}}&&[^{_CJK}]]{{2,}}"


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


def _item_text(items: DataFrame, text_cols: tuple[str, ...]) -> Column:
    present = [F.col(c).cast("string") for c in text_cols if c in items.columns]
    return F.concat_ws(" ", *present) if present else F.lit("")


def _top_terms_udf(vocabulary: list[str], n: int):
    """Top `n` terms of one segment: by TF-IDF, then by count (a term in every segment has IDF 0, so one segment
    alone is still labelled by its most frequent terms), then alphabetically. Runs on k rows only."""

    def top(tfidf, tf):  # no hints: Spark would read them as a pandas UDF's
        order = sorted(tf.indices, key=lambda i: (-tfidf[int(i)], -tf[int(i)], vocabulary[int(i)]))
        return [vocabulary[int(i)] for i in order[:n]]

    return F.udf(top, ArrayType(StringType()))


def segment_terms(
    items: DataFrame,
    item_segments: DataFrame,
    n_terms: int = 3,
    text_cols: tuple[str, ...] = ("title", "description"),
    id_col: str = ITEM_COL,
    min_count: int = 2,
    text_sample: int = 5000,
    seed: int = SEED,
) -> DataFrame:
    """(segment_id, top_terms array<string>): each segment's distinctive terms by class-based TF-IDF over its items'
    text (`text_cols`, nulls skipped): each item's text is tokenised, each of its terms counted once, and a
    segment's bag of terms is the union of its items' (its "document"); a term's count is then the number of the
    segment's items that use it. A term must be used by `min_count` items: a word of one title says nothing about
    the segment (with short texts such as titles, the one-off words of obscure items would fill the label, tied
    and then sorted alphabetically). At most `text_sample` items of a segment (a seeded pick) make its document,
    which bounds the size of one row. A segment without such terms gets an empty list."""
    picked = Window.partitionBy(SEGMENT_COL).orderBy(F.xxhash64(F.col(id_col).cast("string"), F.lit(seed)), id_col)
    members = item_segments.select(id_col, SEGMENT_COL, F.row_number().over(picked).alias("_r"))
    texts = members.where(F.col("_r") <= text_sample).join(
        items.select(id_col, _item_text(items, text_cols).alias("_t")), id_col, "left"
    )
    tokenizer = RegexTokenizer(inputCol="_t", outputCol="_tokens", pattern=TOKEN_PATTERN, gaps=False)
    remover = StopWordsRemover(inputCol="_tokens", outputCol="_words")
    per_item = remover.transform(tokenizer.transform(texts.fillna("", ["_t"])))
    union = F.flatten(F.collect_list(F.array_distinct("_words")))
    words = per_item.groupBy(SEGMENT_COL).agg(union.alias("_words")).cache()
    if words.where(F.size("_words") > 0).limit(1).count() == 0:  # CountVectorizer refuses an empty vocabulary
        out = _local(words.select(SEGMENT_COL, F.array().cast("array<string>").alias("top_terms")))
    else:
        counted = CountVectorizer(inputCol="_words", outputCol="_tf", minTF=float(min_count)).fit(words)
        tf = counted.transform(words)
        scored = IDF(inputCol="_tf", outputCol="_tfidf").fit(tf).transform(tf)
        top = _top_terms_udf(counted.vocabulary, n_terms)(F.col("_tfidf"), F.col("_tf"))
        out = _local(scored.select(SEGMENT_COL, top.alias("top_terms")))
    words.unpersist()
    return out


def _local(small: DataFrame) -> DataFrame:
    """A frame of one row per segment computed now and held on the driver, so that later joins and writes re-run
    none of the plan behind it (text pipelines, model fits)."""
    return small.sparkSession.createDataFrame(small.collect(), small.schema)


def segment_medoids(
    items: DataFrame, item_segments: DataFrame, n_items: int = 3, title_col: str = "title", id_col: str = ITEM_COL
) -> DataFrame:
    """(segment_id, medoid_items array<string>): the `n_items` items closest to each centroid, by title (the item
    id where the title is missing), closest first."""
    title = F.col(title_col).cast("string") if title_col in items.columns else F.lit(None).cast("string")
    named = item_segments.join(items.select(id_col, title.alias("_title")), id_col, "left")
    order = Window.partitionBy(SEGMENT_COL).orderBy(F.col(SIMILARITY_COL).desc(), F.col(id_col))
    name = F.coalesce(short_name(clean_text(F.col("_title"))), F.col(id_col).cast("string"))
    top = named.select(SEGMENT_COL, F.row_number().over(order).alias("_r"), name.alias("_name")).where(
        F.col("_r") <= n_items
    )
    ordered = F.array_sort(F.collect_list(F.struct("_r", "_name")))
    return top.groupBy(SEGMENT_COL).agg(F.transform(ordered, lambda s: s["_name"]).alias("medoid_items"))


def dominant_attribute(items: DataFrame, item_segments: DataFrame, attribute: str, id_col: str = ITEM_COL) -> DataFrame:
    """(segment_id, attribute_value, attribute_share): the value of `attribute` (a string or array column of
    `items`) carried by the most items of each segment, and the share of the segment's items that carry it.
    Segments whose items have no value are absent."""
    multi = dict(items.dtypes)[attribute].startswith("array")
    value = F.explode(attribute) if multi else F.col(attribute)
    values = items.select(id_col, value.alias("_v")).withColumn("_v", F.trim(F.col("_v").cast("string")))
    labels = values.where(F.col("_v") != "").distinct()
    sizes = item_segments.groupBy(SEGMENT_COL).agg(F.count("*").alias("_size"))
    counts = item_segments.join(labels, id_col).groupBy(SEGMENT_COL, "_v").agg(F.count("*").alias("_c"))
    order = Window.partitionBy(SEGMENT_COL).orderBy(F.col("_c").desc(), "_v")
    best = counts.withColumn("_r", F.row_number().over(order)).where(F.col("_r") == 1).join(sizes, SEGMENT_COL)
    return best.select(SEGMENT_COL, F.col("_v").alias("attribute_value"),
                       (F.col("_c") / F.col("_size")).cast("double").alias("attribute_share"))  # fmt: skip


def label(value: Column, share: Column, medoids: Column, terms: Column, segment: Column) -> Column:
    """The label "<value> <share>% · <medoids> · <terms>", missing parts omitted ("segment <id>" when all are)."""
    parts = F.concat_ws(
        " · ",
        F.when(value.isNotNull(), F.format_string("%s %d%%", value, F.round(share * 100).cast("int"))),
        # Titles hold commas ("Godfather, The"): items are set apart by semicolons.
        F.when(F.size(medoids) > 0, F.array_join(medoids, "; ")),
        F.when(F.size(terms) > 0, F.array_join(terms, ", ")),
    )
    return F.when(parts != "", parts).otherwise(F.concat(F.lit("segment "), segment.cast("string")))


def describe_segments(
    items: DataFrame,
    item_segments: DataFrame,
    n_terms: int = 3,
    n_items: int = 3,
    attribute: str = "genres",
    text_cols: tuple[str, ...] = ("title", "description"),
    title_col: str = "title",
    id_col: str = ITEM_COL,
    seed: int = SEED,
) -> DataFrame:
    """(segment_id, label, top_terms, medoid_items, attribute_share, n_items, cohesion), one row per segment, computed
    at once (a small frame on the driver). Cohesion is the mean cosine of the segment's items to its centroid.
    `attribute` "" or absent from `items`: no attribute part (attribute_share null)."""
    stats = item_segments.groupBy(SEGMENT_COL).agg(
        F.count("*").alias("n_items"), F.avg(SIMILARITY_COL).cast("double").alias("cohesion")
    )
    terms = segment_terms(items, item_segments, n_terms, text_cols, id_col, seed=seed)
    medoids = segment_medoids(items, item_segments, n_items, title_col, id_col)
    out = stats.join(terms, SEGMENT_COL, "left").join(medoids, SEGMENT_COL, "left")
    if attribute and attribute in items.columns:
        out = out.join(dominant_attribute(items, item_segments, attribute, id_col), SEGMENT_COL, "left")
    else:
        out = out.select("*", F.lit(None).cast("string").alias("attribute_value"),
                         F.lit(None).cast("double").alias("attribute_share"))  # fmt: skip
    none = F.array().cast("array<string>")
    out = out.withColumn("top_terms", F.coalesce("top_terms", none)).withColumn(
        "medoid_items", F.coalesce("medoid_items", none)
    )
    text = label(F.col("attribute_value"), F.col("attribute_share"), F.col("medoid_items"), F.col("top_terms"),
                 F.col(SEGMENT_COL))  # fmt: skip
    return _local(out.select(SEGMENT_COL, text.alias("label"), "top_terms", "medoid_items", "attribute_share",
                             "n_items", "cohesion"))  # fmt: skip
