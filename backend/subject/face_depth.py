"""The tracked face mesh as a depth prior for the subject's field.

Why: a talking-head clip sees the face from a narrow cone of directions, so the images
barely say how far along each ray the face is. The visual hull of the mattes is a deep
tube, and without help the field painted the face on a surface centimetres in FRONT of
the real one (docs/BENCHMARKS.md, the geometry row). That one error costs three things:
a head turned a few degrees from the footage shows the parallax of the wrong surface
(held-out frames needed rotations to line up); the mesh-guided deformation, which acts
within ~1.5 cm of the mesh (``nerf.fields.deformation``), hardly touches the surface it should
move (a commanded jaw drop barely opened the rendered mouth); and novel Blender cameras
see a flat mask.

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

from shared.camera import CameraView
from shared.landmarks import canonical_face

FREE_MARGIN = 0.025  # metres in front of the mesh that stay occupiable


def surface_ids() -> np.ndarray:
    """Landmark ids whose tracked 3-D position is on the visible face surface."""
    cf = canonical_face()
    drop = set(np.asarray(cf.groups["face_oval"]).tolist()) | set(range(468, 478))
    return np.array([i for i in range(468) if i not in drop], dtype=np.int64)


def project(points: np.ndarray, head_to_camera: np.ndarray, k: np.ndarray,
            width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Head-frame points [N, 3] -> (pixels [N, 2], planar depth [N]) through the camera
    (``shared.camera.CameraView.project``)."""
    view = CameraView(np.asarray(k, np.float64), np.asarray(head_to_camera, np.float64),
                      int(width), int(height), 1e-3, 1e3)
    return view.project(np.asarray(points, np.float64))


def front_depth(landmarks: np.ndarray, head_to_camera: np.ndarray, k: np.ndarray,
                width: int, height: int) -> np.ndarray:
    """Planar depth [H, W] of the tracked face mesh (NaN off the face): linear over the
    Delaunay triangles of the projected landmarks (the open mouth's hole is bridged by
    the lips' depth, so the mouth interior behind it is never carved)."""
    from scipy.interpolate import LinearNDInterpolator

    pix, z = project(np.asarray(landmarks)[:468], head_to_camera, k, width, height)
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

