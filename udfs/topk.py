"""Per-block exact top-K by cosine similarity (executor side, no Spark import): the kernel that both the exact and
the approximate similar-users modes run inside `cogroup(...).applyInPandas`.

Vectors are unit length, so cosine similarity is a dot product: one matrix product per block (numpy BLAS on CPU,
torch on a GPU when the task has one), then a partial sort per query row. Rows are sorted by key first so the
result never depends on the order Spark delivered them in (the final ranking across blocks breaks ties by
neighbour id).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OUTPUT_COLUMNS = ["user_id", "neighbor_id", "similarity"]


def _stack(series: pd.Series) -> np.ndarray:
    return np.stack(series.to_numpy()).astype(np.float32, copy=False) if len(series) else np.empty((0, 0), np.float32)


def block_topk(queries: pd.DataFrame, candidates: pd.DataFrame, k: int, device: str = "cpu") -> pd.DataFrame:
    """Top-`k` candidates per query (never the query itself) from two frames of (user_id, embedding)."""
    if queries.empty or candidates.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c != "similarity" else "float32") for c in OUTPUT_COLUMNS})
    queries = queries.sort_values("user_id", kind="stable")
    candidates = candidates.sort_values("user_id", kind="stable")
    q_ids = queries["user_id"].to_numpy()
    c_ids = candidates["user_id"].to_numpy()
    sims = _similarities(_stack(queries["embedding"]), _stack(candidates["embedding"]), device)
    # Self-matches: candidate ids are sorted, so each query finds itself by binary search.
    pos = np.searchsorted(c_ids, q_ids)
    hit = (pos < len(c_ids)) & (c_ids[np.minimum(pos, len(c_ids) - 1)] == q_ids)
    sims[np.nonzero(hit)[0], pos[hit]] = -np.inf
    take = min(k, sims.shape[1])
    # Stable descending sort on a partition is deterministic; equal similarities keep candidate-id order.
    part = (
        np.argpartition(-sims, take - 1, axis=1)[:, :take]
        if take < sims.shape[1]
        else np.tile(np.arange(sims.shape[1]), (sims.shape[0], 1))
    )
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -part_sims), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(sims, idx, axis=1)
    keep = np.isfinite(best)
    rows = np.repeat(np.arange(len(q_ids)), take).reshape(-1, take)
    return pd.DataFrame(
        {
            "user_id": q_ids[rows[keep]],
            "neighbor_id": c_ids[idx[keep]],
            "similarity": best[keep].astype(np.float32),
        }
    )


def _similarities(q: np.ndarray, c: np.ndarray, device: str) -> np.ndarray:
    if device.startswith("cuda"):
        import torch

        with torch.inference_mode():
            return (torch.from_numpy(q).to(device) @ torch.from_numpy(c).to(device).T).float().cpu().numpy()
    return q @ c.T
