"""Hybrid CG/NeRF shots in real Blender (PyPI bpy): Composite with Scene depth-combines
the rendered head with a Cycles render of CG in front of and behind it, at an angle.

The bpy side (``blender_scripts/hybrid_scenarios.py``) builds the scene, runs the
add-on's operators and renders through Blender's compositor; this side checks pixels:
away from edges every pixel shows what is nearest (cube, head or plane), and no pixel
that no mix of its neighbours' colours explains (a dark or bright fringe) lies more
than 2 px from an edge.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from shared.depth_exr import decode_depth_exr
from tests.png_decode import decode_png
from tests.test_blender_facecast import run_flow

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed"),
]

CUBE, HEAD, PLANE = 1, 2, 3


@pytest.fixture
def cp311_zip(addon_zips: dict[str, Path]) -> Path:
    return addon_zips["cp311"]


def srgb8(rgb: tuple[float, float, float]) -> np.ndarray:
    c = np.asarray(rgb, np.float64)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255.0)


def classes(cg: dict, alpha: np.ndarray, nerf_depth: np.ndarray) -> np.ndarray:
    """What is nearest at each pixel centre: the CG object a ray hits, or the head
    where it is opaque and nearer; -1 where the head is partial (an edge)."""
    label, depth = cg["label"], cg["depth"]
    out = np.where(label == 1, CUBE, np.where(label == 2, PLANE, 0))
    head = (alpha >= 0.99) & (nerf_depth < depth)
    out[head] = HEAD
    out[(alpha > 0.01) & (alpha < 0.99) & (nerf_depth < depth)] = -1
    return out


def neighbourhood(cls: np.ndarray, r: int) -> list[set[int]]:
    h, w = cls.shape
    return [[set(cls[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].ravel().tolist())
             for j in range(w)] for i in range(h)]


def linear(srgb8: np.ndarray) -> np.ndarray:
    c = np.asarray(srgb8, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip((p - a) @ ab / (ab @ ab), 0, 1))
    return float(np.abs(p - (a + t * ab)).max())


def check_composite(png: Path, cls: np.ndarray, head_rgb8: np.ndarray,
                    colours: dict[int, np.ndarray], tol: float = 12.0) -> dict:
    """Share of clean test pixels right, and the widest fringe (px from an edge)."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"), np.float64)
    h, w = cls.shape
    near1 = neighbourhood(cls, 2)
    right = tested = 0
    wrong_far = []
    fringe = []
    for i in range(h):
        for j in range(w):
            want = {c: (head_rgb8[i, j] if c == HEAD else colours[c])
                    for c in near1[i][j] if c in colours or c == HEAD}
            got = img[i, j]
            if near1[i][j] == {cls[i, j]} and cls[i, j] > 0:  # a clean test pixel
                tested += 1
                if np.abs(got - want[cls[i, j]]).max() <= tol:
                    right += 1
                else:
                    wrong_far.append((i, j))
                continue
            # An edge pixel: it must be some mix (in linear light, as the compositor
            # mixes) of what lies around it; a dark or bright fringe is not.
            refs = [linear(v) for v in want.values()] or [linear(got)]
            best = min(seg_dist(linear(got), a, b) for a in refs for b in refs)
            if best > 0.04:
                fringe.append((i, j))
    return {"tested": tested, "right": right, "share": right / max(1, tested),
            "wrong_far": wrong_far[:10], "fringe_pixels": len(fringe), "fringe": fringe[:20]}


def test_composite_with_scene(cp311_zip: Path, tmp_path: Path, blender_python: str) -> None:
    from tests.blender_scripts.hybrid_scenarios import CUBE_RGB, HEAD_RGB, PLANE_RGB

    r = run_flow(cp311_zip, "composite", tmp_path, python=blender_python,
                 extra={"tmp": str(tmp_path)})
    ref = r["refusals"]
    # Each refusal: one clear message, the user's tree untouched.
    assert "renders no Z pass" in ref["no_z"][1] and ref["no_z_tree_same"]
    assert "no NeRF frame or depth" in ref["missing_frame"][1] and "frame 2" in \
        ref["missing_frame"][1] and ref["missing_tree_same"]
    assert "is 32x24 pixels but the scene renders 64x48" in ref["wrong_size"][1]
    assert ref["wrong_size_tree_same"] and "Render to Sequencer again" in ref["last_error"]
    # On, on again: the same nodes (nothing duplicated); off: the user's tree back.
    assert r["on"] == ["FINISHED"] and r["on_again"] == ["FINISHED"] and r["idempotent"]
    assert r["n_nodes_on"] == len(r["tree_before"]["nodes"]) + 6
    assert r["restored"] and not r["state_left"], (r["tree_before"], r["tree_after"])
    assert r["bare_on_nodes"] >= 6 and r["bare_restored"]
    # Pixels: nearest surface wins away from edges; no fringe beyond the edge pixels.
    folder = Path(r["nerf_folder"])
    rgba = decode_png(folder / "000001.png").astype(np.float64)
    depth = decode_depth_exr((folder / "depth" / "000001.exr").read_bytes())
    cg = dict(np.load(tmp_path / "cg.npz"))
    cls = classes(cg, rgba[..., 3] / 255.0, depth)
    assert {CUBE, HEAD, PLANE} <= set(np.unique(cls).tolist())
    # The cube hides part of the head: CG nearer than opaque head pixels.
    assert ((cg["label"] == 1) & (rgba[..., 3] > 250)).sum() >= 5
    m = check_composite(Path(r["composite_png"]), cls, rgba[..., :3],
                        {CUBE: srgb8(CUBE_RGB), PLANE: srgb8(PLANE_RGB)})
    print("composite check:", m, "head colour", srgb8(HEAD_RGB))
    assert m["tested"] > 1000 and m["share"] >= 0.99, m
    assert m["fringe_pixels"] <= 0.01 * cls.size, m


def test_render_follows_the_scene_range(cp311_zip: Path, tmp_path: Path,
                                        blender_python: str) -> None:
    """Issue 25: after an Animate over frames 1-48, Render to Sequencer renders the
    scene's range (5-8), through Last Take too, and again after reopening the .blend."""
    r = run_flow(cp311_zip, "range", tmp_path, python=blender_python,
                 extra={"tmp": str(tmp_path)})
    assert r["animate_error"] == ""
    out = r["renders"]
    assert out["rig_after_animate"]["frames"] == [5, 6, 7, 8], out
    assert out["rig_after_animate"]["shapes"][0] == [4, 52]
    assert out["take_after_render"]["frames"] == [5, 6, 7, 8], out
    assert out["take_partly_outside"]["frames"] == list(range(40, 49)), out
    assert out["take_outside"]["frames"] == [] and \
        "lie outside the last take (frames 1-48)" in out["take_outside"]["error"]
    assert out["rig_after_reopen"]["frames"] == [9, 10, 11], out
    assert out["take_after_reopen"]["frames"] == [10], out
