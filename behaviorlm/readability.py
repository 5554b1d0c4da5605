"""Can the model read this text? Two cheap measures taken on the driver after items are embedded:

- the share of the item texts' tokens that the model's tokenizer maps to its unknown token (an English-only
  vocabulary reads most Chinese words as `[UNK]`);
- the share of item pairs whose stored vectors are near-identical: texts the model cannot read collapse onto one
  vector, and then every user looks like every other (all similarities 1.0).

Both run on bounded, seeded samples (a few thousand texts, a few hundred vectors), so they cost the same on any
catalogue size. When either passes its limit, one warning names the model and what to do.

`model.backend: auto` takes the first measure before encoding (`choose_backend`): over the limit, the item texts are
encoded by the multilingual backend instead, when it is installed.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.constants import ITEM_COL, NORM_EPSILON, SEED, TEXT_COL, VECTOR_COL
from behaviorlm.embedding import MULTILINGUAL, TRANSFORMERS, model_config
from behaviorlm.summaries import smallest_by_hash
from udfs import multilingual

log = logging.getLogger(__name__)

SAMPLE_TEXTS = 2000
SAMPLE_VECTORS = 500  # all pairs among them: 124,750 cosines, one small matrix product
IDENTICAL_COSINE = 0.999
ADVICE = {
    TRANSFORMERS: f"the model cannot read most of this text; set model.backend: {MULTILINGUAL} (16 languages, "
    f"Chinese among them; {multilingual.INSTALL_HINT}), or model.path to a multilingual model folder, "
    "e.g. paraphrase-multilingual-MiniLM-L12-v2",
    MULTILINGUAL: "the multilingual model cannot read most of this text either; set model.backend: transformers and "
    "model.path to a model folder trained on its language",
}


def load_tokenizer(model_path: str, backend: str = TRANSFORMERS) -> object:
    """The tokenizer of a local Hugging Face model folder (never fetched from a hub), or of the multilingual
    backend."""
    if backend == MULTILINGUAL:
        return multilingual.load_tokenizer()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    model_config(model_path)  # a missing folder is a ModelNotFoundError naming model.path, not a transformers error
    return AutoTokenizer.from_pretrained(model_path, local_files_only=True)


def unknown_token_share(texts: list[str], tokenizer: object, max_length: int | None = None) -> float:
    """Share of the texts' tokens that are the tokenizer's unknown token, over all tokens except special ones.

    Args:
        max_length: count only what the model reads (its truncation); None counts every token.
    Returns:
        0.0 for no tokens, or for a tokenizer without an unknown token (byte-level BPE reads any text).
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if not texts or unk is None:
        return 0.0
    truncate = max_length is not None
    ids = tokenizer(texts, add_special_tokens=False, truncation=truncate, max_length=max_length)["input_ids"]
    # A text may spell a special token ("[SEP]") literally; it is markup, not a word the model failed to read.
    special = set(getattr(tokenizer, "all_special_ids", ())) - {unk}
    total = unknown = 0
    for row in ids:
        for token in row:
            if token not in special:
                total += 1
                unknown += token == unk
    return unknown / total if total else 0.0


def identical_pair_share(vectors: np.ndarray, threshold: float = IDENTICAL_COSINE) -> float:
    """Share of all pairs of rows of `vectors` whose cosine similarity is at least `threshold` (0.0 below 2 rows)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    v = np.asarray(vectors, dtype=np.float64)
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), NORM_EPSILON)
    upper = np.triu_indices(n, k=1)
    return float(np.mean((unit @ unit.T)[upper] >= threshold))


def sample_texts(texts: DataFrame, n: int = SAMPLE_TEXTS, seed: int = SEED, key: str = ITEM_COL,
                 text_col: str = TEXT_COL) -> list[str]:  # fmt: skip
    """At most `n` non-null texts, the same ones on every run over the same keys (seeded hash order, not `sample`)."""
    picked = smallest_by_hash(texts.where(F.col(text_col).isNotNull()), n, F.xxhash64(key, F.lit(seed)), key)
    return [r[0] for r in picked.select(text_col).collect()]


def sample_vectors(vectors: DataFrame, n: int = SAMPLE_VECTORS, seed: int = SEED, text_hash: str = "text_hash",
                   vector_col: str = VECTOR_COL) -> np.ndarray:  # fmt: skip
    """At most `n` stored vectors, one per distinct text: items that share a text rightly share a vector, so they
    must not count as pairs the model failed to tell apart."""
    distinct = (
        vectors.where(F.col(vector_col).isNotNull()).groupBy(text_hash).agg(F.min_by(vector_col, ITEM_COL).alias("_v"))
    )
    one_per_text = smallest_by_hash(distinct, n, F.xxhash64(text_hash, F.lit(seed)), text_hash)
    rows = [r[0] for r in one_per_text.select("_v").collect()]
    return np.array(rows, dtype=np.float32) if rows else np.empty((0, 0), dtype=np.float32)


def warn_if_unreadable(model_path: str, unknown_share: float, identical_share: float, max_unknown: float,
                       max_identical: float, backend: str = TRANSFORMERS) -> bool:  # fmt: skip
    """Log one warning when either share is over its limit; returns whether it warned."""
    if unknown_share <= max_unknown and identical_share <= max_identical:
        return False
    log.warning(
        "model %s: %.0f%% of sampled item-text tokens are unknown to its tokenizer (limit %.0f%%) and %.0f%% of "
        "sampled item pairs have near-identical vectors (limit %.0f%%): %s",
        model_path if backend == TRANSFORMERS else backend, 100 * unknown_share, 100 * max_unknown,
        100 * identical_share, 100 * max_identical, ADVICE[backend],
    )  # fmt: skip
    return True


def pick_backend(unknown_share: float, max_unknown: float, model_path: str, installed: bool) -> str:
    """`model.backend: auto`'s choice once the unknown-token share of the transformers tokenizer is measured: that
    model while it reads the text, else the multilingual backend when `installed`. One log line says why."""
    if unknown_share <= max_unknown:
        return TRANSFORMERS
    measured = (
        f"model.backend auto: {100 * unknown_share:.0f}% of sampled item-text tokens are unknown to the tokenizer of "
        f"{model_path} (limit embed.max_unknown_token_share {100 * max_unknown:.0f}%)"
    )
    if installed:
        log.info("%s: encoding with %s (universal-sentence-encoder-multilingual v3) instead; set model.backend: "
                 "transformers to keep model.path", measured, MULTILINGUAL)  # fmt: skip
        return MULTILINGUAL
    log.warning("%s, and the multilingual backend is not installed, so model.path is used anyway: %s, then set "
                "model.backend: %s (or leave it auto)", measured, multilingual.INSTALL_HINT, MULTILINGUAL)  # fmt: skip
    return TRANSFORMERS


def choose_backend(texts: DataFrame, model_path: str, max_length: int | None = None, max_unknown: float = 0.2,
                   seed: int = SEED, installed: bool | None = None) -> tuple[str, float]:  # fmt: skip
    """`model.backend: auto`, decided on the driver before anything is encoded: the unknown-token share of a sample of
    `texts` (item_id, text) under the tokenizer at `model_path` picks the backend (`pick_backend`).

    Args:
        installed: whether the multilingual backend can be used; None: whether it is importable here.
    Returns:
        (backend, measured unknown-token share).
    """
    share = unknown_token_share(sample_texts(texts, seed=seed), load_tokenizer(model_path), max_length)
    usable = multilingual.installed() if installed is None else installed
    return pick_backend(share, max_unknown, model_path, usable), share


def readability(
    texts: DataFrame,
    vectors: DataFrame,
    model_path: str,
    max_length: int | None = None,
    max_unknown: float = 0.2,
    max_identical: float = 0.2,
    seed: int = SEED,
    backend: str = TRANSFORMERS,
) -> dict[str, float]:
    """`unknown_token_share` of a sample of `texts` (item_id, text) and `identical_pair_share` of a sample of the
    stored `vectors` (item_id, text_hash, embedding), warning once when the model cannot read the text. Both measure
    the `backend` that encoded the vectors."""
    # The multilingual backend truncates by characters, which its tokenizer adapter applies itself.
    truncate = max_length if backend == TRANSFORMERS else None
    unknown = unknown_token_share(sample_texts(texts, seed=seed), load_tokenizer(model_path, backend), truncate)
    identical = identical_pair_share(sample_vectors(vectors, seed=seed))
    warn_if_unreadable(model_path, unknown, identical, max_unknown, max_identical, backend)
    return {"unknown_token_share": unknown, "identical_pair_share": identical}
