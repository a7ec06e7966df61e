"""Our camera math against Blender's own projection, in a real bpy process.

Percentages are chosen so the scaled size is exact: Blender renders at
``floor(res * pct / 100)`` while ``world_to_camera_view`` uses the unscaled aspect, which
differs by a fraction of a pixel otherwise (we follow the render).

A camera with an odd lens, sensor fit, shift and non-square pixels projects random
points with ``bpy_extras.object_utils.world_to_camera_view``; ``shared.camera`` must put
every point on the same pixel (< 0.01 px). bpy runs in a subprocess because it keeps
process-global state.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.camera import camera_from_dict, camera_views

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import bpy
from mathutils import Euler, Vector
from bpy_extras.object_utils import world_to_camera_view
sys.path.insert(0, sys.argv[1])
from shared.camera import camera_dict_from_blender
cases = json.loads(sys.argv[2])
out = []
for case in cases:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    data = bpy.data.cameras.new("cam")
    obj = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(obj)
    scene.camera = obj
    for key, value in case["data"].items():
        setattr(data, key, value)
    for key, value in case["render"].items():
        setattr(scene.render, key, value)
    obj.location = case["location"]
    obj.rotation_euler = Euler(case["rotation"], "XYZ")
    obj.scale = case.get("scale", (1, 1, 1))
    bpy.context.view_layer.update()
    ndc = [list(world_to_camera_view(scene, obj, Vector(p))) for p in case["points"]]
    out.append({"camera": camera_dict_from_blender(obj, scene), "ndc": ndc})
print("RESULT" + json.dumps(out))
"""


def _cases() -> list[dict]:
    rng = np.random.default_rng(3)
    base = [
        ({"lens": 37.3, "sensor_width": 23.1, "sensor_height": 31.0, "sensor_fit": "AUTO",
          "shift_x": 0.13, "shift_y": -0.21},
         {"resolution_x": 644, "resolution_y": 1004, "resolution_percentage": 75,
          "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.0}),
        ({"lens": 85.0, "sensor_width": 36.0, "sensor_height": 20.0, "sensor_fit": "VERTICAL",
          "shift_x": -0.3, "shift_y": 0.05},
         {"resolution_x": 1280, "resolution_y": 720, "resolution_percentage": 50,
          "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.7}),
        ({"lens": 18.0, "sensor_width": 30.0, "sensor_height": 40.0,
          "sensor_fit": "HORIZONTAL", "shift_x": 0.0, "shift_y": 0.4},
         {"resolution_x": 400, "resolution_y": 900, "resolution_percentage": 100,
          "pixel_aspect_x": 2.0, "pixel_aspect_y": 1.0}),
    ]
    cases = []
    for data, render in base:
        loc = rng.normal(size=3) * 2
        rot = rng.uniform(-np.pi, np.pi, size=3)
        # Points in front of the camera: local -Z, spread inside roughly the view.
        from scipy.spatial.transform import Rotation
        r = Rotation.from_euler("xyz", rot).as_matrix()
        local = np.stack([rng.uniform(-1, 1, 40), rng.uniform(-1, 1, 40),
                          -rng.uniform(1.0, 6.0, 40)], axis=1)
        pts = local @ r.T + loc
        cases.append({"data": data, "render": render, "location": loc.tolist(),
                      "rotation": rot.tolist(), "scale": [1.3, 0.7, 2.0],
                      "points": pts.tolist()})
    return cases


@pytest.mark.blender
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed")
def test_projection_matches_blender(tmp_path: Path) -> None:
    cases = _cases()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), json.dumps(cases)],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    for case, res in zip(cases, results, strict=True):
        cam, mw = camera_from_dict(res["camera"])
        view = camera_views(cam, mw, 1)[0]
        ndc = np.array(res["ndc"])
        pix, depth = view.project(np.array(case["points"]))
        w, h = cam.image_size
        expected = np.stack([ndc[:, 0] * w, (1.0 - ndc[:, 1]) * h], axis=1)
        np.testing.assert_allclose(pix, expected, atol=0.01)
        np.testing.assert_allclose(depth, ndc[:, 2], rtol=1e-6, atol=1e-6)
