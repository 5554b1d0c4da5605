"""Column functions on array<float> vectors, shared by the stages that build or compare embeddings."""

from __future__ import annotations

from pyspark.sql import Column
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
