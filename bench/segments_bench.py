"""bench-segments: interest segments on MovieLens-100K.

ingest and embed-items (the real MiniLM model) run in a temporary folder, then the `segments` job with the settings
below. Reported:
- k and the cosine silhouette of the job's segmentation (on its seeded sample);
- genre_nmi: normalised mutual information (arithmetic mean of the entropies, sklearn's default) between the items'
  segments and their first genre, over the 1,682 items, on the driver;
- interest_hit_at_3: per user leave-last-out (`behaviorlm.metrics.leave_last_out`, ties by a seeded hash), the share
  of users whose held-out behaviour's item lies in one of their top-3 interest segments computed from the rest;
  global_hit_at_3: the same share for the 3 segments with the most behaviours in the rest (the baseline);
- the same two on the validation target (the last-but-one behaviour, interests from what precedes it): the only
  target settings were tuned on;
- silhouette and genre NMI of the same k in the raw and in the centred item space, over three seeds (the job
  clusters in the centred one, as `embed.center_items` says).
Run: `make bench-segments` (prints the `bench-segments ...` line last).
"""

from __future__ import annotations

import time

import numpy as np
from common import open_bench
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from behaviorlm.config import Config
from behaviorlm.interests import user_interests
from behaviorlm.metrics import leave_last_out
from behaviorlm.neighbors import split_valid, vector_dim
from behaviorlm.segments import cluster_items, silhouette
from behaviorlm.vectors import center
from jobs import embed_items, ingest, params, segments

# Tuned on silhouette, genre NMI and the validation target (see bench/results/segments.txt).
SETTINGS = ["segments.k_grid=[20, 24, 28, 32]", "segments.half_life_days=7.0"]


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def nmi(a: list[str], b: list[int]) -> float:
    """Normalised mutual information of two labelings, I(a; b) / mean(H(a), H(b)) (0 when both are constant)."""
    ia, ib = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    mutual = entropy(pa) + entropy(pb) - entropy(joint.ravel())
    mean = (entropy(pa) + entropy(pb)) / 2
    return mutual / mean if mean > 0 else 0.0


def genre_nmi(item_segments: DataFrame, items: DataFrame) -> float:
    """NMI of segments with the first genre ("none" for an item without genres); 1,682 rows on the driver."""
    first = F.coalesce(F.element_at("genres", 1), F.lit("none")).alias("genre")
    rows = item_segments.join(items.select("item_id", first), "item_id").select("genre", "segment_id").collect()
    return nmi([r["genre"] for r in rows], [r["segment_id"] for r in rows])


def hits_at_3(history: DataFrame, target: DataFrame, item_segments: DataFrame, cfg: Config) -> tuple[float, float]:
    """(share of target users whose target item's segment is among their top-3 interests from `history`, the same
    share for the 3 segments with the most `history` behaviours). A target without a segment is a miss."""
    s = cfg.segments
    interests = user_interests(history, item_segments, 3, s.half_life_days, s.recent_days, cfg.embed.event_weights)
    truth = target.select("user_id", "item_id").distinct().join(item_segments.select("item_id", "segment_id"),
                                                                "item_id", "left")  # fmt: skip
    users = truth.count()
    personal = truth.join(interests, ["user_id", "segment_id"]).count()
    largest = history.join(item_segments, "item_id").groupBy("segment_id").count()
    top = [r["segment_id"] for r in largest.orderBy(F.desc("count"), "segment_id").limit(3).collect()]
    common = truth.where(F.col("segment_id").isin(top)).count()
    return personal / users, common / users


def spaces(spark, cfg: Config, k: int, seeds: int = 3) -> list[str]:
    """Silhouette and genre NMI of a k-segmentation in the raw and in the centred item space, each the mean over
    `seeds` k-means seeds (one seed's numbers move by a few hundredths: which items start a cluster)."""
    raw = params.table(spark, cfg, "item_embeddings").select("item_id", "embedding")
    valid, _ = split_valid(raw, vector_dim(raw), id_col="item_id")
    items = params.table(spark, cfg, "items").cache()
    s = cfg.segments
    lines = []
    for name, vectors in (("raw", valid), ("centred", center(valid))):
        vectors = vectors.cache()
        scores = []
        for seed in range(cfg.seed, cfg.seed + seeds):
            found = cluster_items(vectors, k, seed, s.algorithm, s.max_iter, min_size=s.min_segment_size).cache()
            scores.append((silhouette(vectors, found, s.silhouette_sample, seed), genre_nmi(found, items)))
            found.unpersist()
        sil, genre = np.mean(scores, axis=0)
        lines.append(f"space {name}: k={k} silhouette={sil:.4f} genre_nmi={genre:.4f} (mean of seeds "
                     f"{cfg.seed}..{cfg.seed + seeds - 1})")  # fmt: skip
        vectors.unpersist()
    return lines


def evaluate(spark, cfg: Config) -> dict[str, float]:
    """genre NMI and hit@3 on the test and the validation target, for the job's segments of this run."""
    found = params.table(spark, cfg, "item_segments").where(F.col("run_id") == cfg.run_id).cache()
    behaviors = params.table(spark, cfg, "behaviors").select("user_id", "item_id", "event_type", "rating", "ts")
    behaviors = behaviors.localCheckpoint()
    history, test = leave_last_out(behaviors, cfg.seed)
    earlier, validation = leave_last_out(history, cfg.seed)
    out = {"genre_nmi": genre_nmi(found, params.table(spark, cfg, "items"))}
    out["val_interest_hit_at_3"], out["val_global_hit_at_3"] = hits_at_3(earlier, validation, found, cfg)
    out["interest_hit_at_3"], out["global_hit_at_3"] = hits_at_3(history, test, found, cfg)
    return out


def examples(spark, cfg: Config) -> list[str]:
    """Every segment of the run with its label."""
    table = params.table(spark, cfg, "segments").where(F.col("run_id") == cfg.run_id)
    rows = table.orderBy("segment_id").collect()
    return [f"segment {r['segment_id']} ({r['n_items']} items, {r['n_users']} users): {r['label']}" for r in rows]


def main() -> None:
    cfg, spark, root = open_bench("bench-segments", SETTINGS)
    start = time.perf_counter()
    ingest.run(spark, cfg)
    embed_items.run(spark, cfg)
    m = segments.run(spark, cfg)
    e = evaluate(spark, cfg)
    print("\n".join([*examples(spark, cfg), *spaces(spark, cfg, int(m["k"]))]), flush=True)
    print(f"validation (last-but-one): interest_hit_at_3={e['val_interest_hit_at_3']:.4f} "
          f"global_hit_at_3={e['val_global_hit_at_3']:.4f}")  # fmt: skip
    print(f"settings: {' '.join(SETTINGS)}; tables under {root}; {time.perf_counter() - start:.0f} s in all")
    print(
        f"bench-segments k={int(m['k'])} silhouette={m['silhouette']:.4f} genre_nmi={e['genre_nmi']:.4f} "
        f"interest_hit_at_3={e['interest_hit_at_3']:.4f} global_hit_at_3={e['global_hit_at_3']:.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
