"""Alpha matte of the person in every frame: mediapipe's selfie segmentation.

Why this model: it ships inside the mediapipe wheel we already depend on for tracking
(``mediapipe/modules/selfie_segmentation/*.tflite``), is cheap enough to run on every
frame on one CPU core, and segments head, hair and shoulders together - exactly the bust the
NeRF models (``backend.nerf.components.geometry``). Its soft output is used as-is: a soft edge
teaches the field semi-transparent hair instead of a jagged cut-out.
"""

from __future__ import annotations

import os

import numpy as np


def person_mattes(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] -> soft person alpha, float32 [T, H, W] in [0, 1]."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    from mediapipe.python.solutions import selfie_segmentation

    from ..progress import progress
    from ..tracking.quiet import quiet_native_logs

    out = np.empty(frames.shape[:3], dtype=np.float32)
    # model_selection=0: the square "general" model, better than the landscape one for
    # head-and-shoulders framing.
    with quiet_native_logs(), progress(len(frames), "matting", "frame") as bar, \
            selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        for i, frame in enumerate(frames):
            mask = seg.process(np.ascontiguousarray(frame)).segmentation_mask
            out[i] = np.clip(mask, 0.0, 1.0)
            bar.update(1)
    return out
