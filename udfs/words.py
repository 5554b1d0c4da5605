"""How many words of each text the encoder knows: its tokens that are neither the tokenizer's unknown token nor
punctuation or spacing alone. No Spark here; `udfs.embed.known_words_udf` runs it on the executors.

A text with none (emoji the vocabulary lacks, '???') still encodes to a unit vector, but one that says nothing, and a
search would answer it with k arbitrary items. Counting on tokens rather than characters keeps emoji or CJK words a
model does know (the multilingual backend reads many) as words.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from udfs import multilingual

# SentencePiece's word-start mark: a symbol by its Unicode category, yet only spacing.
SPACE_MARK = "\u2581"


def is_word(token: str, unknown: str) -> bool:
    """A known token with a letter, digit or symbol in it (not only punctuation, `##` or the space mark)."""
    return token != unknown and any(unicodedata.category(ch)[0] in "LNS" and ch != SPACE_MARK for ch in token)


def known_words(
    texts: list[str], tokenize: Callable[[str], list[str]], unknown: str, limit: int | None = None
) -> list[int]:
    """The number of `is_word` tokens of each text among its first `limit` tokens (None: all), what the encoder
    reads of it."""
    return [sum(is_word(token, unknown) for token in tokenize(text)[:limit]) for text in texts]


@lru_cache(maxsize=4)
def tokenizer(backend: str, model_path: str) -> tuple[Callable[[str], list[str]], str]:
    """(text -> token strings, the unknown token) of the backend, loaded once per process from local files. Not in
    the encoder's model cache: that cache counts model loads per worker, and a tokenizer is not one."""
    if backend == multilingual.NAME:
        return multilingual.load_tokenizer().tokens, multilingual.UNKNOWN_PIECE
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    return loaded.tokenize, loaded.unk_token
