"""Intent matching on frozen embeddings: fit a classifier on labelled example texts, score messages, and say "out of
scope" when no intent fits well.

`logistic` (the default) fits MLlib's multinomial `LogisticRegression` on the example vectors (examples labelled
`oos_label` are a class of their own, never an answer), and blends its probability with a k-NN vote: each candidate
intent scores `KNN_WEIGHT` x its nearest example's cosine + (1 - `KNN_WEIGHT`) x its probability, from the blocked
exact k-NN of `behaviorlm.neighbors` (messages x examples; no example set is collected). The k-NN part knows how far
a message is from anything seen, which a softmax alone does not. `centroid` scores each intent by the cosine of the
message with the intent's mean example vector (MLlib `Summarizer`). Either way a message's confidence is its best
in-scope intent's score; below the threshold the message is out of scope (`intent` null, `fallback` true).

The threshold is chosen on held-out examples (`split_examples`, seeded, a share per intent): with out-of-scope
examples, the one that maximises (1 - `OOS_SHARE`) x in-scope accuracy + `OOS_SHARE` x out-of-scope recall, i.e. the
accuracy expected when `OOS_SHARE` of the messages are out of scope; without them, the confidence that keeps
1 - `NO_OOS_REJECT` of the correctly matched held-out examples in scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from behaviorlm.constants import BLOCK_SIZE, SEED, TEXT_COL, VECTOR_COL
from behaviorlm.errors import InputContractError
from behaviorlm.neighbors import exact_top_k
from behaviorlm.vectors import l2_normalize

INTENT_COL = "intent"
MESSAGE_COL = "message_id"
METHODS = ("logistic", "centroid")
OOS_LABEL = "oos"
KNN_K = 20  # nearest examples each message looks at for the k-NN part of `logistic`
KNN_WEIGHT = 0.5  # share of the k-NN cosine in a `logistic` intent's score (the rest: its probability)
OOS_SHARE = 0.1  # out-of-scope share of messages the threshold is chosen for (when out-of-scope examples exist)
# The threshold when none can be chosen (too few examples to hold any out): a message must be about as close to an
# example as a loose paraphrase (MiniLM cosine 0.5; `logistic` scores a sure classifier's message 0.5 + cos / 2).
# A threshold of 0 would let every message in, however unrelated.
UNCHOSEN_THRESHOLD = {"logistic": 0.75, "centroid": 0.5}
NO_OOS_REJECT = 0.05  # without out-of-scope examples: share of correct held-out matches the threshold gives up
VALIDATION_SHARE = 0.2


@dataclass
class IntentModel:
    """A fitted intent classifier: what it is, its classes, its threshold and what scoring needs."""

    method: str
    labels: list[str]  # class index -> intent, `oos_label` included when it was trained as a class
    threshold: float | None
    oos_label: str
    examples: DataFrame  # logistic: example_id, intent, embedding; centroid: intent, embedding (one per intent)
    classifier: LogisticRegressionModel | None = None


def split_examples(
    examples: DataFrame, share: float = VALIDATION_SHARE, seed: int = SEED, intent_col: str = INTENT_COL,
    text_col: str = TEXT_COL,
) -> DataFrame:  # fmt: skip
    """Adds `validation`: round(n x share) of each intent's n examples (never all of them: an intent keeps at least
    one training example, so an intent with one example is never held out), picked by a seeded hash of the text."""
    order = Window.partitionBy(intent_col).orderBy(F.xxhash64(text_col, F.lit(seed)), text_col)
    n = F.count(F.lit(1)).over(Window.partitionBy(intent_col))
    held = F.least(n - 1, F.round(n * share))
    return examples.withColumn("validation", F.row_number().over(order) <= held)


def example_ids(examples: DataFrame, intent_col: str = INTENT_COL, text_col: str = TEXT_COL) -> DataFrame:
    """Adds `example_id`, a hash of intent and text: the same example gets the same id on every run."""
    return examples.withColumn("example_id", F.sha2(F.concat_ws("\u0001", intent_col, text_col), 256))


def centroids(vectors: DataFrame, intent_col: str = INTENT_COL) -> DataFrame:
    """(intent, embedding): each intent's mean example vector at unit length."""
    mean = vector_to_array(Summarizer.mean(array_to_vector(VECTOR_COL)), "float32")
    return (
        vectors.groupBy(F.col(intent_col).alias(INTENT_COL))
        .agg(mean.alias("_m"))
        .select(INTENT_COL, l2_normalize(F.col("_m")).alias(VECTOR_COL))
    )


def fit_intents(
    examples: DataFrame,
    method: str = "logistic",
    reg: float = 0.0,
    max_iter: int = 200,
    oos_label: str = OOS_LABEL,
    intent_col: str = INTENT_COL,
) -> IntentModel:
    """Fit on (intent, embedding[, example_id]) rows; `oos_label` rows are out-of-scope examples.

    Raises:
        ValueError: an unknown method.
        InputContractError: no in-scope example (every one is labelled out of scope, or none has an intent).
    """
    if method not in METHODS:
        raise ValueError(f"intents.method must be one of {METHODS}, got {method!r}")
    rows = examples.where(F.col(intent_col).isNotNull()).select(F.col(intent_col).alias(INTENT_COL), VECTOR_COL, *(
        ["example_id"] if "example_id" in examples.columns else []))  # fmt: skip
    labels = sorted(r[0] for r in rows.select(INTENT_COL).distinct().collect())
    if not [label for label in labels if label != oos_label]:
        raise InputContractError(f"intent examples: no in-scope example to learn from (intents: {labels})")
    if method == "centroid":
        in_scope = centroids(rows.where(F.col(INTENT_COL) != oos_label))
        return IntentModel(method, [label for label in labels if label != oos_label], None, oos_label, in_scope)
    index = (F.array_position(F.array(*[F.lit(label) for label in labels]), F.col(INTENT_COL)) - 1).cast("double")
    train = rows.select(array_to_vector(VECTOR_COL).alias("features"), index.alias("label"))
    lr = LogisticRegression(family="multinomial", regParam=reg, maxIter=max_iter, standardization=True)
    if "example_id" not in rows.columns:
        rows = rows.withColumn("example_id", F.sha2(F.concat_ws("\u0001", INTENT_COL, F.to_json(VECTOR_COL)), 256))
    return IntentModel(method, labels, None, oos_label, rows, lr.fit(train))


def _labels(model: IntentModel) -> Column:
    return F.array(*[F.lit(label) for label in model.labels])


def _probabilities(model: IntentModel, messages: DataFrame, id_col: str) -> DataFrame:
    """(id, p, best, best_p): class probabilities and the most probable in-scope intent."""
    oos = model.labels.index(model.oos_label) if model.oos_label in model.labels else -1
    probs = model.classifier.transform(messages.select(id_col, array_to_vector(VECTOR_COL).alias("features")))
    # The out-of-scope class is never an answer: the best intent is the most probable other one.
    masked = F.transform("p", lambda x, i: F.when(i == oos, F.lit(-1.0)).otherwise(x))
    best = F.array_position(masked, F.array_max(masked)).cast("int")
    return probs.select(id_col, vector_to_array("probability").alias("p")).select(
        id_col, "p", F.element_at(_labels(model), best).alias("best"), F.element_at("p", best).alias("best_p")
    )


def _logistic_scores(model: IntentModel, messages: DataFrame, id_col: str, block_size: int) -> DataFrame:
    """(id, intent, score) per candidate intent: the most probable one and those of the KNN_K nearest examples."""
    probs = _probabilities(model, messages, id_col)
    near = exact_top_k(messages.select(id_col, VECTOR_COL), model.examples, KNN_K, block_size, exclude_self=False,
                       id_col=id_col, candidate_id_col="example_id")  # fmt: skip
    votes = (
        near.join(model.examples.select(F.col("example_id").alias("neighbor_id"), INTENT_COL), "neighbor_id")
        .where(F.col(INTENT_COL) != model.oos_label)
        .groupBy(id_col, INTENT_COL)
        .agg(F.max("similarity").alias("sim"))
    )
    position = F.array_position(_labels(model), F.col(INTENT_COL)).cast("int")
    voted = votes.join(probs.select(id_col, "p"), id_col).select(
        id_col, INTENT_COL, F.element_at("p", position).alias("prob"), "sim"
    )
    top = probs.select(id_col, F.col("best").alias(INTENT_COL), F.col("best_p").alias("prob"),
                       F.lit(None).cast("float").alias("sim"))  # fmt: skip
    merged = voted.unionByName(top).groupBy(id_col, INTENT_COL).agg(F.max("prob").alias("prob"),
                                                                    F.max("sim").alias("sim"))  # fmt: skip
    knn = F.greatest(F.coalesce(F.col("sim").cast("double"), F.lit(0.0)), F.lit(0.0))
    return merged.select(id_col, INTENT_COL, (KNN_WEIGHT * knn + (1 - KNN_WEIGHT) * F.col("prob")).alias("score"))


def score_intents(
    model: IntentModel, messages: DataFrame, id_col: str = MESSAGE_COL, block_size: int = BLOCK_SIZE
) -> DataFrame:
    """(id, intent, confidence): each message's best in-scope intent and its score (no threshold applied yet)."""
    if model.method == "centroid":
        near = exact_top_k(messages.select(id_col, VECTOR_COL), model.examples, 1, block_size, exclude_self=False,
                           id_col=id_col, candidate_id_col=INTENT_COL)  # fmt: skip
        return near.select(id_col, F.col("neighbor_id").alias(INTENT_COL),
                           F.col("similarity").cast("double").alias("confidence"))  # fmt: skip
    scores = _logistic_scores(model, messages, id_col, block_size)
    order = Window.partitionBy(id_col).orderBy(F.col("score").desc(), INTENT_COL)
    best = scores.withColumn("_r", F.row_number().over(order)).where("_r = 1")
    return best.select(id_col, INTENT_COL, F.col("score").cast("double").alias("confidence"))


def threshold_curve(scored: DataFrame, truth_col: str, oos_label: str = OOS_LABEL, steps: int = 100) -> DataFrame:
    """(threshold, in_scope_acc, oos_recall) for thresholds 0, 1/steps, ..., 1 on scored held-out examples
    (truth_col: the true intent; intent, confidence: the prediction). A null recall means no out-of-scope example."""
    grid = scored.sparkSession.range(steps + 1).select((F.col("id") / steps).alias("threshold"))
    oos = F.col(truth_col) == oos_label
    kept = F.col("confidence") >= F.col("threshold")
    hit = (F.col(INTENT_COL) == F.col(truth_col)) & kept
    return (
        scored.crossJoin(F.broadcast(grid))
        .groupBy("threshold")
        .agg(
            F.avg(F.when(~oos, hit.cast("double"))).alias("in_scope_acc"),
            F.avg(F.when(oos, (~kept).cast("double"))).alias("oos_recall"),
        )
        .orderBy("threshold")
    )


def choose_threshold(
    scored: DataFrame, truth_col: str, oos_label: str = OOS_LABEL, oos_share: float = OOS_SHARE
) -> float | None:
    """The threshold for held-out scored examples (see the module docstring); None when there is none to choose it on
    (no held-out in-scope example, or none of them matched right; see `UNCHOSEN_THRESHOLD`)."""
    rows = threshold_curve(scored, truth_col, oos_label).collect()
    if not rows or rows[0]["in_scope_acc"] is None:
        return None
    if rows[0]["oos_recall"] is not None:
        gain = [(1 - oos_share) * r["in_scope_acc"] + oos_share * r["oos_recall"] for r in rows]
        best = [r["threshold"] for r, g in zip(rows, gain, strict=True) if g >= max(gain) - 1e-12]
        # The middle of the best thresholds: as far as the held-out data allows from both kinds of error.
        return round(best[len(best) // 2], 4)
    correct = scored.where((F.col(INTENT_COL) == F.col(truth_col)) & (F.col(truth_col) != oos_label))
    found = correct.agg(F.percentile_approx("confidence", NO_OOS_REJECT, 10000)).first()[0]
    return round(float(found), 4) if found is not None else None


def decide(scored: DataFrame, threshold: float) -> DataFrame:
    """`intent` null below the threshold (or with no confidence), `fallback` true then."""
    keep = F.coalesce(F.col("confidence") >= threshold, F.lit(False))
    return scored.withColumn(INTENT_COL, F.when(keep, F.col(INTENT_COL))).withColumn("fallback", ~keep)


def save_intents(model: IntentModel, path: str) -> None:
    """Write the model under `path` (replacing what is there): MLlib's own format for the classifier, parquet for
    the example vectors or centroids, one JSON row for the rest."""
    spark = model.examples.sparkSession
    meta = [(model.method, model.labels, model.threshold, model.oos_label)]
    schema = "method string, labels array<string>, threshold double, oos_label string"
    spark.createDataFrame(meta, schema).coalesce(1).write.mode("overwrite").json(f"{path}/meta")
    model.examples.write.mode("overwrite").parquet(f"{path}/examples")
    if model.classifier is not None:
        model.classifier.write().overwrite().save(f"{path}/classifier")


def load_intents(spark: SparkSession, path: str) -> IntentModel:
    meta = spark.read.schema("method string, labels array<string>, threshold double, oos_label string").json(
        f"{path}/meta").first()  # fmt: skip
    classifier = LogisticRegressionModel.load(f"{path}/classifier") if meta["method"] == "logistic" else None
    examples = spark.read.parquet(f"{path}/examples")
    return IntentModel(meta["method"], list(meta["labels"]), meta["threshold"], meta["oos_label"], examples,
                       classifier)  # fmt: skip
