"""Semantic search: natural-language queries against item vectors and user vectors, scored with the blocked exact
k-NN of `behaviorlm.neighbors` (no catalogue is collected to the driver).

A query is encoded by the same encoder as the items. Without a user its score is cosine(query, item). With a user
(a `user_id` that has a valid vector) it is (1 - w) x cosine(query, item) + w x cosine(user, item): one dot product
of the item with the blended vector (1 - w) q + w u, so the blend runs through the same kernel; and the items that
user interacted with are removed. A blank query (null, empty, only whitespace or invisible characters) is never
encoded: it gets one row with no item and the reason `EMPTY_QUERY`; so does a query the model reads too little of
(`UNREADABLE`: under `MIN_READABLE` of its letters, digits and symbols are read, `udfs.words`; a script it does
not know, emoji it lacks, punctuation only), whose vector would mean nothing, and a query nothing is
left for (`ALL_SEEN`, `NO_ITEMS`). The audience of a query is the users whose vectors are closest to it.

From a notebook: `from behaviorlm.search import top_items; top_items(spark, ["a funny movie for kids"], k=10)`.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from behaviorlm import delta
from behaviorlm.assets import model_dir
from behaviorlm.constants import BLOCK_SIZE, ITEM_COL, TEXT_COL, USER_COL, VECTOR_COL
from behaviorlm.embedding import Embedder, EmbedFn, make_embed_fn
from behaviorlm.errors import InputContractError
from behaviorlm.indexing import by_seen_room
from behaviorlm.neighbors import exact_top_k
from behaviorlm.validate import parse_id
from behaviorlm.vectors import center

QUERY_COL = "query_id"
PERSONAL_WEIGHT = 0.3
# Query cosines at or below this are said to be weak matches: a query whose related items the user has all seen
# still gets its k items, but the reason does not claim they match. 0, not higher: in the centred space a genuine
# match of a small catalogue can be as low as 0.05 (tests/test_search.py's war films).
WEAK_MATCH = 0.0
EMPTY_QUERY = "empty query: nothing to match"
UNREADABLE = "the model reads too little of this text (an unknown script, emoji, punctuation?): nothing to match"
# The share of a query's letters, digits and symbols the model must read (model.min_readable_share): under
# all-MiniLM-L6-v2 "搞笑的喜剧" is 20 % read and "适合孩子的动画片" 37 %,
# "喜剧 comedy" 75 % and "funny 喜剧 movie" 83 %.
MIN_READABLE = 0.5
ALL_SEEN = "nothing left to suggest: you have interacted with every item"
NO_ITEMS = "nothing to suggest: there are no item vectors to search"
# Where `make demo` writes item vectors: what `top_items` searches when it is given no frame.
DEFAULT_ITEM_VECTORS = "data/delta/item_embeddings"
# Text with no visible character: whitespace, Unicode spaces, control and format characters (zero-width space, BOM).
_VISIBLE = r"[^\s\p{Z}\p{Cc}\p{Cf}]"


def require_columns(df: DataFrame, table: str, required: list[str]) -> None:
    """Raise `InputContractError` naming `table` and the first missing column, or the first of the required columns
    and `user_id` that holds no single value (an array, map or struct: its text would be searched as "[a, b]"),
    before any Spark action."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputContractError(
            f"table {table!r}: required column {missing[0]!r} is missing; columns present: {sorted(df.columns)}"
        )
    for column in [*required, *([USER_COL] if USER_COL in df.columns else [])]:
        dtype = df.schema[column].dataType
        if isinstance(dtype, (T.ArrayType, T.MapType, T.StructType)):
            raise InputContractError(
                f"table {table!r}: column {column!r} is {dtype.simpleString()}; it must hold one text or number per "
                "row (join an array into one text first, e.g. concat_ws(' ', col))"
            )


def one_per_id(raw: DataFrame, id_col: str) -> DataFrame:
    """(id_col, text, user_id, _n) of a queries or messages table: ids and user ids read as ingest reads ids (trimmed,
    123.0 -> "123", NaN -> null: a float user id must still find its user), text as text; `_n` = 1 marks the row
    used for each id (the first by text, then user); rows without an id keep a null `_n` and are only counted."""
    user = parse_id(F.col(USER_COL), raw.schema[USER_COL].dataType) if USER_COL in raw.columns else F.lit(None)
    rows = raw.select(parse_id(F.col(id_col), raw.schema[id_col].dataType).alias(id_col),
                      F.col(TEXT_COL).cast("string").alias(TEXT_COL), user.cast("string").alias(USER_COL))  # fmt: skip
    first = Window.partitionBy(id_col).orderBy(F.col(TEXT_COL).asc_nulls_last(), F.col(USER_COL).asc_nulls_last())
    return rows.withColumn("_n", F.when(F.col(id_col).isNotNull(), F.row_number().over(first)))


def is_blank(text: Column) -> Column:
    """True for null text and text without one visible character."""
    return F.coalesce(~text.rlike(_VISIBLE), F.lit(True))


def encode_texts(
    texts: DataFrame, embed: Embedder, text_col: str = TEXT_COL, min_readable: float | None = None
) -> tuple[DataFrame, DataFrame]:
    """(encoded: the rows with a non-blank text plus `embedding`, skipped: the other rows, never sent to the encoder,
    with `_why`, the reason). With `min_readable` (a share, 0 to 1), a text the encoder reads nothing of or less than
    that share of is skipped too (`UNREADABLE`); None: no such check."""
    why = F.when(is_blank(F.col(text_col)), F.lit(EMPTY_QUERY))
    if min_readable is not None:
        share = embed.readable_share(F.col(text_col))
        why = why.when((share <= 0.0) | (share < min_readable), F.lit(UNREADABLE))
    tagged = texts.withColumn("_why", why)
    if min_readable is not None:
        # Counted once and cut from the plan: both branches read `_why`, and the encoder's UDF must not share a
        # task with the counting one (each Python UDF node runs its own worker, and either may then load the model).
        tagged = tagged.localCheckpoint()
    encoded = embed.encode(tagged.where(F.col("_why").isNull()).drop("_why"), text_col, VECTOR_COL)
    return encoded, tagged.where(F.col("_why").isNotNull())


def dot(a: Column, b: Column) -> Column:
    """Dot product of two array<float> columns (cosine for unit vectors); null when either is null."""
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda acc, x: acc + x)


def _blended(queries: DataFrame, users: DataFrame | None, weight: float, query_col: str, user_col: str) -> DataFrame:
    """(query_id, user_id, _q, _u, embedding): the query vector, the user's (null when not personal), the blend."""
    has_user = user_col in queries.columns
    user = F.col(user_col).cast("string") if has_user else F.lit(None).cast("string")
    q = queries.select(F.col(query_col).cast("string").alias(query_col), user.alias(user_col),
                       F.col(VECTOR_COL).alias("_q"))  # fmt: skip
    if users is None or not has_user:
        return q.withColumn("_u", F.lit(None).cast("array<float>")).withColumn(VECTOR_COL, F.col("_q"))
    u = users.select(F.col(user_col).cast("string").alias(user_col), F.col(VECTOR_COL).alias("_u"))
    mix = F.zip_with("_q", "_u", lambda x, y: ((1.0 - weight) * x + weight * y).cast("float"))
    return q.join(u, user_col, "left").withColumn(
        VECTOR_COL, F.when(F.col("_u").isNotNull(), mix).otherwise(F.col("_q"))
    )


def match_reason(query_cos: Column, user_cos: Column) -> Column:
    """ "matches your query (cosine 0.62); close to what you liked (cosine 0.41)": at or below WEAK_MATCH the item is
    only the nearest there is ("only a weak match ..."), and the user's part is said only where it is positive (an
    item at cosine -0.2 to what they liked is not close to it)."""
    match = F.when(query_cos > WEAK_MATCH, F.format_string("matches your query (cosine %.2f)", query_cos)).otherwise(
        F.format_string("only a weak match for your query (cosine %.2f)", query_cos)
    )
    liked = F.format_string("; close to what you liked (cosine %.2f)", user_cos)
    return F.concat(match, F.when(user_cos > 0, liked).otherwise(F.lit("")))


def search_items(
    queries: DataFrame,
    items: DataFrame,
    k: int = 10,
    users: DataFrame | None = None,
    seen: DataFrame | None = None,
    personal_weight: float = PERSONAL_WEIGHT,
    block_size: int = BLOCK_SIZE,
    query_col: str = QUERY_COL,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
) -> DataFrame:
    """Each encoded query's k best items: (query_id, item_id, rank, score, reason); a query none is left for gets one
    row without an item and the reason `ALL_SEEN` (its user saw them all) or `NO_ITEMS`.

    Args:
        queries: query_col, `embedding` (see `encode_texts`), optionally user_col.
        items: item_col, `embedding` (unit vectors, in the space the users live in).
        users: user_col, `embedding` (valid unit vectors): personal queries blend with them.
        seen: user_col, item_col: what each user interacted with, never returned to that user's queries.
    """
    q = _blended(queries, users, personal_weight, query_col, user_col)
    blended = q.select(query_col, VECTOR_COL)

    def nearest(rows: DataFrame, n: int) -> DataFrame:
        return exact_top_k(blended.join(rows.select(query_col), query_col), items, n, block_size, exclude_self=False,
                           id_col=query_col, candidate_id_col=item_col)  # fmt: skip

    personal = seen is not None and user_col in queries.columns
    if personal:
        seen = seen.select(F.col(user_col).cast("string"), F.col(item_col).cast("string")).distinct()
        counts = seen.groupBy(user_col).count()
        per_query = q.select(query_col, user_col).join(counts, user_col, "left")
        hits = by_seen_room(per_query, "count", k, nearest)
    else:
        per_query = q.select(query_col, user_col, F.lit(None).cast("long").alias("count"))
        hits = nearest(q.select(query_col), k)
    hits = hits.select(query_col, F.col("neighbor_id").alias(item_col), F.col("similarity").alias("score"))
    hits = hits.join(q.select(query_col, user_col, "_q", "_u"), query_col)
    if personal:
        hits = hits.join(seen, [user_col, item_col], "left_anti")
    order = Window.partitionBy(query_col).orderBy(F.col("score").desc(), F.col(item_col))
    top = hits.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
    vectors = items.select(F.col(item_col).cast("string").alias(item_col), F.col(VECTOR_COL).alias("_i"))
    top = top.join(vectors, item_col)
    reason = match_reason(dot(F.col("_q"), F.col("_i")), dot(F.col("_u"), F.col("_i")))
    found = top.select(query_col, item_col, F.col("rank").cast("int"), F.col("score").cast("double"),
                       reason.alias("_found"))  # fmt: skip
    # A query nothing is left for (its user saw every item, or there are no items) gets one row that says so.
    why = F.when(F.col("count") > 0, F.lit(ALL_SEEN)).otherwise(F.lit(NO_ITEMS))
    asked = per_query.where(F.col(query_col).isNotNull()).select(query_col, why.alias("_why"))
    return asked.join(found, query_col, "left").select(query_col, item_col, "rank", "score",
                                                       F.coalesce("_found", "_why").alias("reason"))  # fmt: skip


def blank_results(blank: DataFrame, query_col: str = QUERY_COL, item_col: str = ITEM_COL) -> DataFrame:
    """One row per query `encode_texts` skipped: no item, no rank, no score, the reason it was skipped for."""
    return blank.select(
        F.col(query_col).cast("string").alias(query_col),
        F.lit(None).cast("string").alias(item_col),
        F.lit(None).cast("int").alias("rank"),
        F.lit(None).cast("double").alias("score"),
        F.col("_why").alias("reason"),
    )


def search_audience(
    queries: DataFrame,
    users: DataFrame,
    k: int = 50,
    block_size: int = BLOCK_SIZE,
    query_col: str = QUERY_COL,
    user_col: str = USER_COL,
) -> DataFrame:
    """Each encoded query's k closest users: (query_id, user_id, rank, score)."""
    hits = exact_top_k(queries.select(query_col, VECTOR_COL), users, k, block_size, exclude_self=False,
                       id_col=query_col, candidate_id_col=user_col)  # fmt: skip
    return hits.select(query_col, F.col("neighbor_id").alias(user_col), "rank",
                       F.col("similarity").cast("double").alias("score"))  # fmt: skip


def top_items(
    spark: SparkSession,
    texts: list[str],
    k: int = 10,
    items: DataFrame | None = None,
    embed: EmbedFn | None = None,
    user_ids: list[str | None] | None = None,
    users: DataFrame | None = None,
    seen: DataFrame | None = None,
    personal_weight: float = PERSONAL_WEIGHT,
    center_items: bool = True,
    min_readable: float = MIN_READABLE,
) -> DataFrame:
    """The k best items for each text, for a notebook: (query_id = the text's position, text, item_id, rank, score,
    reason). `items` (raw stored vectors) defaults to the demo's (`DEFAULT_ITEM_VECTORS`), `embed` to the cached
    all-MiniLM-L6-v2 encoder; `user_ids` (one per text, None for none) with `users`/`seen` personalise. As in the
    `search` stage, items and queries are centred on the catalogue mean unless `center_items` is False, and a text
    the model reads less than `min_readable` of is not matched (`UNREADABLE`; the stage takes it from
    `model.min_readable_share`, whose default this is)."""
    if embed is None:
        embed = make_embed_fn(spark, str(model_dir()))
    if items is None:
        items = delta.read_table(spark, delta.location_ref("item_embeddings", DEFAULT_ITEM_VECTORS))
    owners = user_ids or [None] * len(texts)
    rows = [(str(n), text, user) for n, (text, user) in enumerate(zip(texts, owners, strict=True))]
    queries = spark.createDataFrame(rows, f"{QUERY_COL} string, {TEXT_COL} string, {USER_COL} string")
    encoded, blank = encode_texts(queries, embed, min_readable=min_readable)
    vectors = items.select(ITEM_COL, VECTOR_COL)
    if center_items:
        encoded, vectors = center(encoded, reference=vectors), center(vectors)
    # Encoded once (the k-NN counts the queries before scoring them); a notebook's few vectors stay cached.
    encoded = encoded.persist(StorageLevel.MEMORY_AND_DISK)
    found = search_items(encoded, vectors, k, users, seen, personal_weight).unionByName(blank_results(blank))
    return found.join(queries.select(QUERY_COL, TEXT_COL), QUERY_COL).orderBy(F.col(QUERY_COL).cast("int"), "rank")
