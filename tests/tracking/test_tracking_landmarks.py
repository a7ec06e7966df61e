"""The canonical topology and the scale-free FACS metrics (pure numpy, no data needed)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from shared import landmarks as L
from shared.errors import InputError

CF = L.canonical_face()
V = CF.vertices.astype(np.float64)


def test_canonical_frame_is_the_documented_one():
    assert V.shape == (478, 3) and CF.triangles.shape == (898, 3)
    assert L.inter_ocular(V) == pytest.approx(0.089, abs=0.005)  # metres
    assert V[L.LEFT_EYE_OUTER, 0] > 0 > V[L.RIGHT_EYE_OUTER, 0]  # +X = subject's left
    assert V[L.FOREHEAD, 1] > V[L.NOSE_TIP, 1] > V[L.CHIN, 1]  # +Y up
    assert np.argmax(V[:468, 2]) in (1, 4)  # nose tip region is nearest the camera
    # Right-handed, outward triangles: front-facing triangles' normals point to +Z.
    a, b, c = (V[CF.triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    front = (a[:, 2] > 0.05) & (np.abs(a[:, 0]) < 0.03)
    assert front.sum() > 50 and (n[front, 2] > 0).mean() > 0.95


def test_groups_and_key_points_agree():
    g = CF.groups
    assert set(g) == set(L.GROUP_NAMES)
    assert len(g["lips_outer"]) == len(g["lips_inner"]) == 20
    assert {L.UPPER_INNER_LIP, L.LOWER_INNER_LIP} <= set(g["lips_inner"])
    assert {L.RIGHT_LIP_CORNER, L.LEFT_LIP_CORNER, L.UPPER_OUTER_LIP} <= set(g["lips_outer"])
    assert {L.RIGHT_EYE_OUTER, L.RIGHT_EYE_INNER} <= set(g["right_eye"])
    assert {L.LEFT_EYE_OUTER, L.LEFT_EYE_INNER} <= set(g["left_eye"])
    assert set(L.RIGHT_BROW_INNER) <= set(g["right_brow"])
    assert set(L.LEFT_BROW_INNER) <= set(g["left_brow"])
    assert all(V[g[name], 0].mean() > 0 for name in ("left_eye", "left_brow", "left_iris"))
    assert all(V[g[name], 0].mean() < 0 for name in ("right_eye", "right_brow", "right_iris"))
    # Inner lip loop lies inside the outer one.
    assert np.ptp(V[g["lips_inner"], 0]) < np.ptp(V[g["lips_outer"], 0])
    for upper, lower in L.INNER_LIP_PAIRS + L.RIGHT_EYE_LID_PAIRS + L.LEFT_EYE_LID_PAIRS:
        assert abs(V[upper, 0] - V[lower, 0]) < 0.001 and V[upper, 1] > V[lower, 1]
    # Inner brow ends are the ones nearest the midline.
    for side, inner in (("right_brow", L.RIGHT_BROW_INNER), ("left_brow", L.LEFT_BROW_INNER)):
        nearest = np.argsort(np.abs(V[g[side], 0]))[:2]
        assert set(g[side][nearest]) == set(inner)
    assert len(CF.stable_ids) > 10 and not {L.CHIN, *g["lips_outer"]} & set(CF.stable_ids)
    with pytest.raises(InputError):
        CF.group("ears")


METRICS = (L.mouth_opening, L.eye_opening, L.lip_corner_height, L.brow_height,
           L.inner_brow_height)


@pytest.mark.parametrize("metric", METRICS)
def test_metrics_are_scale_pose_and_image_frame_free(metric):
    ref = metric(V)
    moved = V @ Rotation.from_euler("xyz", [0.3, -0.4, 0.5]).as_matrix().T * 3.7 + [1, 2, 3]
    assert metric(moved) == pytest.approx(ref, abs=1e-9)
    # Pixel coordinates of a frontal face: y down, any scale, 2D only.
    pixels = np.stack([V[:, 0] * 4000 + 320, -V[:, 1] * 4000 + 240], axis=-1)
    assert metric(pixels) == pytest.approx(ref, abs=1e-9)
    batch = np.stack([V, np.full_like(V, np.nan), moved])
    out = metric(batch)
    assert out.shape == (3,) and np.isnan(out[1]) and out[2] == pytest.approx(ref, abs=1e-9)


def _shift(ids, dy):
    face = V.copy()
    face[list(ids), 1] += dy
    return face


def test_metrics_follow_the_facial_actions():
    assert L.mouth_opening(V) == pytest.approx(0.06, abs=0.02)  # canonical lips parted a bit
    closed = V.copy()
    for upper, lower in L.INNER_LIP_PAIRS:
        closed[[upper, lower], 1] = V[[upper, lower], 1].mean()
    assert L.mouth_opening(closed) == pytest.approx(0.0, abs=1e-6)
    assert L.mouth_opening(_shift([p[1] for p in L.INNER_LIP_PAIRS], -0.01)) > 0.15
    # AU12 vs AU15: corners up or down by 3 mm.
    corners = (L.RIGHT_LIP_CORNER, L.LEFT_LIP_CORNER)
    assert L.lip_corner_height(_shift(corners, 0.003)) > L.lip_corner_height(V) + 0.03
    assert L.lip_corner_height(_shift(corners, -0.003)) < L.lip_corner_height(V) - 0.03
    # AU1+2 raise all brow points; AU1 alone raises only the inner ends.
    brows = np.concatenate([CF.groups["right_brow"], CF.groups["left_brow"]])
    assert L.brow_height(_shift(brows, 0.005)) > L.brow_height(V) + 0.05
    inner = L.RIGHT_BROW_INNER + L.LEFT_BROW_INNER
    assert L.inner_brow_height(_shift(inner, 0.004)) > L.inner_brow_height(V) + 0.04
    assert L.inner_brow_height(_shift(inner, -0.004)) < L.inner_brow_height(V) - 0.04
    # Blink: upper lids onto the lower lids.
    blink = V.copy()
    for upper, lower in L.RIGHT_EYE_LID_PAIRS + L.LEFT_EYE_LID_PAIRS:
        blink[upper] = V[lower]
    assert L.eye_opening(blink) == pytest.approx(0.0, abs=1e-6)
    assert L.eye_opening(V, per_eye=True).shape == (2,)
    # Moving the lips must not move the rigid frame (and so the brow metric).
    assert L.brow_height(_shift(CF.groups["lips_outer"], -0.01)) == pytest.approx(
        L.brow_height(V), abs=1e-9)


def test_wrong_shape_is_input_error():
    with pytest.raises(InputError):
        L.mouth_opening(np.zeros((10, 3)))
    with pytest.raises(InputError):
        L.inter_ocular(np.zeros((478, 4)))


def test_blender_axes_face_looks_along_minus_y():
    b = L.to_blender_axes(V)
    assert np.argmin(b[:468, 1]) in (1, 4)  # nose tip is the most -Y point
    assert b[L.FOREHEAD, 2] > b[L.CHIN, 2]  # up is +Z
    assert b[L.LEFT_EYE_OUTER, 0] > 0  # subject's left stays +X


def test_head_frame_poses_convert_to_blender_axes_consistently() -> None:
    yaw = np.radians(20)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
    pose[:3, 3] = [0.01, 0.02, 0.03]
    converted = L.pose_to_blender_axes(pose)
    # A turn about the head's up axis (+Y) is a turn about Blender's up axis (+Z).
    np.testing.assert_allclose(converted[:3, :3] @ [0, 0, 1], [0, 0, 1], atol=1e-12)
    assert abs(converted[2, 3] - 0.02) < 1e-12  # head "up" offset becomes Blender Z
    points = L.canonical_face().vertices[:10]
    moved = (pose[:3, :3] @ points.T).T + pose[:3, 3]
    np.testing.assert_allclose(
        (converted[:3, :3] @ L.to_blender_axes(points).T).T + converted[:3, 3],
        L.to_blender_axes(moved), atol=1e-12)
