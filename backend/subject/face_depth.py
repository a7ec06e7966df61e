"""The tracked face mesh as a depth prior for the subject's field.

Why: a talking-head clip sees the face from a narrow cone of directions, so the images
barely say how far along each ray the face is. The visual hull of the mattes is a deep
tube, and the field painted the face on a surface ~3-4 cm in FRONT of the real one (the
v2 and v3 subjects of d6: rendered depth 29 mm and 37 mm nearer than the tracked mesh
at its landmarks). That one error costs three things: a head turned a few degrees from
the footage shows the parallax of the wrong surface (held-out frames needed 3-5 degree
rotations to line up); the mesh-guided deformation, which acts within ~1.5 cm of the
mesh (``nerf.deformation``), hardly touches the surface it should move (a commanded jaw
drop barely opened the rendered mouth); and novel Blender cameras see a flat mask.

The prior, in two parts:

* **free space** (``front_depth``): the tracked mesh's depth per pixel (linear over its
  triangulated landmarks); the occupancy grid is carved in front of it, leaving a margin
  ``FREE_MARGIN`` for what stands before the skin (glasses, a fringe, a beard);
* **landmark depth** (``LandmarkDepth``): a few surface landmarks per training frame
  are rendered like any pixel, and their expected depth is pulled to the landmark's
  depth along the ray (a robust loss, ``Trainer``), like depth-supervised NeRF's sparse
  keypoints. The face oval (it slides along the silhouette) and the irises are left out.
"""

from __future__ import annotations

import numpy as np

from shared.landmarks import canonical_face

FREE_MARGIN = 0.025  # metres in front of the mesh that stay occupiable


def surface_ids() -> np.ndarray:
    """Landmark ids whose tracked 3-D position is on the visible face surface."""
    cf = canonical_face()
    drop = set(np.asarray(cf.groups["face_oval"]).tolist()) | set(range(468, 478))
    return np.array([i for i in range(468) if i not in drop], dtype=np.int64)


def camera_points(landmarks: np.ndarray, head_to_camera: np.ndarray) -> np.ndarray:
    """Head-frame landmarks [N, 3] -> camera space [N, 3] (camera looks down -Z)."""
    return landmarks @ head_to_camera[:3, :3].T + head_to_camera[:3, 3]


def project(points_cam: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space points -> (pixels [N, 2] top-left origin, y down; planar depth [N])."""
    z = -points_cam[:, 2]
    x = k[0, 0] * points_cam[:, 0] / z + k[0, 2]
    y = -k[1, 1] * points_cam[:, 1] / z + k[1, 2]
    return np.stack([x, y], axis=1), z


def front_depth(landmarks: np.ndarray, head_to_camera: np.ndarray, k: np.ndarray,
                width: int, height: int) -> np.ndarray:
    """Planar depth [H, W] of the tracked face mesh (NaN off the face): linear over the
    Delaunay triangles of the projected landmarks (the open mouth's hole is bridged by
    the lips' depth, so the mouth interior behind it is never carved)."""
    from scipy.interpolate import LinearNDInterpolator

    pix, z = project(camera_points(np.asarray(landmarks, np.float64)[:468],
                                   np.asarray(head_to_camera, np.float64)), k)
    ok = np.isfinite(pix).all(1) & (z > 1e-3)
    interp = LinearNDInterpolator(pix[ok], z[ok])
    ys, xs = np.mgrid[0:height, 0:width]
    query = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    return interp(query).reshape(height, width).astype(np.float32)


class LandmarkDepth:
    """Per training frame: ``n`` surface landmarks as pixels and head-frame points."""

    def __init__(self, landmarks: np.ndarray, pixels: np.ndarray, width: int, height: int,
                 n: int) -> None:
        self.ids = surface_ids()
        self.landmarks = np.asarray(landmarks, np.float32)
        self.pixels = np.asarray(pixels, np.float32)
        self.size = (int(width), int(height))
        self.n = int(min(n, len(self.ids)))

    def sample(self, rng: np.random.Generator, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(integer pixels [n, 2], head-frame points [n, 3]) of ``n`` random surface
        landmarks of ``frame`` (tracked 2-D positions; pixels inside the image)."""
        pick = rng.choice(self.ids, self.n, replace=False)
        px = np.floor(self.pixels[frame, pick]).astype(np.int64)
        w, h = self.size
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        return px[inside], self.landmarks[frame, pick[inside]]


def depth_error_mm(model, grid, data, frames: list[int]) -> tuple[float, float]:
    """(median signed, median absolute) rendered depth minus the tracked mesh's depth, in
    millimetres, at the surface landmarks of ``frames`` that render opaque (negative: the
    field's surface is in front of the mesh). The benchmark's geometry row."""
    import torch

    from ..nerf.view import render_view
    from .train import torso_codes

    h, w = data.frames.shape[1:3]
    ids = surface_ids()
    body = data.body()
    errs = []
    for f in frames:
        bs = (data.blendshapes[f:f + 1] if data.blendshapes is not None
              else np.zeros((1, 52), np.float32))
        with torch.inference_mode():
            vol = model.condition(torch.from_numpy(data.landmarks[f:f + 1]).float(),
                                  torch.from_numpy(np.asarray(bs, np.float32)), grid,
                                  torch.from_numpy(torso_codes(data.poses[f:f + 1],
                                                               body[f:f + 1])))
        rgba, depth = render_view(model, grid, data.k, w, h, data.poses[f], vol,
                                  body_to_camera=body[f])
        pix, z = project(camera_points(data.landmarks[f, ids].astype(np.float64),
                                       data.poses[f]), data.k)
        x, y = np.floor(pix[:, 0]).astype(int), np.floor(pix[:, 1]).astype(int)
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        ok[ok] &= rgba[y[ok], x[ok], 3] > 0.5
        errs.append((depth[y[ok], x[ok]] - z[ok]) * 1000.0)
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return float(np.median(e)), float(np.median(np.abs(e)))
