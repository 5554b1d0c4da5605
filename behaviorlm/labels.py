"""Readable labels for interest segments (`describe_segments`), from the items of each segment: the dominant value
of a categorical item attribute with its share, the most central items (medoids: highest cosine to the centroid) by
title, and the distinctive terms of the segment's item texts by class-based TF-IDF (each segment's texts as one
document: `RegexTokenizer`, `StopWordsRemover`, `CountVectorizer`, `IDF`; Chinese as character pairs), e.g. "Sci-Fi
72% · Star Wars; Return of the Jedi; Alien · space, alien, future". Beside the label, a `name` a sentence can say:
the dominant value, else the first medoid, else the first term ("Sci-Fi").
"""

from __future__ import annotations

from pyspark.ml.feature import IDF, CountVectorizer, RegexTokenizer, StopWordsRemover
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from behaviorlm.constants import ITEM_COL, SEED, SIMILARITY_COL
from behaviorlm.segments import SEGMENT_COL
from behaviorlm.text import clean_text, short_name

# Chinese and Japanese are written without spaces: a run of Han characters is one token, then cut into its
# overlapping pairs (`_han_pairs`), and a kana run is one token (a lone hiragana is a particle: の, は, を). Every
# other script: runs of 2+ letters, marks and digits (Hangul is written with spaces, so it falls here).
_CJK = r"\p{IsHan}\p{InHiragana}\p{InKatakana}"
TOKEN_PATTERN = rf"\p{{IsHan}}+|\p{{InHiragana}}{{2,}}|\p{{InKatakana}}+|[\p{{L}}\p{{M}}\p{{N}}&&[^{_CJK}]]{{2,}}"
_HAN_RUN = r"^\p{IsHan}{2,}$"


def _han_pairs(tokens: Column) -> Column:
    """Each run of 2+ Han characters as its overlapping character pairs ("流浪地球": 流浪, 浪地, 地球), as search
    engines index Chinese: a word is mostly two characters, where single characters are mostly function words (的,
    一) or halves of words (流行 read as 流 and 行)."""

    def pairs(t: Column) -> Column:
        return F.transform(F.sequence(F.lit(1), F.length(t) - 1), lambda i: t.substr(i, F.lit(2)))

    return F.flatten(F.transform(tokens, lambda t: F.when(t.rlike(_HAN_RUN), pairs(t)).otherwise(F.array(t))))


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
    tokens = tokenizer.transform(texts.fillna("", ["_t"]))
    per_item = remover.transform(tokens.withColumn("_tokens", _han_pairs(F.col("_tokens"))))
    union = F.flatten(F.collect_list(F.array_distinct("_words")))
    # Read by a count, two fits and their transforms, with its plan cut: on Spark Connect each MLlib call sends the
    # plan, and the text pipeline's (the pairs' nested lambdas included) passed protobuf's nesting limit.
    words = per_item.groupBy(SEGMENT_COL).agg(union.alias("_words")).localCheckpoint()
    if words.where(F.size("_words") > 0).limit(1).count() == 0:  # CountVectorizer refuses an empty vocabulary
        return _local(words.select(SEGMENT_COL, F.array().cast("array<string>").alias("top_terms")))
    counted = CountVectorizer(inputCol="_words", outputCol="_tf", minTF=float(min_count)).fit(words)
    tf = counted.transform(words)
    scored = IDF(inputCol="_tf", outputCol="_tfidf").fit(tf).transform(tf)
    top = _top_terms_udf(counted.vocabulary, n_terms)(F.col("_tfidf"), F.col("_tf"))
    return _local(scored.select(SEGMENT_COL, top.alias("top_terms")))


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
    Segments whose items have no value, or whose top values tie (5 items in 5 genres: none leads), are absent."""
    multi = dict(items.dtypes)[attribute].startswith("array")
    value = F.explode(attribute) if multi else F.col(attribute)
    values = items.select(id_col, value.alias("_v")).withColumn("_v", F.trim(F.col("_v").cast("string")))
    labels = values.where(F.col("_v") != "").distinct()
    sizes = item_segments.groupBy(SEGMENT_COL).agg(F.count("*").alias("_size"))
    counts = item_segments.join(labels, id_col).groupBy(SEGMENT_COL, "_v").agg(F.count("*").alias("_c"))
    order = Window.partitionBy(SEGMENT_COL).orderBy(F.col("_c").desc(), "_v")
    ranked = counts.select("*", F.row_number().over(order).alias("_r"), F.lead("_c").over(order).alias("_next"))
    leads = (F.col("_r") == 1) & F.coalesce(F.col("_c") > F.col("_next"), F.lit(True))
    best = ranked.where(leads).join(sizes, SEGMENT_COL)
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


def name(value: Column, medoids: Column, terms: Column) -> Column:
    """The label's part a sentence can say: the dominant value, else the first medoid, else the first term; null
    when the label has none of them ("segment 7")."""
    return F.coalesce(value, F.get(medoids, 0), F.get(terms, 0))


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
    """(segment_id, label, name, top_terms, medoid_items, attribute_value, attribute_share, n_items, cohesion), one
    row per segment, computed at once (a small frame on the driver). Cohesion is the mean cosine of the segment's
    items to its centroid. `attribute` "" or absent from `items`: no attribute part (attribute_value null)."""
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
    value, medoids, terms = F.col("attribute_value"), F.col("medoid_items"), F.col("top_terms")
    text = label(value, F.col("attribute_share"), medoids, terms, F.col(SEGMENT_COL))
    return _local(out.select(SEGMENT_COL, text.alias("label"), name(value, medoids, terms).alias("name"), "top_terms",
                             "medoid_items", "attribute_value", "attribute_share", "n_items", "cohesion"))  # fmt: skip
