"""The one function every render goes through: an animation (any source) -> the
``Conditioning`` a subject's field renders (``backend.nerf.pipeline``).

Used by ``facecast render`` (an ``anim.npz``), the ``render`` job (the add-on's and the
demo's requests), the benchmark and the tests. The contract itself (which arrays, which
head-pose frames, the torso anchor) is ``backend.subject.contract``; this module adds
what needs the subject:

1. topology and identity checks: landmarks of another layout, or of another person's
   face, are refused with the mismatch named;
2. retargeting: blendshapes are rebuilt on the subject's own neutral face
   (``retarget``); landmarks sent alone are the subject's own, and their blendshapes are
   solved on its neutral (the field is conditioned on both);
3. head and body poses in the Blender world (``head_and_body_poses``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backend.motion.face_basis import solve_blendshapes
from shared.errors import InputError
from shared.landmarks import canonical_face, estimate_neutral

from ..nerf.pipeline import Conditioning, check_conditioning
from .contract import (
    HEAD_POSE_FRAME_KEY,
    check_head_pose_frame,
    check_topology,
    head_and_body_poses,
)
from .retarget import retarget, subject_neutral

#: Beyond this RMS distance (metres) between the animation's calm face and the subject's
#: neutral, on the rigid points after a similarity fit, landmarks are another person's.
#: Measured on the example clips against d6's training neutral: d6's own 100-frame
#: windows 0.6-1.8 mm (held-out tail 1.2); other people d11 2.4, d3 2.5, d9 2.8, d14 2.9,
#: the motion model's canonical face 2.4 - but d12 (a man) only 1.5 mm: a proportions
#: check catches most other faces, not every one (``tests/render/test_render_contract.py``).
IDENTITY_TOLERANCE_M = 0.0022


def identity_distance(landmarks: np.ndarray, neutral: np.ndarray) -> float:
    """RMS distance (metres) between the calm face of ``landmarks`` [T, 478, 3] and
    ``neutral`` [478, 3] over the rigid points, after removing a similarity transform:
    how far the face's proportions (not its expression) differ."""
    from backend.tracking.head_pose import umeyama

    cf = canonical_face()
    ids, w = cf.stable_ids, cf.stable_weights.astype(np.float64)
    calm = estimate_neutral(landmarks) if len(landmarks) > 2 else np.median(landmarks, 0)
    src, dst = calm[ids].astype(np.float64), np.asarray(neutral, np.float64)[ids]
    rot, scale, t = umeyama(src, dst, w)
    fitted = scale * src @ rot.T + t
    return float(np.sqrt(np.sum(w * np.sum((fitted - dst) ** 2, axis=1)) / w.sum()))


def render_conditioning(arrays: Mapping[str, np.ndarray], manifest: dict, *,
                        head_pose_frame: str | None = None,
                        placement: np.ndarray | None = None,
                        body_pose: np.ndarray | None = None,
                        made_for: str | None = None,
                        sent: Conditioning | None = None) -> Conditioning:
    """Validate, check and retarget an animation for ``manifest``'s subject.

    ``arrays``: any of ``landmarks``, ``blendshapes``, ``head_pose`` (see
    ``backend.subject.contract``); ``head_pose_frame`` names the head pose's frame (also
    read from ``arrays[HEAD_POSE_FRAME_KEY]``, as an ``anim.npz`` stores it);
    ``made_for``: the subject an animation says it was made for (``anim.npz`` key
    ``subject``), refused when it is another one. ``sent``: the expression arrays as
    ``check_conditioning`` validated them at the boundary (the render service does, before
    any heavy work); without it they are validated here, once.
    """
    name = manifest.get("name", "?")
    if made_for and made_for != name:
        raise InputError(f"this animation was made for subject {made_for!r}, not {name!r}",
                         f"render it with subject {made_for!r}, or re-make it for {name!r}")
    if head_pose_frame is None and HEAD_POSE_FRAME_KEY in arrays:
        head_pose_frame = str(np.asarray(arrays[HEAD_POSE_FRAME_KEY]))
    frame = check_head_pose_frame(head_pose_frame, arrays.get("head_pose") is not None)
    if sent is None:
        landmarks = arrays.get("landmarks")
        if landmarks is not None:
            check_topology(landmarks)
        # Shapes, values and frame counts first, so errors name what the client sent.
        sent = check_conditioning(landmarks, arrays.get("blendshapes"), None)
    blendshapes = arrays.get("blendshapes")  # as sent: retargeted in the sender's dtype
    neutral = subject_neutral(manifest)
    if blendshapes is None and neutral is not None:
        dist = identity_distance(sent.landmarks, neutral)
        if dist > IDENTITY_TOLERANCE_M:
            raise InputError(
                f"these landmarks are another face than subject {name!r} (its proportions "
                f"differ by {dist * 1000:.1f} mm RMS on the rigid points; the same person "
                f"stays under {IDENTITY_TOLERANCE_M * 1000:.1f} mm)",
                "send the animation as ARKit blendshapes (they are retargeted onto the "
                "subject's own face), or landmarks tracked from this subject")
    retargeted = retarget({k: v for k, v in (("landmarks", sent.landmarks),
                                             ("blendshapes", blendshapes)) if v is not None},
                          manifest)
    lm = retargeted["landmarks"]
    bs = sent.blendshapes
    if bs is None and neutral is not None:
        bs = solve_blendshapes(lm, neutral)
    head, body = head_and_body_poses(len(lm), arrays.get("head_pose"), frame, placement,
                                     body_pose)
    # Made here from validated arrays: nothing left to check.
    return Conditioning(np.asarray(lm, np.float32),
                        None if bs is None else np.asarray(bs, np.float32), head, body)
