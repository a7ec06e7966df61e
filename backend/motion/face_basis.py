"""A linear ARKit-52 blendshape basis on the 478 canonical face landmarks.

Why one linear basis: the motion model, the data engine (solving tracked video into
blendshape weights), the demo rig's shape keys and the NeRF conditioning must all agree on
what "jawOpen = 0.4" means. A linear basis makes the map both ways cheap and exact:
``landmarks = neutral + w @ basis`` and a bounded least-squares solve back.

Each channel is a displacement field (metres, canonical head frame of
``shared.landmarks``: +X the subject's left, +Y up, +Z out of the face) at full weight,
built procedurally from a few anatomical handles (lip contours, lids, brows, lip corners)
spread to the surrounding skin with a smooth Gaussian falloff. Zero-displacement anchors
(e.g. the upper lip for the jaw) stop a field leaking across a lip or a lid. Left/Right
channels act on the subject's own side, as the landmark names do.

Nothing is fitted to data, so the basis is the same on every machine and in Blender; the
data engine measures how well it explains tracked video (the solve residual).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from shared.blendshapes import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX
from shared.errors import InputError
from shared.landmarks import N_LANDMARKS, canonical_face

CM = 0.01  # the fields below are written in centimetres, stored in metres
N_SHAPES = len(ARKIT_BLENDSHAPES)
JAW_PIVOT_CM = np.array([0.0, 0.5, -1.5])  # near the temporomandibular joints
JAW_OPEN_DEG = 16.0  # jawOpen = 1: a wide-open mouth (~2.5 cm lip gap)

# Channels whose fields lie on the mouth/jaw (what speech drives).
MOUTH_CHANNELS: tuple[str, ...] = tuple(
    n for n in ARKIT_BLENDSHAPES if n.startswith(("jaw", "mouth")))


# ----------------------------------------------------------------- geometry helpers


def _verts_cm() -> np.ndarray:
    return canonical_face().vertices.astype(np.float64) / CM


def _lip_sides(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, lower, corner) lip contour ids, split by the line through the corners."""
    cf = canonical_face()
    ids = np.concatenate([cf.groups["lips_outer"], cf.groups["lips_inner"]])
    corners = np.array([61, 291, 78, 308])
    rest = ids[~np.isin(ids, corners)]
    mid_y = v[corners, 1].mean()
    return rest[v[rest, 1] > mid_y], rest[v[rest, 1] <= mid_y], corners


def _eye_lids(v: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper lid ids, lower lid ids, the two corner ids) of one eye contour."""
    ids = canonical_face().groups[f"{side}_eye"]
    xs = v[ids, 0]
    corners = ids[[int(np.argmin(xs)), int(np.argmax(xs))]]
    rest = ids[~np.isin(ids, corners)]
    line = np.interp(v[rest, 0], v[corners, 0][np.argsort(v[corners, 0])],
                     v[corners, 1][np.argsort(v[corners, 0])])
    return rest[v[rest, 1] > line], rest[v[rest, 1] <= line], corners


def _lid_gap(v: np.ndarray, upper: np.ndarray, lower: np.ndarray, at: np.ndarray
             ) -> np.ndarray:
    """Vertical lid gap (cm) at the x of each id in ``at``, from the two lid curves."""
    def curve(ids: np.ndarray) -> np.ndarray:
        order = np.argsort(v[ids, 0])
        return np.interp(v[at, 0], v[ids, 0][order], v[ids, 1][order])
    return np.maximum(curve(upper) - curve(lower), 0.0)


def _spread(v: np.ndarray, handles: np.ndarray, disp: np.ndarray, radius: float,
            floor: float = 0.15) -> np.ndarray:
    """Displacement field from handle displacements, smooth between and fading outside.

    A normalised Gaussian blend (Shepard-style) so nearby handles with different motion
    (upper vs lower lid) each own their side, divided by ``sum + floor`` so the field fades
    to zero away from all handles. Handles keep their exact displacement.
    """
    d2 = np.sum((v[:, None, :] - v[handles][None, :, :]) ** 2, axis=-1)
    phi = np.exp(-0.5 * d2 / radius**2)
    field = phi @ disp / (phi.sum(axis=1, keepdims=True) + floor)
    field[handles] = disp
    return field


def _gauss(v: np.ndarray, centre, sigma: float) -> np.ndarray:
    """Radial Gaussian weight [N] around a point (cm)."""
    return np.exp(-0.5 * np.sum((v - np.asarray(centre)) ** 2, axis=1) / sigma**2)


def _side(v: np.ndarray, sign: float, width: float = 0.5) -> np.ndarray:
    """Smooth 0..1 mask of the subject's left (sign=+1) or right (sign=-1) half."""
    return 1.0 / (1.0 + np.exp(-sign * v[:, 0] / width))


def _jaw_mask(v: np.ndarray) -> np.ndarray:
    """0..1 weight of how much each point rides on the mandible.

    Below a line through the mouth that rises towards the ears (the jaw line), 1; above,
    0; the lip contours are pinned (lower lip 1, upper lip 0, corners 0.5) and blended in
    so the mouth opens between the lips, never through one.
    """
    upper, lower, corners = _lip_sides(v)
    boundary = -4.25 + 0.45 * np.maximum(np.abs(v[:, 0]) - 2.0, 0.0)
    base = 1.0 / (1.0 + np.exp(-(boundary - v[:, 1]) / 0.35))
    handles = np.concatenate([upper, lower, corners])
    values = np.concatenate([np.zeros(len(upper)), np.ones(len(lower)),
                             np.full(len(corners), 0.5)])
    d2 = np.sum((v[:, None, :] - v[handles][None]) ** 2, axis=-1)
    phi = np.exp(-0.5 * d2 / 0.35**2)
    mask = (phi @ values + 0.3 * base) / (phi.sum(axis=1) + 0.3)
    mask[handles] = values
    return mask


def _rotation_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _jaw_open_field(v: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    rel = v - JAW_PIVOT_CM
    return jaw[:, None] * (rel @ _rotation_x(JAW_OPEN_DEG).T - rel)


# ----------------------------------------------------------------- the channels


def _build(v: np.ndarray) -> dict[str, np.ndarray]:
    n = len(v)
    fields: dict[str, np.ndarray] = {}
    upper, lower, corners = _lip_sides(v)
    lips = np.concatenate([upper, lower, corners])
    jaw = _jaw_mask(v)
    mouth_centre = v[[13, 14]].mean(axis=0)
    irises = np.arange(468, N_LANDMARKS)
    lip_area = _gauss(v, mouth_centre, 1.8)
    upper_lip = (1.0 - jaw) * lip_area
    lower_lip = jaw * lip_area
    jaw_open = _jaw_open_field(v, jaw)

    # --- jaw
    fields["jawOpen"] = jaw_open
    fields["jawForward"] = jaw[:, None] * np.array([0.0, 0.0, 0.6])
    fields["jawLeft"] = jaw[:, None] * np.array([0.7, 0.0, 0.0])
    fields["jawRight"] = jaw[:, None] * np.array([-0.7, 0.0, 0.0])

    # --- lips: mouthClose undoes the jaw's lip opening (lips meet half way)
    lip_zone = np.minimum(1.0, 1.5 * _gauss(v, mouth_centre, 2.2))
    lower_gap = jaw_open[lower].mean(axis=0)
    close = -0.55 * lip_zone[:, None] * jaw_open \
        + 0.45 * ((1.0 - jaw) * lip_zone * _gauss(v, mouth_centre, 1.6))[:, None] * lower_gap
    fields["mouthClose"] = close

    centre_x = np.where(np.abs(v[:, 0]) < 1e-6, 0.0, np.sign(v[:, 0]))
    fields["mouthFunnel"] = lip_area[:, None] * np.stack(
        [-0.45 * centre_x * np.minimum(np.abs(v[:, 0]) / 2.5, 1.0),
         0.25 * np.where(jaw > 0.5, -1.0, 1.0) * _gauss(v, mouth_centre, 1.0),
         np.full(n, 0.55)], axis=1)
    fields["mouthPucker"] = lip_area[:, None] * np.stack(
        [-0.7 * centre_x * np.minimum(np.abs(v[:, 0]) / 2.5, 1.0),
         -0.1 * (1.0 - jaw) + 0.1 * jaw, np.full(n, 0.7)], axis=1)
    fields["mouthLeft"] = _gauss(v, mouth_centre, 2.2)[:, None] * np.array([0.7, 0.0, 0.0])
    fields["mouthRight"] = _gauss(v, mouth_centre, 2.2)[:, None] * np.array([-0.7, 0.0, 0.0])

    for suffix, sign, corner in (("Left", 1.0, 291), ("Right", -1.0, 61)):
        c = v[corner]
        near = _gauss(v, c, 1.2)
        fields[f"mouthSmile{suffix}"] = near[:, None] * np.array([0.45 * sign, 0.7, -0.3]) \
            + _gauss(v, c + np.array([0.6 * sign, 1.2, 0.0]), 1.3)[:, None] * [0, 0.3, 0.15]
        fields[f"mouthFrown{suffix}"] = near[:, None] * np.array([0.1 * sign, -0.6, 0.0])
        fields[f"mouthDimple{suffix}"] = _gauss(v, c, 1.0)[:, None] * np.array(
            [0.35 * sign, 0.0, -0.35])
        fields[f"mouthStretch{suffix}"] = _gauss(v, c, 1.3)[:, None] * np.array(
            [0.5 * sign, -0.25, -0.1]) + (lower_lip * _side(v, sign))[:, None] * [0, -0.15, 0]
        side_lip = _side(v, sign) * _gauss(v, mouth_centre + np.array([0.9 * sign, 0.0, 0.0]), 1.3)
        fields[f"mouthPress{suffix}"] = side_lip[:, None] * (
            (1.0 - jaw)[:, None] * [0, -0.12, 0] + jaw[:, None] * [0, 0.15, -0.05])
        fields[f"mouthLowerDown{suffix}"] = (lower_lip * side_lip)[:, None] * [0, -0.5, 0.05]
        fields[f"mouthUpperUp{suffix}"] = (upper_lip * side_lip)[:, None] * [0, 0.5, 0.05]

    outer = np.isin(np.arange(n), canonical_face().groups["lips_outer"])
    roll_w = np.where(outer, 1.0, 0.6)
    fields["mouthRollLower"] = (lower_lip * roll_w * _gauss(v, mouth_centre, 1.5))[:, None] \
        * [0, 0.25, -0.35]
    fields["mouthRollUpper"] = (upper_lip * roll_w * _gauss(v, mouth_centre, 1.5))[:, None] \
        * [0, -0.25, -0.35]
    chin = 0.5 * (v[17] + v[152])
    fields["mouthShrugLower"] = (jaw * _gauss(v, chin, 1.6))[:, None] * [0, 0.4, 0.15]
    fields["mouthShrugUpper"] = upper_lip[:, None] * [0, 0.25, 0.1]

    # --- eyes: lids from the contours, skin around follows with a short falloff
    for suffix, side, sign in (("Left", "left", 1.0), ("Right", "right", -1.0)):
        up, lo, eye_corners = _eye_lids(v, side)
        brow = canonical_face().groups[f"{side}_brow"]
        handles = np.concatenate([up, lo, eye_corners, brow])
        gap_up = _lid_gap(v, up, lo, up)
        gap_lo = _lid_gap(v, up, lo, lo)

        def lid_field(up_dy: np.ndarray, lo_dy: np.ndarray, handles=handles,
                      up=up, lo=lo) -> np.ndarray:
            disp = np.zeros((len(handles), 3))
            disp[: len(up), 1] = up_dy
            disp[len(up): len(up) + len(lo), 1] = lo_dy
            out = _spread(v, handles, disp, 0.45)
            out[irises] = 0.0
            return out

        fields[f"eyeBlink{suffix}"] = lid_field(-0.85 * gap_up, 0.15 * gap_lo)
        fields[f"eyeSquint{suffix}"] = lid_field(-0.12 * gap_up, 0.3 * gap_lo)
        fields[f"eyeWide{suffix}"] = lid_field(0.3 * gap_up + 0.12, -0.05 * gap_lo)
        iris = irises[:5] if side == "right" else irises[5:]
        for look, vec in (("Up", [0, 0.35, 0]), ("Down", [0, -0.35, 0]),
                          ("In", [-0.45 * sign, 0, 0]), ("Out", [0.45 * sign, 0, 0])):
            f = np.zeros((n, 3))
            f[iris] = vec
            if look in ("Up", "Down"):  # the upper lid follows the gaze a little
                f += lid_field(np.full(len(up), 0.3 * vec[1]), np.full(len(lo), 0.1 * vec[1]))
                f[iris] = vec
            fields[f"eyeLook{look}{suffix}"] = f

        # --- brows
        inner = np.array([107, 55] if side == "right" else [336, 285])
        outer_b = np.array([70, 46] if side == "right" else [300, 276])
        brow_c = v[brow].mean(axis=0)
        eye_anchor = np.concatenate([up, lo, eye_corners])
        b_handles = np.concatenate([brow, eye_anchor])
        down = np.zeros((len(b_handles), 3))
        down[: len(brow)] = [-0.15 * sign, -0.5, 0.05]
        down[: len(brow), 0] *= 1.0 + (np.abs(v[brow, 0]) < 2.0)
        fields[f"browDown{suffix}"] = _spread(v, b_handles, down, 0.9) \
            * (np.abs(v[:, 1] - brow_c[1]) < 4.0)[:, None]
        raise_outer = np.zeros((len(b_handles), 3))
        raise_outer[: len(brow), 1] = 0.6 * np.clip(
            (np.abs(v[brow, 0]) - 1.5) / 3.0, 0.0, 1.0)
        fields[f"browOuterUp{suffix}"] = _spread(v, b_handles, raise_outer, 0.9)
        del inner, outer_b

    # browInnerUp: both inner brow ends (and the forehead just above) rise
    b_all = np.concatenate([canonical_face().groups["left_brow"],
                            canonical_face().groups["right_brow"]])
    eyes = np.concatenate([canonical_face().groups["left_eye"],
                           canonical_face().groups["right_eye"]])
    handles = np.concatenate([b_all, eyes])
    disp = np.zeros((len(handles), 3))
    disp[: len(b_all), 1] = 0.6 * np.clip(1.0 - (np.abs(v[b_all, 0]) - 1.2) / 2.5, 0.0, 1.0)
    disp[: len(b_all), 0] = 0.08 * np.sign(v[b_all, 0])
    fields["browInnerUp"] = _spread(v, handles, disp, 0.9)

    # --- cheeks and nose
    for suffix, sign in (("Left", 1.0), ("Right", -1.0)):
        cheek = np.array([3.6 * sign, -1.0, 4.6])
        fields[f"cheekSquint{suffix}"] = _gauss(v, cheek, 1.3)[:, None] * [0.0, 0.35, 0.1] \
            + _gauss(v, [3.2 * sign, 2.1, 3.9], 0.5)[:, None] * [0.0, 0.1, 0.0]
        fields[f"noseSneer{suffix}"] = _gauss(v, [1.3 * sign, -1.3, 5.3], 0.9)[:, None] \
            * [0.05 * sign, 0.35, 0.0] + (upper_lip * _side(v, sign))[:, None] * [0, 0.12, 0]
    puff = np.zeros((n, 3))
    for sign in (1.0, -1.0):
        puff += _gauss(v, [4.2 * sign, -3.5, 4.0], 1.4)[:, None] * [0.5 * sign, 0.0, 0.25]
    fields["cheekPuff"] = puff
    # No tongue landmarks: tongueOut shows as the lower lip pushed down and out.
    fields["tongueOut"] = (lower_lip * _gauss(v, mouth_centre, 1.2))[:, None] * [0, -0.25, 0.3]

    del lips
    return fields


# Bony points that define identity (eye corners, nasion, nose tip, cheekbone width):
# expressions must not move them, or an emotion would change the face's proportions.
IDENTITY_POINTS: tuple[int, ...] = (33, 263, 168, 1, 234, 454)


def _rigid_mask(v: np.ndarray) -> np.ndarray:
    """1 everywhere except a smooth 0 at the identity points (radius ~4 mm)."""
    d2 = np.sum((v[:, None, :] - v[list(IDENTITY_POINTS)][None]) ** 2, axis=-1)
    return 1.0 - np.exp(-0.5 * d2 / 0.4**2).max(axis=1)


@lru_cache(maxsize=1)
def basis() -> np.ndarray:
    """Displacement fields float32[52, 478, 3] (metres) in ``ARKIT_BLENDSHAPES`` order."""
    v = _verts_cm()
    fields = _build(v)
    missing = set(ARKIT_BLENDSHAPES) - set(fields)
    if missing:
        raise RuntimeError(f"face basis lacks channels {sorted(missing)}")
    out = np.stack([fields[n] for n in ARKIT_BLENDSHAPES]) * _rigid_mask(v)[None, :, None] * CM
    out = out.astype(np.float32)
    out.setflags(write=False)
    return out


def landmarks_from_blendshapes(weights: np.ndarray, neutral: np.ndarray | None = None
                               ) -> np.ndarray:
    """Landmarks ``[T, 478, 3]`` = neutral + weights ``[T, 52]`` @ basis.

    ``neutral`` defaults to the canonical face; pass a subject's own neutral to animate it.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.shape[-1] != N_SHAPES:
        raise InputError(f"blendshape weights have shape {w.shape}, expected [..., 52]",
                         "pass one weight per ARKit channel in ARKIT_BLENDSHAPES order")
    base = canonical_face().vertices if neutral is None else np.asarray(neutral, np.float32)
    disp = w.reshape(-1, N_SHAPES) @ basis().reshape(N_SHAPES, -1)
    return (base[None] + disp.reshape(-1, N_LANDMARKS, 3)).reshape(*w.shape[:-1],
                                                                   N_LANDMARKS, 3)


def solve_weights() -> np.ndarray:
    """Per-landmark weight [478] in the solve: features that show expression count more.

    The face oval is tracked least reliably (it slides along the silhouette) and carries
    little expression, the irises move with gaze, not expression.
    """
    cf = canonical_face()
    w = np.full(N_LANDMARKS, 0.5)
    for g in ("lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow", "right_brow"):
        w[cf.groups[g]] = 2.0
    w[cf.groups["face_oval"]] = 0.2
    w[468:] = 0.5
    return w


@lru_cache(maxsize=4)
def _normal_matrix(reg: float) -> tuple[np.ndarray, np.ndarray, float]:
    a = basis().reshape(N_SHAPES, -1).astype(np.float64)  # [52, 1434]
    pw = np.repeat(solve_weights(), 3)
    gram = (a * pw) @ a.T
    scale = float(np.trace(gram) / N_SHAPES)
    m = gram + reg * scale * np.eye(N_SHAPES)
    lipschitz = float(np.linalg.eigvalsh(m).max())
    return m, a * pw, lipschitz


def solve_blendshapes(face_landmarks: np.ndarray, neutral: np.ndarray, *,
                      reg: float = 1e-4, iterations: int = 300) -> np.ndarray:
    """Bounded, regularised least squares: weights ``[T, 52]`` in [0, 1] per frame.

    Minimises ``|W^½ (neutral + w @ B - x)|² + reg·tr(G)/52·|w|²`` with projected
    accelerated gradient (FISTA) on the 52×52 normal equations, vectorised over frames:
    a 1000-frame clip solves in well under a second. NaN frames give NaN rows.
    """
    x = np.asarray(face_landmarks, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (N_LANDMARKS, 3):
        raise InputError(f"landmarks must be shaped [T, 478, 3], got {x.shape}",
                         "pass face-space landmarks (backend.tracking.head_pose)")
    nb = np.asarray(neutral, dtype=np.float64)
    if nb.shape != (N_LANDMARKS, 3) or not np.all(np.isfinite(nb)):
        raise InputError(f"neutral must be a finite [478, 3] array, got {nb.shape}",
                         "pass the subject's neutral face in face space")
    m, aw, lip = _normal_matrix(float(reg))
    ok = np.all(np.isfinite(x), axis=(1, 2))
    out = np.full((x.shape[0], N_SHAPES), np.nan, dtype=np.float32)
    if not ok.any():
        return out
    rhs = (x[ok] - nb).reshape(int(ok.sum()), -1) @ aw.T  # [T, 52]
    w = np.clip(np.linalg.solve(m, rhs.T).T, 0.0, 1.0)  # unconstrained start, projected
    y, t = w.copy(), 1.0
    step = 1.0 / lip
    for _ in range(iterations):
        w_new = np.clip(y - step * (y @ m - rhs), 0.0, 1.0)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = w_new + ((t - 1.0) / t_new) * (w_new - w)
        w, t = w_new, t_new
    out[ok] = w.astype(np.float32)
    return out


def channel_index(names: tuple[str, ...]) -> np.ndarray:
    """Column ids of named channels (e.g. ``MOUTH_CHANNELS``)."""
    return np.array([BLENDSHAPE_INDEX[n] for n in names], dtype=np.int64)
