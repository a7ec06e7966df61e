"""Which landmarks become attention tokens, and how they are normalised.

All 478 landmarks would make attention cost 5x more for little gain: neighbouring mesh
points move together. We keep every point of the parts that carry expression (inner and
outer lips, eyelids, brows, iris centres) and a thinned face oval and nose (jaw line,
cheeks, nostrils), ~100 tokens. Each token carries its position this frame AND its
displacement from the subject's mean position, the part that says "mouth open", "brow
up" independent of where the face is.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from shared.landmarks import canonical_face


@lru_cache(maxsize=1)
def token_ids() -> np.ndarray:
    """Sorted, unique landmark ids of the tokens (deterministic)."""
    cf = canonical_face()
    keep: list[int] = []
    for name in ("lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow",
                 "right_brow"):
        keep.extend(int(i) for i in cf.group(name))
    keep.extend(int(i) for i in cf.group("face_oval")[::2])
    keep.extend(int(i) for i in cf.group("nose")[::2])
    keep.extend([468, 473])  # iris centres: gaze
    ids = np.array(sorted(set(keep)), dtype=np.int64)
    ids.setflags(write=False)
    return ids
