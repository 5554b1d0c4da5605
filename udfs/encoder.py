"""The encoder core: text -> L2-normalised float32 vectors with a BERT-family model. Plain Python + torch +
transformers, no Spark, so it can be benchmarked and tested on its own.

- The tokenizer and model load once per process: `get_encoder` caches them by (model path, device, dtype), and
  `load_count()` says how many loads this process did (the Spark job reports it per Python worker). The multilingual
  backend (`udfs.multilingual`) keeps its model in the same cache (`cached`), so the count covers it too.
- Mean pooling over the attention mask (or the CLS token), truncation at `max_length`.
- Length-sorted batching: a batch is sorted by token count so each forward pass pads little; results are put back
  in input order.
- OOM back-off: on a CUDA out-of-memory error the batch is halved and retried; no row is ever dropped.
- Models load from local files only (`local_files_only`); nothing is fetched from a hub.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, ...], object] = {}
_LOADS = 0


def load_count() -> int:
    """How many times this process loaded a model (one per distinct path/device/dtype is the goal)."""
    return _LOADS


def cached(key: tuple[str, ...], load: Callable[[], object]) -> tuple[object, bool]:
    """The process-wide model for `key`, made by `load()` on first use and counted by `load_count`.
    Returns (model, loaded_now)."""
    global _LOADS
    with _LOCK:
        loaded_now = key not in _MODELS
        if loaded_now:
            _MODELS[key] = load()
            _LOADS += 1
    return _MODELS[key], loaded_now


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """`auto` is bfloat16 on a GPU that supports it, float16 on other GPUs, float32 on CPU."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


@dataclass
class Encoder:
    """A loaded tokenizer + model pair and how to pool its output."""

    tokenizer: object
    model: torch.nn.Module
    device: str
    max_length: int = 128
    pooling: str = "mean"

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int = 64, sort_by_length: bool = True) -> np.ndarray:
        """Encode `texts` into an (n, dim) float32 array of unit vectors, rows in input order."""
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("Encoder.encode takes strings only; map null texts to a fallback text before encoding")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=True)["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable") if sort_by_length else np.arange(len(texts))
        start, size = 0, max(1, batch_size)
        while start < len(texts):
            rows = order[start : start + size]
            try:
                out[rows] = self._forward([ids[i] for i in rows])
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                size //= 2
                log.warning("CUDA out of memory at batch %d; retrying with batch %d", size * 2, size)
                torch.cuda.empty_cache()
                continue
            start += len(rows)
        return out

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        # Pad with numpy rather than tokenizer.pad: the latter is a slow Python loop that starved the GPU
        # (bench/results: host-bound at ~8k texts/s for MiniLM on an H200).
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            attention[row, : len(x)] = 1
        mask_t = torch.from_numpy(attention).to(self.device, non_blocking=True)
        ids_t = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = mask_t.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy()


def load_model(path: str, device: str = "cpu", dtype: str = "auto") -> tuple[object, torch.nn.Module]:
    """Load tokenizer and model from a local Hugging Face model folder (uncached; see `get_encoder`)."""
    # Belt and braces: even a model folder that names a hub repo must not trigger a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per worker per load would flood executor logs

    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"model.path {path!r} is not a Hugging Face model folder (no config.json)")
    torch_dtype = resolve_dtype(dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch_dtype).to(device).eval()
    log.info("pid %d loaded %s on %s as %s", os.getpid(), path, device, torch_dtype)
    return tokenizer, model


def get_encoder(
    path: str, device: str = "cpu", dtype: str = "auto", max_length: int = 128, pooling: str = "mean"
) -> tuple[Encoder, bool]:
    """An encoder over the process-wide model for (path, device, dtype), loading it on first use.
    Truncation and pooling do not change the weights, so they are not part of the cache key.
    Returns (encoder, loaded_now)."""
    (tokenizer, model), loaded_now = cached((path, device, dtype), lambda: load_model(path, device, dtype))
    return Encoder(tokenizer, model, device, max_length, pooling), loaded_now
