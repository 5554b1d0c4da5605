"""`behaviorlm.ml.TextEmbedder` with the real all-MiniLM-L6-v2 on real Spark: unit vectors that put paraphrases
together, nulls encoded as the empty-text fallback, and a Pipeline that saves and loads with the stage's params, on
a classic session and as a Spark Connect client."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import SparkSession
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from behaviorlm.assets import model_dir
from behaviorlm.ml import TextEmbedder

SCHEMA = StructType([StructField("id", IntegerType()), StructField("text", StringType())])
ROWS = [
    (1, "A cheap hotel close to the beach."),
    (2, "An inexpensive hotel near the seaside."),
    (3, "How do I reset my router password?"),
    (4, None),
    (5, "unknown item"),
]


def vectors(frame, col: str = "v") -> dict[int, np.ndarray]:
    return {r["id"]: np.asarray(r[col], dtype=np.float32) for r in frame.select("id", col).collect()}


def test_unit_vectors_paraphrases_close_and_null_is_the_fallback(spark):
    frame = spark.createDataFrame(ROWS, SCHEMA)
    out = TextEmbedder(inputCol="text", outputCol="v", emptyText="unknown item", batchSize=2).transform(frame)
    assert out.schema["v"].dataType.simpleString() == "array<float>" and out.columns == ["id", "text", "v"]
    got = vectors(out)
    assert sorted(got) == [1, 2, 3, 4, 5] and {v.shape for v in got.values()} == {(384,)}
    np.testing.assert_allclose([np.linalg.norm(v) for v in got.values()], 1.0, atol=1e-5)
    assert got[1] @ got[2] > got[1] @ got[3] + 0.3 and got[1] @ got[2] > got[2] @ got[3] + 0.3
    np.testing.assert_allclose(got[4], got[5], atol=1e-6)


@pytest.mark.parametrize("kind", ["classic", "connect"])
def test_pipeline_saves_and_loads_with_the_same_params_and_vectors(spark, connect, kind, tmp_path):
    with connect() if kind == "connect" else nullcontext(spark) as session:
        check_pipeline(session, tmp_path)


def check_pipeline(spark: SparkSession, tmp_path: Path) -> None:
    """Fit, save, load and transform: the loaded stage has the same params and gives the same vectors."""
    frame = spark.createDataFrame(ROWS[:4], SCHEMA)
    embedder = TextEmbedder(inputCol="text", outputCol="v", maxLength=64, batchSize=8)
    dims = SQLTransformer(statement="SELECT *, size(v) AS dim FROM __THIS__")
    model = Pipeline(stages=[embedder, dims]).fit(frame)
    model.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    stage = loaded.stages[0]
    assert isinstance(stage, TextEmbedder) and stage.uid == embedder.uid
    params = {p.name: v for p, v in stage.extractParamMap().items()}
    assert params == {p.name: v for p, v in embedder.extractParamMap().items()}
    assert params == {"inputCol": "text", "outputCol": "v", "modelPath": str(model_dir()), "batchSize": 8,
                      "maxLength": 64, "pooling": "mean", "backend": "transformers", "emptyText": ""}  # fmt: skip
    before, after = model.transform(frame), loaded.transform(frame)
    assert {r["dim"] for r in after.collect()} == {384}
    a, b = vectors(before), vectors(after)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)


def test_bad_input_is_refused_before_spark_runs(spark):
    frame = spark.createDataFrame([(1, "x")], SCHEMA)
    with pytest.raises(ValueError, match="no input column 'body'"):
        TextEmbedder(inputCol="body").transform(frame)
    with pytest.raises(ValueError, match="input column 'id' is IntegerType"):
        TextEmbedder(inputCol="id").transform(frame)
    with pytest.raises(ValueError, match="pooling 'max'"):
        TextEmbedder(pooling="max").transform(frame)
    assert TextEmbedder().setParams(outputCol="e").getOutputCol() == "e"
