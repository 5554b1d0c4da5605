"""`TextEmbedder`: the project's text encoder as a `pyspark.ml` Transformer, for use inside your own `Pipeline`.

It wraps the same encoder UDF the embedding jobs run (`embedding.make_embed_fn`: the model loads once per Python
worker, on the task's GPU when it has one). The output column is array<float> of L2-normalised vectors, as in the
rest of the project; null text is encoded as `emptyText`. The stage saves and loads with its pipeline
(`DefaultParamsWritable`): what it stores is its parameters, not the model. From a notebook:

    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer
    from behaviorlm.ml import TextEmbedder

    embedder = TextEmbedder(inputCol="text", outputCol="embedding")  # modelPath: the cached all-MiniLM-L6-v2
    model = Pipeline(stages=[embedder, SQLTransformer(statement="SELECT * FROM __THIS__")]).fit(df)
    model.transform(df).show()

For an ML Vector column (KMeans, LogisticRegression): `pyspark.ml.functions.array_to_vector(F.col("embedding"))`.
"""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from behaviorlm.assets import model_dir
from behaviorlm.constants import TEXT_COL, VECTOR_COL
from behaviorlm.embedding import MULTILINGUAL, TRANSFORMERS, make_embed_fn

POOLINGS = ("mean", "cls")
BACKENDS = (TRANSFORMERS, MULTILINGUAL)
_ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


def _param(name: str, doc: str, converter: Any) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class TextEmbedder(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Adds `outputCol`: the unit vector (array<float>) of the string column `inputCol`. Set parameters in the
    constructor or with `setParams(...)`; read them with `getOrDefault("modelPath")` and the like."""

    modelPath = _param("modelPath", "Hugging Face model folder (backend transformers)", TypeConverters.toString)
    batchSize = _param("batchSize", "texts per forward pass", TypeConverters.toInt)
    maxLength = _param("maxLength", "tokens kept per text (longer texts are truncated)", TypeConverters.toInt)
    pooling = _param("pooling", "token pooling: mean | cls", TypeConverters.toString)
    backend = _param("backend", f"encoder: {' | '.join(BACKENDS)}", TypeConverters.toString)
    emptyText = _param("emptyText", "text encoded in place of a null", TypeConverters.toString)

    def __init__(self, **params: Any) -> None:
        """Takes the keyword arguments of `setParams`."""
        super().__init__()
        self._setDefault(inputCol=TEXT_COL, outputCol=VECTOR_COL, modelPath=str(model_dir()), batchSize=64,
                         maxLength=128, pooling="mean", backend=TRANSFORMERS, emptyText="")  # fmt: skip
        self.setParams(**params)

    @keyword_only
    def setParams(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelPath: str | None = None,
        batchSize: int | None = None,
        maxLength: int | None = None,
        pooling: str | None = None,
        backend: str | None = None,
        emptyText: str | None = None,
    ) -> TextEmbedder:
        """Sets the given parameters; the others keep their values."""
        return self._set(**self._input_kwargs)

    def setInputCol(self, value: str) -> TextEmbedder:
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> TextEmbedder:
        return self._set(outputCol=value)

    def _check(self, dataset: DataFrame) -> None:
        """Raises `ValueError` before any Spark action when the input column or a parameter is wrong."""
        column = self.getInputCol()
        if column not in dataset.columns:
            raise ValueError(f"TextEmbedder: no input column {column!r}; the frame has {dataset.columns}")
        if not isinstance(dataset.schema[column].dataType, StringType):
            raise ValueError(f"TextEmbedder: input column {column!r} is {dataset.schema[column].dataType}, not string")
        if self.getOrDefault(self.pooling) not in POOLINGS:
            raise ValueError(f"TextEmbedder: pooling {self.getOrDefault(self.pooling)!r} is not one of {POOLINGS}")
        if self.getOrDefault(self.backend) not in BACKENDS:
            raise ValueError(f"TextEmbedder: backend {self.getOrDefault(self.backend)!r} is not one of {BACKENDS}")
        if self.getOrDefault(self.batchSize) < 1 or self.getOrDefault(self.maxLength) < 8:
            raise ValueError("TextEmbedder: batchSize must be >= 1 and maxLength >= 8")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check(dataset)
        spark = dataset.sparkSession
        embed = make_embed_fn(
            spark,
            self.getOrDefault(self.modelPath),
            max_length=self.getOrDefault(self.maxLength),
            pooling=self.getOrDefault(self.pooling),
            batch_size=self.getOrDefault(self.batchSize),
            empty_text=self.getOrDefault(self.emptyText),
            # The user's session keeps its own Arrow batch size: a pipeline stage does not retune it.
            arrow_batch_size=int(spark.conf.get(_ARROW_BATCH, "10000")),
            backend=self.getOrDefault(self.backend),
        )
        return dataset.withColumn(self.getOutputCol(), embed(F.col(self.getInputCol())))
