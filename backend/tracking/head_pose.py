"""Rigid head pose from tracked landmarks: head-to-camera poses and pose-free face shapes.

The motion model learns expression, not head motion, and the NeRF needs the camera of
every frame, so each tracked frame is split into a rigid head pose and a face-space shape
by fitting the canonical face (``shared.landmarks``) to the stable landmarks (forehead,
eye corners, nose, upper cheeks; never the mouth or jaw, which would make speech move the
head) with a weighted similarity transform (Umeyama: rotation + uniform scale +
translation, closed form via SVD).

Camera convention (Blender/OpenGL): +X right, +Y up, the camera looks along -Z. A face
looking straight into the camera therefore has rotation = identity and a translation
with negative z. ``poses[t]`` maps canonical head-frame points (metres) to camera space.

Monocular scale is ambiguous (a bigger head further away looks the same), so depth is
set by assuming the subject's stable points have the canonical face's size. Pixels are
turned into rays with ``estimate_intrinsics`` unless the real camera is known; the fit is
refined with per-landmark perspective depths, so wide lenses do not bend the face shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.errors import InputError
from shared.landmarks import canonical_face


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera in pixels (principal point from the top-left corner, y down)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], float)


def estimate_intrinsics(width: int, height: int, fov_deg: float = 40.0) -> Intrinsics:
    """Square pixels, centred principal point, ``fov_deg`` across the LONGER image side.

    40 degrees is a typical head-and-shoulders framing (a phone or webcam image cropped
    around the face, like the example clips); pass the real field of view when known
    (e.g. from the Blender camera). It only sets the perspective strength and the
    absolute depth; rotations and face shapes hardly depend on it for faces at arm's
    length or further.
    """
    if width <= 0 or height <= 0:
        raise InputError(f"image size must be positive, got {width}x{height}",
                         "pass the tracked frames' width and height in pixels")
    if not 1.0 <= fov_deg <= 170.0:
        raise InputError(f"field of view must be between 1 and 170 degrees, got {fov_deg}",
                         "pass the camera's field of view across the longer image side")
    f = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return Intrinsics(f, f, width / 2.0, height / 2.0, int(width), int(height))


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted similarity fit ``dst ~ s * R @ src + t``, batched over leading axes.

    src ``[N, 3]`` or ``[..., N, 3]``, dst ``[..., N, 3]``; returns R ``[..., 3, 3]``
    (a proper rotation: reflections are excluded), s ``[...]``, t ``[..., 3]``.
    """
    w = np.ones(dst.shape[-2]) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    mu_s = np.einsum("n,...nd->...d", w, src)
    mu_d = np.einsum("n,...nd->...d", w, dst)
    sc = src - mu_s[..., None, :]
    dc = dst - mu_d[..., None, :]
    cov = np.einsum("n,...ni,...nj->...ij", w, dc, sc)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    d = np.ones(sig.shape)
    d[..., -1] = sign
    rot = (u * d[..., None, :]) @ vt
    var_s = np.einsum("n,...nd->...", w, sc * sc)
    scale = (sig * d).sum(axis=-1) / var_s
    t = mu_d - scale[..., None] * np.einsum("...ij,...j->...i", rot, mu_s)
    return rot, scale, t


@dataclass
class HeadPoses:
    """Per-frame fit results; NaN rows where the tracker found no face."""

    poses: np.ndarray  # [T, 4, 4] head-to-camera (Blender/OpenGL camera axes), metres
    scale: np.ndarray  # [T] pixels per metre at the head's distance (fx / depth)
    face_landmarks: np.ndarray  # [T, 478, 3] pose removed, metres, canonical head frame
    residual: np.ndarray  # [T] weighted RMS distance of stable points to canonical, metres
    intrinsics: Intrinsics

    @property
    def rotations(self) -> np.ndarray:
        return self.poses[:, :3, :3]

    @property
    def translations(self) -> np.ndarray:
        return self.poses[:, :3, 3]


def _to_camera_axes(landmarks: np.ndarray, k: Intrinsics) -> np.ndarray:
    """Pixels (x right, y down, z away from camera) -> centred, x right, y up, z toward."""
    x = landmarks[..., 0] - k.cx
    y = -(landmarks[..., 1] - k.cy) * (k.fx / k.fy)
    return np.stack([x, y, -landmarks[..., 2]], axis=-1)


def fit_head_pose(landmarks: np.ndarray, intrinsics: Intrinsics,
                  refine_iterations: int = 1) -> HeadPoses:
    """Fit the canonical face to tracked pixel landmarks ``[T, 478, 3]`` (``Tracks``).

    First a weak-perspective fit in pixel units (mediapipe's z is in x's units), which
    gives rotation and pixels-per-metre, hence depth = fx / scale. Then every landmark is
    back-projected along its own ray at its own depth and the fit is redone in metres,
    rescaled so the stable points keep the canonical size. One refinement reaches the
    fixed point (a uniformly rescaled depth profile back-projects to a uniformly rescaled
    cloud), so more iterations only cost time; 0 keeps the weak-perspective fit.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (478, 3):
        raise InputError(f"landmarks must be shaped [T, 478, 3], got {lm.shape}",
                         "pass Tracks.landmarks from backend.tracking.track_faces")
    cf = canonical_face()
    canon = cf.vertices.astype(np.float64)
    ids, w = cf.stable_ids, cf.stable_weights.astype(np.float64)
    n = lm.shape[0]
    ok = np.all(np.isfinite(lm), axis=(1, 2))

    poses = np.full((n, 4, 4), np.nan)
    scale = np.full(n, np.nan)
    face = np.full(lm.shape, np.nan)
    residual = np.full(n, np.nan)
    if ok.any():
        pix = _to_camera_axes(lm[ok], intrinsics)
        rot, s, t = umeyama(canon[ids], pix[:, ids], w)
        depth = intrinsics.fx / s  # distance of the head origin, canonical-size head
        # Weak perspective: one scale for all points, head origin put at -depth.
        metric = pix / s[:, None, None]
        metric[..., 2] += (-depth - t[:, 2] / s)[:, None]
        t_m = t / s[:, None]
        t_m[:, 2] = -depth
        for _ in range(refine_iterations):
            # Each landmark's own distance from the camera, then back along its ray.
            z = -metric[..., 2]
            metric = np.stack([pix[..., 0] * z / intrinsics.fx,
                               pix[..., 1] * z / intrinsics.fx, -z], axis=-1)
            rot, s_m, t_m = umeyama(canon[ids], metric[:, ids], w)
            # The whole cloud scales with the assumed depth: rescale to canonical size.
            metric /= s_m[:, None, None]
            t_m = t_m / s_m[:, None]
            depth = -t_m[:, 2]
        s = intrinsics.fx / depth
        # Face space: undo the rigid pose (translation, then rotation).
        f_ok = np.einsum("tji,tnj->tni", rot, metric - t_m[:, None, :])
        diff = f_ok[:, ids] - canon[ids]
        residual[ok] = np.sqrt(np.einsum("n,tn->t", w, np.sum(diff * diff, axis=-1)))
        p = np.zeros((ok.sum(), 4, 4))
        p[:, :3, :3] = rot
        p[:, :3, 3] = t_m
        p[:, 3, 3] = 1.0
        poses[ok], scale[ok], face[ok] = p, s, f_ok
    return HeadPoses(poses, scale, face, residual, intrinsics)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma, axis=0, mode="nearest")


def smooth_poses(poses: np.ndarray, sigma_frames: float = 1.5) -> np.ndarray:
    """Zero-phase Gaussian smoothing of head poses ``[T, 4, 4]`` to remove tracker jitter.

    Zero-phase (centred kernel) because the data engine and the subject builder see the
    whole clip: unlike a causal One-Euro filter it adds no lag, so head motion stays in
    sync with speech. Rotations are smoothed as sign-aligned quaternions and renormalised;
    translations directly. NaN frames (no face) split the clip into runs smoothed apart.
    ``HeadPoses.face_landmarks`` should stay those of the per-frame fit: re-deriving them
    from smoothed poses would move the removed jitter into the expression.
    """
    from scipy.spatial.transform import Rotation

    poses = np.asarray(poses, dtype=np.float64)
    out = poses.copy()
    if sigma_frames <= 0:
        return out
    ok = np.all(np.isfinite(poses.reshape(len(poses), -1)), axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        seg = poses[start:stop]
        q = Rotation.from_matrix(seg[:, :3, :3]).as_quat()
        flips = np.sign(np.sum(q[1:] * q[:-1], axis=1))  # keep consecutive quats close
        q *= np.concatenate([[1.0], np.cumprod(np.where(flips == 0, 1.0, flips))])[:, None]
        q = _gaussian_smooth(q, sigma_frames)
        out[start:stop, :3, :3] = Rotation.from_quat(q).as_matrix()
        out[start:stop, :3, 3] = _gaussian_smooth(seg[:, :3, 3], sigma_frames)
    return out
