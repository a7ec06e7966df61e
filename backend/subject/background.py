"""Background plate: what the camera sees behind the person.

Training composites the field over this plate (the loss then compares whole pixels, so
the field learns alpha from colour as well as from the matte); evaluation composites
held-out renders over it to measure full-frame PSNR. The plate is the per-pixel median
of the frames where the matte says "background"; pixels the person covers in every
frame are filled from the nearest seen pixel (a talking-head camera is static, so there
is nothing better to show there, and the field covers them anyway).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter


def background_plate(frames: np.ndarray, mattes: np.ndarray, max_frames: int = 80,
                     threshold: float = 0.15) -> np.ndarray:
    """frames uint8 [T, H, W, 3], mattes [T, H, W] -> plate uint8 [H, W, 3]."""
    pick = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    f = frames[pick].astype(np.float32)
    bg = mattes[pick] < threshold
    f[~bg] = np.nan
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            plate = np.nanmedian(f, axis=0)  # [H, W, 3]
    seen = np.isfinite(plate[..., 0])
    if not seen.any():
        return np.full(frames.shape[1:], 127, dtype=np.uint8)
    _, (iy, ix) = distance_transform_edt(~seen, return_indices=True)
    filled = plate[iy, ix]
    # Soften the smeared fill so it reads as "unknown", not as streaks.
    soft = np.stack([gaussian_filter(filled[..., c], 4.0) for c in range(3)], axis=-1)
    filled = np.where(seen[..., None], filled, soft)
    return np.clip(filled, 0, 255).round().astype(np.uint8)
