"""Degenerate cameras and impossible views give clear InputErrors; conventions hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.nerf.pipeline import HEAD_DEFAULT, head_to_camera
from shared.camera import (
    BlenderCamera,
    camera_from_dict,
    camera_to_dict,
    camera_views,
    load_camera,
)
from shared.errors import InputError

FRONT = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, 0], [0, 0, 0, 1]])


def test_centre_pixel_and_axes() -> None:
    cam = BlenderCamera(lens=50, sensor_width=36, resolution_x=200, resolution_y=100)
    view = camera_views(cam, FRONT, 1)[0]
    pix, depth = view.project(np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0, 0, 0.1]]))
    np.testing.assert_allclose(pix[0], [100, 50])
    np.testing.assert_allclose(depth[0], 0.9)
    assert pix[1, 0] > 100  # world +X is image right for a camera looking down +Y
    assert pix[2, 1] < 50  # world +Z (up) is image up: smaller y


@pytest.mark.parametrize("change", [{"lens": 0.0}, {"lens": float("nan")},
                                    {"resolution_x": 0}, {"resolution_percentage": 0},
                                    {"sensor_width": -1.0}, {"sensor_fit": "DIAGONAL"},
                                    {"clip_end": 0.01}])
def test_degenerate_camera(change: dict) -> None:
    data = camera_to_dict(BlenderCamera(), FRONT)
    data.update(change)
    with pytest.raises(InputError) as err:
        camera_from_dict(data)
    assert err.value.fix


@pytest.mark.parametrize("matrix", [np.full((4, 4), np.nan), np.zeros((4, 4)),
                                    np.eye(3)])
def test_bad_matrix(matrix: np.ndarray) -> None:
    data = camera_to_dict(BlenderCamera(), np.eye(4))
    data["matrix_world"] = matrix.tolist()
    with pytest.raises(InputError):
        cam, mw = camera_from_dict(data)
        camera_views(cam, mw, 1)


def test_camera_behind_head() -> None:
    behind = FRONT.copy()
    behind[1, 3] = 0.9  # camera on the far side, still looking +Y: head is behind it
    view = camera_views(BlenderCamera(), behind, 1)[0]
    with pytest.raises(InputError, match="behind"):
        head_to_camera(view, HEAD_DEFAULT)
    ok = camera_views(BlenderCamera(), FRONT, 1)[0]
    m = head_to_camera(ok, HEAD_DEFAULT)
    # The face (+Z in the head frame) points at the camera (+Z in camera space).
    np.testing.assert_allclose(m[:3, 2], [0, 0, 1], atol=1e-12)


def test_cam_json_roundtrip(tmp_path: Path) -> None:
    cam = BlenderCamera(lens=35, sensor_fit="VERTICAL", shift_x=0.1)
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(camera_to_dict(cam, FRONT)))
    back, mw = load_camera(path)
    assert back == cam
    np.testing.assert_allclose(mw, FRONT)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        load_camera(tmp_path / "bad.json")
