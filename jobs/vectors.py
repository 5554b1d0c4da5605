"""Column functions on array<float> vectors, shared by the stages that build or compare embeddings."""

from __future__ import annotations

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def l2_normalize(vector: Column) -> Column:
    """Unit-length copy of an array<float> column (null stays null).

    The norm is the aggregate's accumulator, bound once in its `finish` lambda: written as
    `transform(v, x -> x / sqrt(aggregate(v, ...)))`, Spark would recompute the norm for every element (O(dim^2)).
    """
    return F.aggregate(
        vector,
        F.lit(0.0),
        lambda acc, x: acc + x * x,
        lambda acc: F.transform(vector, lambda x: (x / F.sqrt(acc)).cast("float")),
    )


def center(vectors: DataFrame, column: str = "embedding") -> DataFrame:
    """Subtract the mean vector of `column` over all rows, then re-normalise to unit length.

    The mean is one MLlib `Summarizer` aggregate (O(dim) memory) joined back as a one-row broadcast.
    """
    mean = vectors.where(F.col(column).isNotNull()).select(
        vector_to_array(Summarizer.mean(array_to_vector(column)), "float32").alias("_mean")
    )
    centred = l2_normalize(F.zip_with(column, "_mean", lambda x, m: (x - m).cast("float")))
    return vectors.crossJoin(F.broadcast(mean)).withColumn(column, centred).drop("_mean")
