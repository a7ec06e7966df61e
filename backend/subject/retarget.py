"""Put an animation on a subject's own face before rendering it.

The motion model and a rig speak ARKit blendshape weights; the NeRF is conditioned on
landmarks of the face it was trained on. Building those landmarks from the subject's own
neutral face (``neutral + basis @ w``) keeps the subject's identity — face shape and
proportions come from the capture, only the expression comes from the animation. Without
this, the canonical face's proportions would be imposed on every subject.
"""

from __future__ import annotations

import numpy as np

from backend.motion.face_basis import landmarks_from_blendshapes
from shared.landmarks import N_LANDMARKS


def subject_neutral(manifest: dict) -> np.ndarray | None:
    """The subject's neutral face-space landmarks ``[478, 3]`` (metres) from its manifest:
    the calm-frame median (``landmark_neutral``); older manifests only have the mean face,
    which is a fair neutral only for a calm talker (an expressive performer's mean face
    has a half-open mouth, so a closed-mouth command would render open)."""
    cond = manifest.get("conditioning", {})
    face = cond.get("landmark_neutral", cond.get("landmark_mean"))
    if face is None:
        return None
    neutral = np.asarray(face, np.float32)
    return neutral if neutral.shape == (N_LANDMARKS, 3) else None


def retarget(arrays: dict[str, np.ndarray], manifest: dict) -> dict[str, np.ndarray]:
    """Conditioning for rendering ``manifest``'s subject.

    With blendshapes, landmarks are rebuilt on the subject's neutral (any landmarks sent
    alongside carry another face's identity and are replaced). Landmarks sent alone are
    taken as the subject's own (e.g. tracked from its footage) and kept.
    """
    out = dict(arrays)
    neutral = subject_neutral(manifest)
    if "blendshapes" in arrays and neutral is not None:
        out["landmarks"] = landmarks_from_blendshapes(arrays["blendshapes"], neutral)
    return out
