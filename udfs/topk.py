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

OUTPUT_COLUMNS = ["id", "neighbor_id", "similarity"]
SCORE_COLUMNS = {"user_id": "object", "item_id": "object", "content": "float32", "top": "bool", "wanted": "bool"}


def _stack(series: pd.Series) -> np.ndarray:
    return np.stack(series.to_numpy()).astype(np.float32, copy=False) if len(series) else np.empty((0, 0), np.float32)


def block_topk(
    queries: pd.DataFrame, candidates: pd.DataFrame, k: int, device: str = "cpu", exclude_self: bool = True
) -> pd.DataFrame:
    """Top-`k` candidates per query from two frames of (id, embedding); with `exclude_self` (a set searched against
    itself) a query never finds its own id. Queries of another id space (users scored against items) pass False."""
    if queries.empty or candidates.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c != "similarity" else "float32") for c in OUTPUT_COLUMNS})
    queries = queries.sort_values("id", kind="stable")
    candidates = candidates.sort_values("id", kind="stable")
    q_ids = queries["id"].to_numpy()
    c_ids = candidates["id"].to_numpy()
    sims = _similarities(_stack(queries["embedding"]), _stack(candidates["embedding"]), device)
    if exclude_self:
        # Self-matches: candidate ids are sorted, so each query finds itself by binary search.
        pos = np.searchsorted(c_ids, q_ids)
        hit = (pos < len(c_ids)) & (c_ids[np.minimum(pos, len(c_ids) - 1)] == q_ids)
        sims[np.nonzero(hit)[0], pos[hit]] = -np.inf
    take = min(k, sims.shape[1])
    idx = top_columns(sims, take)
    best = np.take_along_axis(sims, idx, axis=1)
    keep = np.isfinite(best)
    rows = np.repeat(np.arange(len(q_ids)), take).reshape(-1, take)
    return pd.DataFrame(
        {
            "id": q_ids[rows[keep]],
            "neighbor_id": c_ids[idx[keep]],
            "similarity": best[keep].astype(np.float32),
        }
    )


def top_columns(sims: np.ndarray, take: int) -> np.ndarray:
    """Each row's `take` highest columns, highest first; equal values keep column order (deterministic)."""
    if take < sims.shape[1]:
        part = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    else:
        part = np.tile(np.arange(sims.shape[1]), (sims.shape[0], 1))
    order = np.lexsort((part, -np.take_along_axis(sims, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _similarities(q: np.ndarray, c: np.ndarray, device: str) -> np.ndarray:
    if device.startswith("cuda"):
        import torch

        with torch.inference_mode():
            return (torch.from_numpy(q).to(device) @ torch.from_numpy(c).to(device).T).float().cpu().numpy()
    return q @ c.T


def block_scores(queries: pd.DataFrame, items: pd.DataFrame, m: int, device: str = "cpu") -> pd.DataFrame:
    """Users x one block of items: each user's `m` best items in the block plus the score of every item the user
    listed in `wanted` (the other parts' candidates), from one matrix product.

    queries: user_id, embedding, wanted (list of item ids or None); items: item_id, embedding.
    Returns user_id, item_id, content (cosine), top (among the user's m best of the block), wanted.
    """
    if queries.empty or items.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SCORE_COLUMNS.items()})
    items = items.sort_values("item_id", kind="stable")
    item_ids = items["item_id"].to_numpy()
    sims = _similarities(_stack(queries["embedding"]), _stack(items["embedding"]), device)
    take = min(m, sims.shape[1])
    best = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    r_top, c_top = np.repeat(np.arange(len(queries)), take), best.ravel()
    wanted = [w if w is not None else [] for w in queries["wanted"].to_numpy()]
    lengths = np.fromiter((len(w) for w in wanted), dtype=np.int64, count=len(wanted))
    flat = np.concatenate([np.asarray(w, dtype=object) for w in wanted]) if lengths.sum() else np.empty(0, object)
    # Wanted ids are looked up in the block; ids it does not hold (-1) are dropped.
    c_want = pd.Index(item_ids).get_indexer(flat)
    r_want = np.repeat(np.arange(len(queries)), lengths)[c_want >= 0]
    c_want = c_want[c_want >= 0]
    both = pd.DataFrame(
        {
            "r": np.concatenate([r_top, r_want]),
            "c": np.concatenate([c_top, c_want]),
            "top": np.concatenate([np.ones(len(r_top), bool), np.zeros(len(r_want), bool)]),
            "wanted": np.concatenate([np.zeros(len(r_top), bool), np.ones(len(r_want), bool)]),
        }
    )
    # A pair can be both among the best and wanted: one row with both flags.
    merged = both.groupby(["r", "c"], sort=True).max().reset_index()
    r, c = merged["r"].to_numpy(), merged["c"].to_numpy()
    flags = merged[["top", "wanted"]].to_numpy()
    return pd.DataFrame(
        {
            "user_id": queries["user_id"].to_numpy()[r],
            "item_id": item_ids[c],
            "content": sims[r, c].astype(np.float32),
            "top": flags[:, 0],
            "wanted": flags[:, 1],
        }
    )


def closest_rows(targets: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """For one user: each target item's closest history entry by cosine.

    targets: user_id, item_id, embedding; history: user_id, label, embedding (unit vectors).
    Returns user_id, item_id, label (the closest history entry's label; None when two entries tie for closest) and
    similarity (its cosine).
    """
    if targets.empty or history.empty:
        empty = {c: pd.Series(dtype="object") for c in ("user_id", "item_id", "label")}
        return pd.DataFrame({**empty, "similarity": pd.Series(dtype="float64")})
    sims = _stack(targets["embedding"]) @ _stack(history["embedding"]).T
    best = np.argmax(sims, axis=1)
    labels = history["label"].to_numpy()[best].astype(object)
    if sims.shape[1] > 1:
        # Two history entries equally close: naming either would be a guess made by row order, so name none.
        top2 = -np.partition(-sims, 1, axis=1)[:, :2]
        labels[np.isclose(top2[:, 0], top2[:, 1], rtol=0.0, atol=1e-6)] = None
    return pd.DataFrame(
        {
            "user_id": targets["user_id"].to_numpy(),
            "item_id": targets["item_id"].to_numpy(),
            "label": labels,
            "similarity": sims[np.arange(len(best)), best].astype(np.float64),
        }
    )
