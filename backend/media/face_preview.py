"""A shaded picture of the 478-point face mesh, drawn with numpy alone.

Why: the demo shows the generated animation next to the NeRF render, on any machine —
headless, no GPU, no OpenGL. The canonical mesh (898 triangles) is small enough that a
painter's-algorithm fill per triangle costs little beside a render. The mesh
spans the mouth and eye openings, so the mouth cavity, eye whites and irises are drawn
over it inside the inner-lip and lid contours, which collapse when lips or lids close.
"""

from __future__ import annotations

import numpy as np

from shared.landmarks import canonical_face

SKIN = np.array([0.86, 0.68, 0.58])
LIPS = np.array([0.72, 0.36, 0.36])
CAVITY = np.array([0.18, 0.05, 0.06])
EYE_WHITE = np.array([0.93, 0.93, 0.9])
IRIS = np.array([0.25, 0.18, 0.12])
BACKGROUND = np.array([0.16, 0.17, 0.2])
LIGHT = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])


class FacePreview:
    """Draws face-space landmarks ``[478, 3]`` (metres, +Y up, +Z toward the viewer)."""

    def __init__(self, size: int = 256, margin: float = 0.1) -> None:
        face = canonical_face()
        self.size = size
        self.tris = face.triangles
        lips = set(face.groups["lips_outer"].tolist()) | set(face.groups["lips_inner"].tolist())
        self.lip_tri = np.array([all(int(i) in lips for i in t) for t in self.tris])
        self.inner_lip = face.groups["lips_inner"]
        self.eyes = (face.groups["left_eye"], face.groups["right_eye"])
        self.irises = (face.groups["left_iris"], face.groups["right_iris"])
        lo, hi = face.vertices.min(0), face.vertices.max(0)
        self.centre = (lo + hi) / 2
        self.scale = (1 - 2 * margin) * size / float(max(hi[0] - lo[0], hi[1] - lo[1]))
        ys, xs = np.mgrid[0:size, 0:size]
        self._px = np.stack([xs + 0.5, ys + 0.5], -1)

    def _project(self, pts: np.ndarray) -> np.ndarray:
        xy = (pts[:, :2] - self.centre[:2]) * self.scale
        return np.stack([self.size / 2 + xy[:, 0], self.size / 2 - xy[:, 1]], -1)

    def pixel_points(self, landmarks: np.ndarray) -> np.ndarray:
        """Where ``render`` draws each landmark: pixel coordinates ``[N, 2]`` (x, y)."""
        return self._project(np.asarray(landmarks, np.float64))

    def _fill(self, img: np.ndarray, poly: np.ndarray, colour: np.ndarray) -> None:
        """Fill a convex or star-shaped polygon (fan from its centroid)."""
        c = poly.mean(0)
        for a, b in zip(poly, np.roll(poly, -1, 0), strict=True):
            self._fill_triangle(img, np.stack([c, a, b]), colour)

    def _fill_triangle(self, img: np.ndarray, tri: np.ndarray, colour: np.ndarray) -> None:
        x0, y0 = np.floor(tri.min(0)).astype(int)
        x1, y1 = np.ceil(tri.max(0)).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size), min(y1, self.size)
        if x0 >= x1 or y0 >= y1:
            return
        p = self._px[y0:y1, x0:x1]
        a, b, c = tri
        d1 = _edge(p, a, b)
        d2 = _edge(p, b, c)
        d3 = _edge(p, c, a)
        inside = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
        img[y0:y1, x0:x1][inside] = colour

    def _draw_eye(self, img: np.ndarray, contour: np.ndarray, iris: np.ndarray) -> None:
        """Eye white inside the lid contour and the iris clipped to it; a closed lid
        collapses the contour, so blinks show."""
        mask = np.zeros_like(img)
        self._fill(mask, contour, np.ones(3))
        white = mask[..., 0] > 0
        img[white] = EYE_WHITE
        ring = np.zeros_like(img)
        self._fill(ring, iris[1:], np.ones(3))
        img[white & (ring[..., 0] > 0)] = IRIS

    def render(self, landmarks: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame ``[size, size, 3]``."""
        pts = np.asarray(landmarks, np.float64)
        img = np.empty((self.size, self.size, 3))
        img[:] = BACKGROUND
        px = self._project(pts)
        tri = pts[self.tris]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        facing = normals[:, 2] > 0
        shade = 0.35 + 0.65 * np.clip(normals @ LIGHT, 0, 1)
        order = np.argsort(tri[:, :, 2].mean(1))  # far first
        for i in order:
            if not facing[i]:
                continue
            base = LIPS if self.lip_tri[i] else SKIN
            self._fill_triangle(img, px[self.tris[i]], base * shade[i])
        self._fill(img, px[self.inner_lip], CAVITY)
        for eye, iris in zip(self.eyes, self.irises, strict=True):
            self._draw_eye(img, px[eye], px[iris])
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _edge(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (p[..., 0] - a[0]) * (b[1] - a[1]) - (p[..., 1] - a[1]) * (b[0] - a[0])
