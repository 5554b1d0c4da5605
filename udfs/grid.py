"""The rank of one user's target item under every weight combination of a grid (executor side, no Spark import):
the kernel of `behaviorlm.predict.tune`, run per user inside `groupBy(...).applyInPandas`.

A blend's score is a weighted sum of the sources; the target's rank under a combination is 1 + the candidates
scoring above it, or scoring the same with a larger popularity, or the same popularity and a smaller item id
(`scoring.blend`'s order). Scores are summed source by
source in the order `blend` adds them, so a tie `blend` sees is a tie here: the same floats, not nearly the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

OUTPUT_SCHEMA = "combo int, rank int"


def weighted_sums(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(rows x combinations) scores: values (rows x sources) weighted by weights (combinations x sources), added
    left to right, as Spark's `w0 * s0 + w1 * s1 + ...` does (a matrix product would add in another order)."""
    out = np.zeros((values.shape[0], weights.shape[0]))
    for j in range(values.shape[1]):
        out = out + values[:, j : j + 1] * weights[None, :, j]
    return out


def target_ranks(
    rows: pd.DataFrame,
    weights: np.ndarray,
    sources: Sequence[str],
    k: int,
    target_prefix: str = "_t_",
    tie: str = "popularity",
) -> pd.DataFrame:
    """(combo, rank) for each combination (row of `weights`) that ranks the user's target within the top `k`.
    `rows`: one user's candidates with the `sources` columns, `item_id`, `_target` (the target's id) and the target's
    own scores in `<target_prefix><source>` (the same on every row). Equal scores are ordered by the source `tie`
    (larger first) when it is one of `sources`, then by item id."""
    if rows.empty:
        return pd.DataFrame({"combo": pd.Series(dtype="int32"), "rank": pd.Series(dtype="int32")})
    scores = weighted_sums(rows[list(sources)].to_numpy(np.float64), weights)
    target = weighted_sums(rows[[f"{target_prefix}{s}" for s in sources]].to_numpy(np.float64)[:1], weights)
    earlier = rows["item_id"].to_numpy(object) < rows["_target"].to_numpy(object)
    if tie in sources:  # an equal score goes to the larger `tie`, then to the smaller id
        mine, theirs = rows[tie].to_numpy(np.float64), rows[f"{target_prefix}{tie}"].to_numpy(np.float64)
        earlier = (mine > theirs) | ((mine == theirs) & earlier)
    ahead = (scores > target) | ((scores == target) & earlier[:, None])
    ranks = 1 + ahead.sum(axis=0)
    combos = np.flatnonzero(ranks <= k)
    return pd.DataFrame({"combo": combos.astype("int32"), "rank": ranks[combos].astype("int32")})
