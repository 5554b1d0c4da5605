"""How much of each text the encoder reads: the share of its letters, digits and symbols that are read, among the
tokens the encoder reads. A character is read when its token is known, or, inside an unknown token, when the
vocabulary has it on its own. No Spark here; `udfs.embed.readable_share_udf` runs it on the executors.

Any text encodes to a unit vector, but one made mostly of unknown tokens says nothing, and a search would answer it
with k arbitrary items. A share of characters rather than a count of tokens: under all-MiniLM-L6-v2 "搞笑的喜剧" is
four `[UNK]`s around one known character (20 %: unreadable), while "funny 喜剧 movie" is mostly read (83 %).
Counting characters of tokens keeps emoji or CJK words a model does know (the multilingual backend reads many) as
read, and punctuation or spacing as neither read nor unread.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from udfs import multilingual

# SentencePiece's word-start mark: a symbol by its Unicode category, yet only spacing.
SPACE_MARK = "\u2581"

Pieces = list[tuple[int, int]]  # per token read: (word characters read, word characters not read)


def word_chars(text: str) -> int:
    """The letters, digits and symbols of `text` (not punctuation, spacing, marks or the space mark)."""
    return sum(unicodedata.category(ch)[0] in "LNS" and ch != SPACE_MARK for ch in text)


def readable_share(pieces: Pieces) -> float:
    """The share of a text's word characters that are read; 0.0 for a text without any (punctuation only, blank)."""
    read = sum(n for n, _ in pieces)
    total = read + sum(n for _, n in pieces)
    return read / total if total else 0.0


def readable_shares(
    texts: list[str], pieces: Callable[[str, int | None], Pieces], limit: int | None = None
) -> list[float]:
    """`readable_share` of each text over its first `limit` tokens (None: all), what the encoder reads of it."""
    return [readable_share(pieces(text, limit)) for text in texts]


def _multilingual_pieces(text: str, limit: int | None) -> Pieces:
    pieces = multilingual.load_tokenizer().pieces(text)[:limit]
    return [(word_chars(chars), 0) if known else (0, word_chars(chars)) for chars, known in pieces]


def transformers_pieces(tokenizer: object) -> Callable[[str, int | None], Pieces]:
    """(text, limit) -> `Pieces` of a transformers tokenizer: by its offsets where it has them (a fast one)."""
    unknown = tokenizer.unk_token_id  # type: ignore[attr-defined]

    @lru_cache(maxsize=65536)
    def knows(ch: str) -> bool:
        ids = tokenizer(ch, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        return bool(ids) and unknown not in ids

    def weigh(span: str) -> tuple[int, int]:
        # WordPiece gives a whole word one [UNK] for one character it lacks ("comedy🍿"): the characters its
        # vocabulary has on their own count as read, so the share asks whether the model knows the text's script and
        # symbols, not how it happened to cut a word.
        read = sum(word_chars(ch) for ch in span if knows(ch))
        return read, word_chars(span) - read

    def fast(text: str, limit: int | None) -> Pieces:
        enc = tokenizer(text, add_special_tokens=False, truncation=limit is not None, max_length=limit,  # type: ignore[operator]
                        return_offsets_mapping=True)  # fmt: skip
        # Offsets point into the text as given, so an [UNK] is weighed by the characters it replaced.
        spans = [(i, text[s:e]) for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"])]
        return [weigh(span) if i == unknown else (word_chars(span), 0) for i, span in spans]

    def slow(text: str, limit: int | None) -> Pieces:
        # A Python tokenizer has no offsets: an unknown token counts as one character, a known one as its own.
        tokens = tokenizer.tokenize(text)[:limit]  # type: ignore[attr-defined]
        return [(0, 1) if t == tokenizer.unk_token else (word_chars(t), 0) for t in tokens]  # type: ignore[attr-defined]

    return fast if getattr(tokenizer, "is_fast", False) else slow


@lru_cache(maxsize=4)
def tokenizer(backend: str, model_path: str) -> Callable[[str, int | None], Pieces]:
    """(text, limit) -> the `Pieces` of that text under `backend`, its tokenizer loaded once per process from local
    files. Not in the encoder's model cache: that cache counts model loads per worker, and a tokenizer is not one."""
    if backend == multilingual.NAME:
        return _multilingual_pieces
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return transformers_pieces(AutoTokenizer.from_pretrained(model_path, local_files_only=True))
