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
from shared.render_request import RenderJobRequest
from tests.blender.test_blender_facecast import run_flow
from tests.png_decode import decode_png

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed"),
]

CUBE, HEAD, PLANE = 1, 2, 3


@pytest.fixture
def cp311_zip(addon_zips: dict[str, Path]) -> Path:
    return addon_zips["cp311"]


def classes(cg: dict, alpha: np.ndarray, nerf_depth: np.ndarray) -> np.ndarray:
    """What is nearest at each pixel centre: the CG object a ray hits, or the head
    where it is opaque and nearer; -1 where the head is partial (an edge)."""
    label, depth = cg["label"], cg["depth"]
    out = np.where(label == 1, CUBE, np.where(label == 2, PLANE, 0))
    head = (alpha >= 0.99) & (nerf_depth < depth)
    out[head] = HEAD
    out[(alpha > 0.01) & (alpha < 0.99) & (nerf_depth < depth)] = -1
    return out


def linear(srgb: np.ndarray) -> np.ndarray:
    c = np.asarray(srgb, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_srgb8(lin: np.ndarray) -> np.ndarray:
    c = np.clip(lin, 0.0, 1.0)
    return np.round(np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055) * 255)


def check_composite(png: Path, cg: dict, nerf: np.ndarray, nerf_depth: np.ndarray,
                    colours: dict[int, tuple[float, float, float]], tol: float = 12.0) -> dict:
    """The composite against what a depth combine must give, pixel by pixel.

    Expected (linear light): where the head is nearer than the CG a ray hits, its
    colour over the CG's with its alpha (``a * head + (1 - a) * cg``), else the CG's.
    ``share``: the right fraction of the test pixels (more than 2 px from any edge of
    head, alpha or CG); ``halo_px``: how far from an edge the farthest wrong pixel is,
    leaving out CG edges (Cycles' own anti-aliasing), whose pixels are counted as
    ``cg_edge_fringe`` when no mix of the colours around them explains them.
    """
    from PIL import Image
    from scipy import ndimage

    img = np.asarray(Image.open(png).convert("RGB"), np.float64)
    label, zc = cg["label"], cg["depth"]
    a = nerf[..., 3:] / 255.0
    cg_lin = np.zeros(img.shape)
    for value, rgb in colours.items():
        cg_lin[label == value] = rgb
    near = (a[..., 0] > 0) & (nerf_depth < zc)
    expect = to_srgb8(np.where(near[..., None], a * linear(nerf[..., :3]) + (1 - a) * cg_lin,
                               cg_lin))
    wrong = np.abs(img - expect).max(-1) > tol
    # Baseline: the head laid over the CG without depth (the sequencer's Alpha Over).
    over = to_srgb8(a * linear(nerf[..., :3]) + (1 - a) * cg_lin)
    over_wrong = np.abs(over - expect).max(-1) > tol
    # Edges: where the nearest thing, or the head's alpha, changes between neighbours.
    kind = np.where(near, np.where(a[..., 0] >= 0.99, 10, 20), label)
    edge = (ndimage.maximum_filter(kind, 3) != ndimage.minimum_filter(kind, 3))
    cg_edge = ndimage.maximum_filter(label, 3) != ndimage.minimum_filter(label, 3)
    dist = ndimage.distance_transform_cdt(~edge, metric="chessboard")
    test = dist > 2
    halo = wrong & ~cg_edge
    fringe = 0
    for i, j in zip(*np.nonzero(wrong & cg_edge), strict=True):
        near_labels = set(label[max(0, i - 1):i + 2, max(0, j - 1):j + 2].ravel().tolist())
        refs = [np.asarray(colours.get(v, (0, 0, 0)), np.float64) for v in near_labels]
        refs.append(linear(expect[i, j]))
        got = linear(img[i, j])
        if min(seg_dist(got, p, q) for p in refs for q in refs) > 0.04:
            fringe += 1
    return {"tested": int(test.sum()), "right": int((test & ~wrong).sum()),
            "share": float((test & ~wrong).sum() / max(1, test.sum())),
            "share_alpha_over": float((test & ~over_wrong).sum() / max(1, test.sum())),
            "halo_px": int(dist[halo].max()) if halo.any() else 0,
            "halo_pixels": int(halo.sum()), "edge_pixels": int(edge.sum()),
            "cg_edge_fringe": fringe}


def seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip((p - a) @ ab / (ab @ ab), 0, 1))
    return float(np.abs(p - (a + t * ab)).max())


def test_composite_with_scene(cp311_zip: Path, tmp_path: Path, blender_python: str) -> None:
    from tests.blender_scripts.hybrid_scenarios import CUBE_RGB, PLANE_RGB

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
    m = check_composite(Path(r["composite_png"]), cg, rgba, depth,
                        {1: CUBE_RGB, 2: PLANE_RGB})
    print("composite check:", m)
    assert m["tested"] > 1000 and m["share"] >= 0.99, m
    assert m["halo_px"] <= 2 and m["cg_edge_fringe"] <= 0.3 * m["edge_pixels"], m


def test_render_follows_the_scene_range(cp311_zip: Path, tmp_path: Path,
                                        blender_python: str) -> None:
    """Issue 25: after an Animate over frames 1-48, Render to Sequencer renders the
    scene's range (5-8), through Last Take too, and again after reopening the .blend."""
    r = run_flow(cp311_zip, "range", tmp_path, python=blender_python,
                 extra={"tmp": str(tmp_path)})
    assert r["animate_error"] == "" and r["reanimate_error"] == ""
    out = r["renders"]
    assert out["rig_after_animate"]["frames"] == [5, 6, 7, 8], out
    assert out["rig_after_animate"]["shapes"][0] == [4, 52]
    assert out["take_after_render"]["frames"] == [5, 6, 7, 8], out
    assert out["take_partly_outside"]["frames"] == list(range(40, 49)), out
    assert out["take_outside"]["frames"] == [] and \
        "lie outside the last take (frames 1-48)" in out["take_outside"]["error"]
    assert out["rig_after_reopen"]["frames"] == [9, 10, 11], out
    assert out["take_after_reopen"]["frames"] == [10], out
    # A vertical head bone anchors the head at its base, facing the Front view.
    from shared.landmarks import HEAD_TO_BLENDER

    assert np.allclose(r["bone_pose"], np.array(r["rig_world"]) @ HEAD_TO_BLENDER, atol=1e-5)
    assert "has no bone 'nope'" in r["bad_bone"]


def euler_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """Blender's XYZ Euler rotation matrix."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), \
        np.sin(rz)
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return z @ y @ x


def on_grey(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:].astype(np.float64) / 255.0
    return (rgba[..., :3] * a + 128.0 * (1.0 - a)).astype(np.uint8)


def test_hybrid_shot_with_real_backend(cp311_zip: Path, tmp_path: Path,
                                       blender_python: str) -> None:
    """The shipped subject rendered by the real backend where a head anchor puts it
    (frame 1 at a known place, frame 2 moved and turned), seen at an angle, composited
    with a cube in front of the lower face and a plane behind."""
    from PIL import Image

    from backend.subject.conditioning import render_conditioning
    from backend.subject.store import read_manifest, resolve_subject
    from backend.tracking.face_tracker import track_faces
    from shared.camera import camera_from_dict, camera_views
    from shared.landmarks import HEAD_TO_BLENDER
    from tests.blender_scripts.hybrid_scenarios import ANCHOR_KEYS, CUBE_RGB, PLANE_RGB

    r = run_flow(cp311_zip, "hybrid_real", tmp_path, timeout_s=10.0, python=blender_python,
                 extra={"tmp": str(tmp_path), "size": 256})
    assert r["render_error"] == "" and r["composite_error"] == "", r
    assert r["placer"] == r["head_target"] == "Facecast Head Motion"  # under the anchor
    # The head's strip is muted while the composite carries the head (and the sequencer
    # render step is off, 4.x renders even muted strips); Stop Compositing undoes both.
    assert r["strips_muted_on"] == [True] and r["sequencer_on"] is False
    assert r["off"] == ["FINISHED"] and r["strips_muted_off"] == [False]
    assert r["sequencer_off"] is True
    # The head pose sent is the anchor's world matrix (the motion child at rest).
    want = []
    for frame in (1, 2):
        loc, rot = ANCHOR_KEYS[frame]
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = euler_xyz(*rot), loc
        want.append(m @ HEAD_TO_BLENDER)
    want = np.array(want)
    sent = dict(np.load(tmp_path / "sent.npz"))
    # Only what the render job reads crosses the wire (the request type's own params);
    # the scene frames of the rows stay in the add-on.
    own, _ = RenderJobRequest("s", {}, sent, head_pose_frame="world").to_wire()
    assert r["sent_params"] == sorted(own) and r["frames"] == [1, 2], r
    assert np.allclose(sent["head_pose"], want, atol=1e-5)
    # The rendered face lands where the anchor puts it: the landmarks the backend
    # rendered, projected through the anchor and the camera, against a face tracker run
    # on the rendered frames (baseline: the head at the face object, ignoring the anchor).
    cond = render_conditioning({"blendshapes": sent["blendshapes"], "head_pose": want},
                               read_manifest(resolve_subject("default")),
                               head_pose_frame="world")
    cam, mw = camera_from_dict(r["camera"])
    views = camera_views(cam, mw, 2)
    folder = Path(r["nerf_folder"])
    frames = [np.asarray(Image.open(folder / f"{f:06d}.png")) for f in (1, 2)]  # signed
    tracks = track_faces([on_grey(f) for f in frames], static=True)
    assert tracks.found.all()
    at_face = np.eye(4) @ HEAD_TO_BLENDER
    for i in range(2):
        lm = cond.landmarks[i]
        px, _ = views[i].project(lm @ want[i][:3, :3].T + want[i][:3, 3])
        base, _ = views[i].project(lm @ at_face[:3, :3].T + at_face[:3, 3])
        got = tracks.landmarks[i, :, :2]
        err = np.linalg.norm(px - got, axis=1)
        err_base = np.linalg.norm(base - got, axis=1)
        print(f"frame {i + 1}: landmark error median {np.median(err):.2f} px, mean "
              f"{err.mean():.2f} px (baseline, head at the face object: median "
              f"{np.median(err_base):.2f} px)")
        assert np.median(err) <= 2.0 and err.mean() <= 2.0
        assert np.median(err_base) > 5.0
    # The composite: cube, head, plane each where nearest; no fringe beyond edges.
    depth = decode_depth_exr((folder / "depth" / "000001.exr").read_bytes())
    cg = dict(np.load(tmp_path / "cg.npz"))
    rgba = frames[0].astype(np.float64)
    cls = classes(cg, rgba[..., 3] / 255.0, depth)
    assert {CUBE, HEAD, PLANE} <= set(np.unique(cls).tolist())
    assert ((cg["label"] == 1) & (rgba[..., 3] > 250) & (depth > cg["depth"])).sum() > 200, \
        "the cube must hide part of the face"
    m = check_composite(Path(r["composite_png"]), cg, rgba, depth,
                        {1: CUBE_RGB, 2: PLANE_RGB})
    print("composite check:", m)
    assert m["tested"] > 20000 and m["share"] >= 0.99, m
    assert m["halo_px"] <= 2 and m["cg_edge_fringe"] <= 0.3 * m["edge_pixels"], m
