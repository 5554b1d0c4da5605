"""Column functions on array<float> vectors, shared by every stage that builds or compares embeddings."""

from __future__ import annotations

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import CENTRED_FLOOR, NORM_EPSILON, VECTOR_COL


def in_sum_order(rows: DataFrame, key: str, *order: str) -> DataFrame:
    """`rows` with each `key`'s rows in one partition, sorted by `order`: a float sum per key over it then gives the
    same bits on every run. Summed as map outputs arrive (a table rewritten in another file order, a shuffle
    fetched in another order), the same rows round differently: a re-run after such a rewrite moved 160 of
    ML-100K's 943 user vectors by up to 1.5e-8, enough to swap two neighbours whose similarities tied."""
    return rows.repartition(key).sortWithinPartitions(key, *order)


def l2_normalize(vector: Column) -> Column:
    """Unit-length copy of an array<float> column (null stays null; a zero vector stays zero, never NaN).

    The norm is the aggregate's accumulator, bound once in its `finish` lambda: written as
    `transform(v, x -> x / sqrt(aggregate(v, ...)))`, Spark would recompute the norm for every element (O(dim^2)).
    """
    return F.aggregate(
        vector,
        F.lit(0.0),
        lambda acc, x: acc + x * x,
        lambda acc: F.transform(vector, lambda x: (x / F.greatest(F.sqrt(acc), F.lit(NORM_EPSILON))).cast("float")),
    )


def concat_unit(vectors: list[Column]) -> Column:
    """One unit vector from several: each part made unit-length and scaled by 1 / sqrt(parts), then concatenated, so
    the cosine of two such vectors is the mean of their parts' cosines (null when any part is null)."""
    scale = len(vectors) ** -0.5
    return F.concat(*[F.transform(l2_normalize(v), lambda x: (x * scale).cast("float")) for v in vectors])


def mean_vector(vectors: DataFrame, column: str = VECTOR_COL) -> DataFrame:
    """One column `_mean`: the mean of `column` over its non-null rows (MLlib `Summarizer`, O(dim)), in one row, or
    in none when there is no such row."""
    # Grouped on a constant, not a global aggregate: that would be one row even of no input, and Summarizer fails
    # on it ("Nothing has been added to this summarizer", e.g. a catalogue of no items).
    mean = vector_to_array(Summarizer.mean(array_to_vector(column)), "float32")
    return vectors.where(F.col(column).isNotNull()).groupBy(F.lit("one")).agg(mean.alias("_mean")).select("_mean")


def center(vectors: DataFrame, column: str = VECTOR_COL, reference: DataFrame | None = None) -> DataFrame:
    """Subtract a mean vector from `column`, then re-normalise to unit length.

    The mean is that of `reference` (a frame with the same vector column) when given, else of `vectors` itself:
    users encoded from text are moved by the catalogue's mean, so they live in the same centred space as the items
    they are compared with. The mean is joined back as a one-row broadcast; without one (no reference vector at all)
    the vectors are left as they are. A vector within `CENTRED_FLOOR` of the mean (a catalogue of identical texts)
    has no direction of its own left: it keeps its own, unit-length, so identical texts stay identical.
    """
    mean = mean_vector(vectors if reference is None else reference, column)
    centred = _centred(F.col(column), F.col("_mean"))
    joined = vectors.join(F.broadcast(mean), F.lit(True), "left")
    return joined.withColumn(column, F.when(F.col("_mean").isNull(), F.col(column)).otherwise(centred)).drop("_mean")


def _centred(vector: Column, mean: Column) -> Column:
    """`vector - mean`, unit-length; `vector` itself, unit-length, where the difference is below `CENTRED_FLOOR`."""
    diff = F.zip_with(vector, mean, lambda x, m: (x - m).cast("float"))
    return F.aggregate(
        diff,
        F.lit(0.0),
        lambda acc, x: acc + x * x,
        lambda acc: F.when(F.sqrt(acc) < F.lit(CENTRED_FLOOR), l2_normalize(vector)).otherwise(
            F.transform(diff, lambda x: (x / F.sqrt(acc)).cast("float"))
        ),
    )
