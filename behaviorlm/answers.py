"""Answers to matched intents: check the answer templates against the trained intents, find each user's top
interest, and render a template per message.

A template is text with `{user_id}` and `{interest}` (the name of the user's top interest segment) in it. It is
rendered by sentence, with the rule `behaviorlm.text.render_template` applies to item text entries: a sentence is
kept only when every placeholder in it has a value. So a message with no user, or from a user with no interest on
record, gets the answer without its personal sentences ("Thanks for asking. As a fan of {interest}, try our new
releases." -> "Thanks for asking."). Rendering is a column expression: templates are never collected to the driver.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from behaviorlm.constants import USER_COL
from behaviorlm.errors import InputContractError

log = logging.getLogger(__name__)
INTENT_COL = "intent"
TEMPLATE_COL = "answer_template"
INTEREST_COL = "interest"
PLACEHOLDERS = (USER_COL, INTEREST_COL)
# Java regex: \w is ASCII there, so {用户名} would be neither checked nor filled.
_PLACEHOLDER = r"\{([\p{L}\p{N}_]+)\}"
# A sentence ends at ., ! or ? before whitespace, or at 。！？ (Chinese and Japanese put no space after them); the
# split is zero-width, so each sentence keeps the whitespace before it and kept sentences join back as written.
_SENTENCE_END = r"(?<=[.!?])(?=\s)|(?<=[。！？])"


def check_templates(
    answers: DataFrame, intents: list[str], table: str = "intent_answers", intent_col: str = INTENT_COL,
    template_col: str = TEMPLATE_COL,
) -> tuple[DataFrame, dict[str, int]]:  # fmt: skip
    """(intent, answer_template) for the known intents, one each, and the counts of rows left out.

    Rows of an intent the classifier does not know (or an out-of-scope one) are ignored and counted in
    `answers_unknown_intent` (a warning names a few); a blank template is `answers_blank`; a second template of one
    intent is `answers_duplicate` (the first by text is kept).

    Raises:
        InputContractError: a template names a placeholder other than {user_id} and {interest}.
    """
    rows = answers.select(F.col(intent_col).cast("string").alias(INTENT_COL),
                          F.col(template_col).cast("string").alias(TEMPLATE_COL))  # fmt: skip
    names = F.regexp_extract_all(TEMPLATE_COL, F.lit(_PLACEHOLDER), 1)
    unknown = F.filter(names, lambda n: ~n.isin(*PLACEHOLDERS))
    # Every bad template at once (a few), so that one run names all there is to fix.
    bad = rows.where(F.size(unknown) > 0).select(INTENT_COL, unknown.alias("names")).orderBy(INTENT_COL).limit(5)
    if found := bad.collect():
        named = "; ".join(f"intent {r[INTENT_COL]!r}: {{{'}, {'.join(r['names'])}}}" for r in found)
        raise InputContractError(
            f"table {table!r}: column {template_col!r} names unknown placeholders ({named}); known placeholders: "
            "{user_id}, {interest}"
        )
    known = F.col(INTENT_COL).isin(*intents)
    blank = F.coalesce(F.trim(TEMPLATE_COL) == "", F.lit(True))
    counts = rows.agg(F.sum((~known).cast("int")).alias("unknown"), F.sum((known & blank).cast("int")).alias("blank"),
                      F.count_distinct(F.when(known & ~blank, F.col(INTENT_COL))).alias("distinct"),
                      F.sum((known & ~blank).cast("int")).alias("usable")).first()  # fmt: skip
    if counts["unknown"]:
        names = [r[0] for r in rows.where(~known).select(INTENT_COL).distinct().orderBy(INTENT_COL).limit(5).collect()]
        log.warning("%s: %d answer(s) for intents no example has, ignored: %s%s", table, counts["unknown"], names,
                    " ..." if counts["unknown"] > len(names) else "")  # fmt: skip
    first = Window.partitionBy(INTENT_COL).orderBy(TEMPLATE_COL)
    kept = rows.where(known & ~blank).withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")
    usable = counts["usable"] or 0
    return kept, {"answers_unknown_intent": counts["unknown"] or 0, "answers_blank": counts["blank"] or 0,
                  "answers_duplicate": usable - counts["distinct"]}  # fmt: skip


def top_interest(
    interests: DataFrame, user_col: str = USER_COL, name_col: str = "name", weight_col: str = "weight"
) -> DataFrame | None:
    """(user_id, interest): the name (`behaviorlm.labels.name`) of each user's interest of the largest weight (ties:
    the first name); null where that segment has no name, so the sentence saying it is left out. None, with a
    warning, for interests without `name_col` (written before segments had names)."""
    if name_col not in interests.columns:
        log.warning("user_interests has no column %r (written by an older behaviorlm): {interest} is left out of "
                    "answers until segments runs again", name_col)  # fmt: skip
        return None
    order = Window.partitionBy(user_col).orderBy(F.col(weight_col).desc_nulls_last(), F.col(name_col).asc_nulls_last())
    named = F.when(F.trim(F.col(name_col)) != "", F.col(name_col))
    return (
        interests.withColumn("_n", F.row_number().over(order))
        .where("_n = 1")
        .select(F.col(user_col).cast("string").alias(USER_COL), named.alias(INTEREST_COL))
    )


def _render(template: Column, values: dict[str, Column]) -> Column:
    """Sentences whose placeholders all have values, with the values filled in, joined by spaces."""
    sentences = F.split(template, _SENTENCE_END)

    def complete(sentence: Column) -> Column:
        ok = F.lit(True)
        for name, value in values.items():
            ok = ok & (~sentence.contains(f"{{{name}}}") | value.isNotNull())
        return ok

    def fill(sentence: Column) -> Column:
        for name, value in values.items():
            sentence = F.replace(sentence, F.lit(f"{{{name}}}"), F.coalesce(value, F.lit("")))
        return sentence

    rendered = F.trim(F.array_join(F.transform(F.filter(sentences, complete), fill), ""))
    return F.when(rendered != "", rendered)


def render_answers(
    decided: DataFrame, templates: DataFrame, interests: DataFrame | None = None, user_col: str = USER_COL
) -> DataFrame:
    """Adds `answer` to messages with an `intent` (null for a fallback or an intent without a template).

    Args:
        decided: intent (null = out of scope), user_col (may be null).
        templates: intent, answer_template (see `check_templates`).
        interests: user_id, interest (see `top_interest`); None when there are no interests on record.
    """
    joined = decided.join(templates.withColumnRenamed(INTENT_COL, "_intent"),
                          F.col(INTENT_COL) == F.col("_intent"), "left").drop("_intent")  # fmt: skip
    if interests is not None:
        joined = joined.join(interests.withColumnRenamed(USER_COL, user_col), user_col, "left")
    else:
        joined = joined.withColumn(INTEREST_COL, F.lit(None).cast("string"))
    user = F.when(F.trim(F.col(user_col).cast("string")) != "", F.trim(F.col(user_col).cast("string")))
    answer = _render(F.col(TEMPLATE_COL), {USER_COL: user, INTEREST_COL: F.col(INTEREST_COL)})
    return joined.withColumn("answer", answer).drop(TEMPLATE_COL, INTEREST_COL)
