"""Head pose: exact recovery on synthetic projections, sane fits on real clips."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.tracking.cache import track_clip
from backend.tracking.head_pose import estimate_intrinsics, fit_head_pose, smooth_poses
from shared import landmarks as L
from shared.errors import InputError
from tests.conftest import data_path

CANON = L.canonical_face().vertices.astype(np.float64)


def _project(rot, t, k):
    """Canonical face seen by a pinhole camera, as mediapipe reports it (z in pixels)."""
    cam = CANON @ rot.T + t
    dist = -cam[:, 2]
    ref = -t[2]
    return np.stack([k.cx + k.fx * cam[:, 0] / dist, k.cy - k.fy * cam[:, 1] / dist,
                     (dist - ref) * k.fx / ref], axis=-1)


def test_recovers_known_poses_through_perspective():
    k = estimate_intrinsics(640, 480, fov_deg=60)
    rng = np.random.default_rng(3)
    rots = Rotation.from_euler("yxz", rng.uniform(-0.5, 0.5, (6, 3))).as_matrix()
    ts = np.c_[rng.uniform(-0.05, 0.05, (6, 2)), -rng.uniform(0.35, 0.8, 6)]
    lm = np.stack([_project(r, t, k) for r, t in zip(rots, ts, strict=True)])
    lm[2] = np.nan  # a frame without a face stays NaN and does not disturb the others
    hp = fit_head_pose(lm, k)
    ok = np.arange(6) != 2
    err = Rotation.from_matrix(np.einsum("tji,tjk->tik", hp.rotations[ok], rots[ok]))
    assert np.degrees(err.magnitude()).max() < 0.5
    assert np.abs(hp.translations[ok] - ts[ok]).max() < 0.003  # metres
    assert hp.residual[ok].max() < 0.0005
    assert np.allclose(hp.face_landmarks[ok], CANON, atol=0.001)
    assert np.isnan(hp.poses[2]).all() and np.isnan(hp.face_landmarks[2]).all()
    # Weak perspective alone is measurably worse: the refinement is doing real work.
    weak = fit_head_pose(lm, k, refine_iterations=0)
    assert np.nanmax(weak.residual) > 5 * hp.residual[ok].max()


@pytest.mark.parametrize("clip", ["d12.mp4", "d14.mp4"])
def test_real_clip_fit_is_tight_and_metric(clip):
    tracked = track_clip(data_path("clips", clip), progress=False)
    hp = tracked.head_poses()
    assert np.isfinite(hp.poses).all()
    assert np.median(hp.residual) < 0.004  # stable points within 4 mm of canonical
    iod = L.inter_ocular(hp.face_landmarks)
    assert np.median(iod) == pytest.approx(L.inter_ocular(CANON), rel=0.12)
    assert np.allclose(np.linalg.det(hp.rotations), 1.0, atol=1e-6)
    # Frontal talking heads: looking roughly into the camera, in front of it.
    yaw_pitch = np.degrees(Rotation.from_matrix(hp.rotations).magnitude())
    assert np.median(yaw_pitch) < 25
    assert (hp.translations[:, 2] < -0.2).all()
    # Pose-free landmarks are in the canonical frame: left eye +X, forehead +Y.
    f = hp.face_landmarks
    assert (f[:, L.LEFT_EYE_OUTER, 0] > 0).all() and (f[:, L.FOREHEAD, 1] > 0).all()


def test_smoothing_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    n = 200
    angle = 0.3 * np.sin(np.linspace(0, 4 * np.pi, n))
    clean = np.tile(np.eye(4), (n, 1, 1))
    clean[:, :3, :3] = Rotation.from_rotvec(np.c_[0 * angle, angle, 0 * angle]).as_matrix()
    clean[:, 2, 3] = -0.5
    noisy = clean.copy()
    jitter = Rotation.from_rotvec(rng.normal(0, 0.02, (n, 3))).as_matrix()
    noisy[:, :3, :3] = jitter @ clean[:, :3, :3]
    noisy[:, :3, 3] += rng.normal(0, 0.003, (n, 3))
    noisy[50] = np.nan
    smooth = smooth_poses(noisy, sigma_frames=2.0)

    def err(p):
        ok = np.isfinite(p[:, 0, 0])
        rel = np.einsum("tji,tjk->tik", p[ok, :3, :3], clean[ok, :3, :3])
        return np.degrees(Rotation.from_matrix(rel).magnitude()).mean()

    assert err(smooth) < 0.5 * err(noisy)
    assert np.isnan(smooth[50]).all()
    # Zero phase: the smoothed yaw peaks where the true one does.
    yaw = Rotation.from_matrix(smooth[51:, :3, :3]).as_rotvec()[:, 1]
    assert abs(int(np.argmax(yaw)) - int(np.argmax(angle[51:]))) <= 2


def test_bad_arguments():
    with pytest.raises(InputError):
        estimate_intrinsics(0, 480)
    with pytest.raises(InputError):
        estimate_intrinsics(640, 480, fov_deg=0)
    with pytest.raises(InputError):
        fit_head_pose(np.zeros((3, 468, 3)), estimate_intrinsics(64, 64))
