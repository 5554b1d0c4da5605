"""Default column names and parameters of the library, in one place (after Microsoft Recommenders'
`DEFAULT_USER_COL` style). Library functions take these as keyword defaults; jobs pass values from the config."""

from __future__ import annotations

USER_COL = "user_id"
ITEM_COL = "item_id"
RATING_COL = "rating"
TIME_COL = "ts"
EVENT_COL = "event_type"
TEXT_COL = "text"
VECTOR_COL = "embedding"
NEIGHBOR_COL = "neighbor_id"
SIMILARITY_COL = "similarity"
RANK_COL = "rank"
SCORE_COL = "score"

SEED = 42
# Rows per side of one blocked vector product: bounds what one task holds (4000 x 384 floats = 6 MB a side).
BLOCK_SIZE = 4000
# Below this norm a vector is treated as zero (cosine undefined): never divided by.
NORM_EPSILON = 1e-12
# A unit vector less than this far from the mean it is centred on IS that mean (float32 rounding leaves ~1e-6):
# normalising what is left would turn rounding noise into a random direction.
CENTRED_FLOOR = 1e-4
