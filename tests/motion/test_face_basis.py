"""The linear ARKit-52 basis: round trips, channel meaning, bounds, and real video fit."""

from __future__ import annotations

import numpy as np
import pytest

from backend.motion.face_basis import basis, landmarks_from_blendshapes, solve_blendshapes
from shared.blendshapes import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX
from shared.errors import InputError
from shared.landmarks import (
    LEFT_LIP_CORNER,
    RIGHT_LIP_CORNER,
    brow_height,
    canonical_face,
    eye_opening,
    inner_brow_height,
    inter_ocular,
    lip_corner_height,
    mouth_opening,
)
from tests.conftest import data_path

NEUTRAL = canonical_face().vertices
# Channel pairs that move the same points in opposite directions: only their difference
# is observable, so a round trip can only recover one of each pair at a time.
ANTAGONISTS = [("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"),
               ("eyeLookInLeft", "eyeLookOutLeft"), ("eyeLookInRight", "eyeLookOutRight"),
               ("eyeLookUpLeft", "eyeLookDownLeft"), ("eyeLookUpRight", "eyeLookDownRight")]


def one(name: str, value: float = 1.0) -> np.ndarray:
    w = np.zeros((1, 52), np.float32)
    w[0, BLENDSHAPE_INDEX[name]] = value
    return landmarks_from_blendshapes(w, NEUTRAL)[0]


def test_basis_shape_units_and_every_channel_moves() -> None:
    b = basis()
    assert b.shape == (52, 478, 3) and b.dtype == np.float32
    peak = np.abs(b).max(axis=(1, 2))
    assert np.all(peak > 0.001), [ARKIT_BLENDSHAPES[i] for i in np.flatnonzero(peak <= 0.001)]
    assert peak.max() < 0.04  # metres: no channel moves a point more than 4 cm


def test_solve_recovers_weights_of_generated_faces() -> None:
    rng = np.random.default_rng(1)
    w = (rng.uniform(0, 1, (40, 52)) * (rng.uniform(size=(40, 52)) < 0.3)).astype(np.float32)
    for _a, b in ANTAGONISTS:
        w[:, BLENDSHAPE_INDEX[b]] = 0.0
    got = solve_blendshapes(landmarks_from_blendshapes(w, NEUTRAL), NEUTRAL)
    assert np.abs(got - w).mean() < 0.02
    assert np.percentile(np.abs(got - w), 99) < 0.15


def test_solve_is_bounded_and_keeps_nan_frames() -> None:
    x = np.repeat(NEUTRAL[None], 3, axis=0).astype(np.float64)
    x[0] += basis()[BLENDSHAPE_INDEX["jawOpen"]] * 3.0  # beyond the channel's range
    x[1] = np.nan
    got = solve_blendshapes(x, NEUTRAL)
    assert np.all(np.isnan(got[1]))
    ok = got[[0, 2]]
    assert ok.min() >= 0.0 and ok.max() <= 1.0
    assert got[0, BLENDSHAPE_INDEX["jawOpen"]] == pytest.approx(1.0)
    assert np.abs(got[2]).max() < 1e-3


def test_channels_mean_what_arkit_says() -> None:
    base = NEUTRAL
    assert mouth_opening(one("jawOpen")) > mouth_opening(base) + 0.1
    closed = landmarks_from_blendshapes(
        np.eye(52, dtype=np.float32)[[BLENDSHAPE_INDEX["jawOpen"]]]
        + np.eye(52, dtype=np.float32)[[BLENDSHAPE_INDEX["mouthClose"]]], base)[0]
    assert mouth_opening(closed) < mouth_opening(one("jawOpen")) * 0.5
    assert eye_opening(one("eyeBlinkLeft"), per_eye=True)[1] < 0.1 * eye_opening(
        base, per_eye=True)[1]
    assert eye_opening(one("eyeBlinkLeft"), per_eye=True)[0] == pytest.approx(
        eye_opening(base, per_eye=True)[0], abs=1e-4)
    assert lip_corner_height(one("mouthSmileLeft")) > lip_corner_height(base) + 0.02
    assert lip_corner_height(one("mouthFrownRight")) < lip_corner_height(base) - 0.01
    assert inner_brow_height(one("browInnerUp")) > inner_brow_height(base) + 0.03
    assert brow_height(one("browDownLeft")) < brow_height(base) - 0.01
    assert eye_opening(one("eyeWideRight")) > eye_opening(base)
    assert one("mouthPucker")[13, 2] > base[13, 2] + 0.004  # lips forward


def test_left_means_the_subjects_left() -> None:
    smile = one("mouthSmileLeft") - NEUTRAL
    assert smile[LEFT_LIP_CORNER, 1] > 5 * abs(smile[RIGHT_LIP_CORNER, 1])
    assert NEUTRAL[LEFT_LIP_CORNER, 0] > 0  # +X is the subject's left
    assert (one("jawLeft") - NEUTRAL)[152, 0] > 0


def test_expressions_keep_face_proportions() -> None:
    full = landmarks_from_blendshapes(np.ones((1, 52), np.float32) * 0.5, NEUTRAL)[0]
    assert inter_ocular(full) == pytest.approx(inter_ocular(NEUTRAL), rel=0.01)


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError):
        landmarks_from_blendshapes(np.zeros((3, 51)))
    with pytest.raises(InputError):
        solve_blendshapes(np.zeros((3, 468, 3)), NEUTRAL)
    with pytest.raises(InputError):
        solve_blendshapes(np.zeros((3, 478, 3)), np.full((478, 3), np.nan))


@pytest.mark.parametrize("clip", ["d12", "d14"])
def test_basis_explains_tracked_video(clip: str) -> None:
    from backend.motion.data import prepare_clip

    c = prepare_clip(data_path("clips", f"{clip}.mp4"))
    rec = landmarks_from_blendshapes(c.blendshapes, c.neutral)
    resid = np.linalg.norm(rec - c.face_landmarks, axis=-1).mean()
    raw = np.linalg.norm(c.face_landmarks - c.neutral, axis=-1).mean()
    assert resid < 0.75 * raw  # the basis explains a good part of every motion
    r = np.corrcoef(mouth_opening(rec), mouth_opening(c.face_landmarks))[0, 1]
    assert r > 0.95  # and nearly all of the mouth
