"""The canonical face landmark topology (mediapipe face mesh, 478 points) and FACS metrics.

One topology for everything: the tracker's output, the motion model's landmarks, the
NeRF's conditioning and the benchmarks all index the same 478 points, so a metric written
here means the same thing on tracked video, generated animation and rendered frames.

Canonical head frame (``canonical_face().vertices``, metres)
-------------------------------------------------------------
* Origin: mediapipe's canonical-model origin, inside the head on the mid-sagittal plane,
  about 7.5 cm behind the nose tip (1), at roughly cheekbone height.
* +X points to the SUBJECT'S LEFT (the viewer's right when facing the person):
  landmark 263 (left outer eye corner) has x > 0, landmark 33 (right eye) x < 0.
* +Y points up (forehead 10 above chin 152).
* +Z points out of the face, towards a camera that looks at the face (nose tip has the
  largest z).
* Right-handed (X x Y = Z), like Blender. In Blender's Z-up object space the same points
  are ``(X, -Z, Y)`` (a +90 degree rotation about X, see ``to_blender_axes``): the face
  then looks along -Y, i.e. into Blender's Front view (numpad 1).
* Landmark names "left"/"right" are always the subject's own side (as in mediapipe).

Points 0..467 are mediapipe's canonical mesh; 468..477 are the irises (468 right-iris
centre + 469..472 ring, 473 left-iris centre + 474..477 ring; ring order +X, +Y, -X, -Y),
synthesised at the eye centres because the canonical mesh has none. See
``backend/tracking/make_canonical.py`` for how ``canonical_face.npz`` is produced.

Metrics
-------
Every metric takes landmarks shaped ``[..., 478, 2 or 3]`` in any units and frame (image
pixels with y down, camera space, or pose-free face space) and is scale-free: lengths are
divided by the inter-ocular distance and "up" is measured along the face's own vertical
axis (nasion above subnasale, made orthogonal to the eye line), so head roll, image y-down
and the distance to the camera do not change the value. For head yaw/pitch invariance
pass face-space landmarks (``backend.tracking.head_pose``). Frames whose landmarks are NaN
(no face found) give NaN, so a tracked clip can be measured whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import InputError

N_LANDMARKS = 478  # with refined irises
N_MESH = 468  # canonical mesh vertices (no irises)

# --- key points (subject's left/right) -----------------------------------------------
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14  # mid-points of the inner lip contour
UPPER_OUTER_LIP, LOWER_OUTER_LIP = 0, 17
RIGHT_LIP_CORNER, LEFT_LIP_CORNER = 61, 291
NOSE_TIP, SUBNASALE, NASION = 1, 2, 168
FOREHEAD, CHIN = 10, 152
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473
RIGHT_BROW_INNER = (107, 55)  # upper and lower edge of the brow's inner end
LEFT_BROW_INNER = (336, 285)
RIGHT_BROW_OUTER = (70, 46)
LEFT_BROW_OUTER = (300, 276)

# Vertically aligned (upper, lower) pairs; checked against the canonical mesh in tests.
INNER_LIP_PAIRS = ((82, 87), (13, 14), (312, 317))
RIGHT_EYE_LID_PAIRS = ((160, 144), (159, 145), (158, 153))
LEFT_EYE_LID_PAIRS = ((387, 373), (386, 374), (385, 380))

# Rigid-fit points: mediapipe's own procrustes basis (forehead, eye corners, nose,
# upper cheeks) without the jaw and lower-cheek points, which move with speech and smiles
# and would let the mouth drag the head pose.
_NON_RIGID = frozenset({132, 136, 147, 205, 361, 365, 376, 425})

GROUP_NAMES = ("lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow",
               "right_brow", "face_oval", "nose", "left_iris", "right_iris")

_DATA_FILE = Path(__file__).with_name("canonical_face.npz")


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face: read-only arrays loaded once from ``canonical_face.npz``."""

    vertices: np.ndarray  # float32 [478, 3], metres, head frame documented above
    triangles: np.ndarray  # int32 [898, 3], counter-clockwise seen from outside
    uv: np.ndarray  # float32 [468, 2], mediapipe texture coordinates
    groups: dict[str, np.ndarray]  # name -> int32 landmark ids (loops are ordered)
    stable_ids: np.ndarray  # int32 [K], points for rigid head-pose fitting
    stable_weights: np.ndarray  # float32 [K], sum to 1

    def group(self, name: str) -> np.ndarray:
        """Landmark ids of a named group, e.g. ``"lips_inner"``."""
        if name not in self.groups:
            raise InputError(f"unknown landmark group {name!r}",
                             f"use one of: {', '.join(GROUP_NAMES)}")
        return self.groups[name]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


@lru_cache(maxsize=1)
def canonical_face() -> CanonicalFace:
    """Load the canonical face shipped next to this module (numpy only, no pickle)."""
    try:
        with np.load(_DATA_FILE, allow_pickle=False) as d:
            groups = {n: _readonly(d[f"group_{n}"]) for n in GROUP_NAMES}
            ids, w = d["basis_ids"], d["basis_weights"].astype(np.float64)
            keep = np.array([i not in _NON_RIGID for i in ids])
            w = w[keep] / w[keep].sum()
            return CanonicalFace(_readonly(d["vertices"]), _readonly(d["triangles"]),
                                 _readonly(d["uv"]), groups, _readonly(ids[keep]),
                                 _readonly(w.astype(np.float32)))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"the canonical face data {_DATA_FILE.name} is missing or damaged",
                         "reinstall Facecast (or the add-on); regenerate it with "
                         "backend/tracking/make_canonical.py") from exc


def to_blender_axes(points: np.ndarray) -> np.ndarray:
    """Head-frame points (+Y up, +Z out of the face) -> Blender's Z-up axes (X, -Z, Y)."""
    p = np.asarray(points)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


#: The change of basis ``to_blender_axes`` applies, as a 4x4 matrix.
HEAD_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def pose_to_blender_axes(poses: np.ndarray) -> np.ndarray:
    """Head-frame transforms ``[..., 4, 4]`` -> the same motions expressed in Blender's
    axes, so that ``pose_to_blender_axes(P) @ to_blender_axes(p) == to_blender_axes(P @ p)``.
    A yaw about the head's +Y becomes a turn about Blender's +Z, not a roll."""
    return HEAD_TO_BLENDER @ np.asarray(poses, dtype=np.float64) @ HEAD_TO_BLENDER.T


# --- metrics -------------------------------------------------------------------------

def _check(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim < 2 or lm.shape[-2] < N_MESH or lm.shape[-1] not in (2, 3):
        raise InputError(f"landmarks must be shaped [..., 478, 2 or 3], got {lm.shape}",
                         "pass face-mesh landmarks (468 or 478 points) with x, y (and z)")
    return lm


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (33, 263) in the landmarks' own units.

    The outer corners are bony landmarks (lateral canthi) that expressions barely move,
    which makes this the scale every other metric divides by.
    """
    lm = _check(landmarks)
    return np.linalg.norm(lm[..., LEFT_EYE_OUTER, :] - lm[..., RIGHT_EYE_OUTER, :], axis=-1)


def _up_axis(lm: np.ndarray) -> np.ndarray:
    """Unit vector along the face's own vertical, from the rigid points only.

    The orthogonal Procrustes rotation (reflections allowed, so image y-down works) that
    best maps the canonical stable points onto ``lm`` carries canonical +Y to the face's
    up. A single landmark pair (nasion-subnasale) would be tilted ~9 degrees in depth and
    mix z into "height"; the fitted frame does not.
    """
    cf = canonical_face()
    d = lm.shape[-1]
    w = cf.stable_weights.astype(np.float64)[:, None]
    src = cf.vertices[cf.stable_ids, :d].astype(np.float64)
    src = src - (w * src).sum(axis=0)
    dst = lm[..., cf.stable_ids, :]
    dst = dst - (w * dst).sum(axis=-2, keepdims=True)
    cov = np.swapaxes(dst, -1, -2) @ (w * src)  # [..., d, d]
    u, _, vt = np.linalg.svd(np.nan_to_num(cov))
    rot = u @ vt  # best orthogonal map canonical -> landmarks
    up = rot[..., :, 1]
    bad = ~np.all(np.isfinite(dst), axis=(-1, -2))
    return np.where(bad[..., None], np.nan, up)


def _height(lm: np.ndarray, ids, ref_ids) -> np.ndarray:
    """Mean height of ``ids`` above the mean of ``ref_ids``, in inter-ocular units."""
    d = lm[..., list(ids), :].mean(axis=-2) - lm[..., list(ref_ids), :].mean(axis=-2)
    return np.sum(d * _up_axis(lm), axis=-1) / inter_ocular(lm)


def _pair_gap(lm: np.ndarray, pairs) -> np.ndarray:
    up = _up_axis(lm)
    upper = lm[..., [p[0] for p in pairs], :]
    lower = lm[..., [p[1] for p in pairs], :]
    gap = np.sum((upper - lower) * up[..., None, :], axis=-1).mean(axis=-1)
    return np.maximum(gap, 0.0) / inter_ocular(lm)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap / inter-ocular distance (0 = lips together; ~0.06 canonical).

    Averaged over three vertical pairs across the inner lip (centre and both sides of it)
    so one noisy point cannot fake speech; measured along the face's vertical so a
    sideways lip shift does not count as opening. This is the lip-sync metric (AU25/26).
    """
    return _pair_gap(_check(landmarks), INNER_LIP_PAIRS)


def eye_opening(landmarks: np.ndarray, per_eye: bool = False) -> np.ndarray:
    """Eyelid gap / inter-ocular distance (blinks -> ~0; AU5 widens, AU7/AU43 narrows).

    Mean of both eyes, or ``[..., 2]`` as (right, left) when ``per_eye``.
    """
    lm = _check(landmarks)
    right = _pair_gap(lm, RIGHT_EYE_LID_PAIRS)
    left = _pair_gap(lm, LEFT_EYE_LID_PAIRS)
    return np.stack([right, left], axis=-1) if per_eye else 0.5 * (right + left)


def lip_corner_height(landmarks: np.ndarray) -> np.ndarray:
    """Height of the lip corners (61, 291) above the mouth centre / inter-ocular distance.

    Positive when the corners rise (smile, AU12), negative when they drop (AU15). The
    reference is the middle of the inner-lip gap, which moves with the jaw the way the
    corners do, so opening the mouth alone barely changes the value.
    """
    return _height(_check(landmarks), (RIGHT_LIP_CORNER, LEFT_LIP_CORNER),
                   (UPPER_INNER_LIP, LOWER_INNER_LIP))


def brow_height(landmarks: np.ndarray) -> np.ndarray:
    """Mean height of both whole brows above the four eye corners / inter-ocular distance.

    Rises with AU1+AU2 (surprise), falls with AU4 (anger). Eye corners are the reference
    because, unlike the lids, they stay put when the eyes open or close.
    """
    lm = _check(landmarks)
    cf = canonical_face()
    brows = np.concatenate([cf.groups["right_brow"], cf.groups["left_brow"]])
    return _height(lm, brows, (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER,
                               LEFT_EYE_OUTER))


def inner_brow_height(landmarks: np.ndarray) -> np.ndarray:
    """Height of the inner brow ends above the inner eye corners / inter-ocular distance.

    The AU1 (inner brow raiser, sadness/surprise) vs AU4 (brow lowerer) signal, separate
    from the whole-brow lift.
    """
    return _height(_check(landmarks), RIGHT_BROW_INNER + LEFT_BROW_INNER,
                   (RIGHT_EYE_INNER, LEFT_EYE_INNER))


def estimate_neutral(face_landmarks: np.ndarray) -> np.ndarray:
    """The speaker's neutral face: per-point median over calm frames.

    Calm = mouth among the most closed fifth (between words) and eyes not blinking. The
    median, not the mean, so a few expressive frames cannot shift it; per person, because
    face proportions differ between people and a canonical neutral would read identity
    as expression. Used for the motion data (blendshapes are solved against it) and for
    subjects (animation is retargeted onto it: the MEAN face of an expressive performer
    has a half-open mouth).
    """
    return np.median(face_landmarks[calm_frames(face_landmarks)], axis=0).astype(np.float32)


def calm_frames(face_landmarks: np.ndarray) -> np.ndarray:
    """bool [T]: the frames ``estimate_neutral`` takes the neutral face from (mouth among
    the most closed fifth, eyes not blinking; every finite frame when fewer than 3)."""
    mo = mouth_opening(face_landmarks)
    eo = eye_opening(face_landmarks)
    calm = (mo <= np.nanpercentile(mo, 20)) & (eo >= np.nanpercentile(eo, 30))
    return calm if calm.sum() >= 3 else np.isfinite(mo)
