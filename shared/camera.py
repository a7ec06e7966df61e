"""Blender camera -> pinhole intrinsics + world-to-camera, and the ``cam.json`` format.

Shared by the add-on (which writes ``cam.json`` / sends the same dict over the wire) and
the backend renderer (which turns it into rays), so both sides agree on every pixel.
Pure Python + numpy: it runs inside Blender's own interpreter without torch.

Conventions
-----------
* World: Blender's, metres, Z up.
* Camera space: Blender's (= OpenGL's): +X right, +Y up, the camera looks down -Z.
  ``world_to_camera`` is ``inverse(camera.matrix_world)`` with the matrix_world's scale
  removed (Blender ignores object scale for the view).
* Pixels: origin at the TOP-LEFT corner of the image, x right, y DOWN; pixel ``(i, j)``
  covers ``[i, i+1) x [j, j+1)`` so its centre is ``(i + 0.5, j + 0.5)``. A camera-space
  point ``(X, Y, Z)`` with ``Z < 0`` lands at ``x = cx + fx * X / -Z``,
  ``y = cy - fy * Y / -Z`` (the minus: camera +Y is image up).
* The image size is Blender's render size: ``floor(resolution * percentage / 100)``.

How Blender builds the view plane (``BKE_camera_params_compute_viewplane``), mirrored
here so lens, sensor size and fit, shift and non-square pixel aspect all match: the
sensor side used is ``sensor_height`` for VERTICAL fit, else ``sensor_width`` (AUTO
uses the width even when it is applied to the vertical side of a portrait frame); AUTO
fits the longer side of the *aspect-corrected* frame; shift is in units of that fitted
side. Only perspective cameras are supported (the NeRF renders projective rays).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

CAMERA_FORMAT = "facecast.camera"
CAMERA_VERSION = 1
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
_FIX = "check the Blender camera (focal length > 0, sensor size > 0, resolution > 0)"


@dataclass(frozen=True)
class BlenderCamera:
    """The Blender camera and render settings that determine the projection."""

    lens: float = 50.0  # mm
    sensor_width: float = 36.0  # mm
    sensor_height: float = 24.0  # mm
    sensor_fit: str = "AUTO"
    shift_x: float = 0.0  # in units of the fitted sensor side
    shift_y: float = 0.0
    clip_start: float = 0.1  # metres
    clip_end: float = 100.0
    resolution_x: int = 1920
    resolution_y: int = 1080
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0

    def validated(self) -> BlenderCamera:
        """Raise InputError for any setting Blender itself could not render with."""
        numbers = {"lens": self.lens, "sensor_width": self.sensor_width,
                   "sensor_height": self.sensor_height, "shift_x": self.shift_x,
                   "shift_y": self.shift_y, "clip_start": self.clip_start,
                   "clip_end": self.clip_end, "pixel_aspect_x": self.pixel_aspect_x,
                   "pixel_aspect_y": self.pixel_aspect_y}
        for name, value in numbers.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"camera {name} is {value!r}, not a finite number", _FIX)
        for name in ("lens", "sensor_width", "sensor_height", "pixel_aspect_x",
                     "pixel_aspect_y", "clip_start"):
            if numbers[name] <= 0:
                raise InputError(f"camera {name} must be > 0, got {numbers[name]}", _FIX)
        # Blender's own ranges (shift ±10 exactly; the others far beyond any real camera),
        # so extreme numbers are refused here instead of overflowing in the renderer.
        for name, limit in (("shift_x", 10.0), ("shift_y", 10.0), ("lens", 1e5),
                            ("sensor_width", 1e4), ("sensor_height", 1e4),
                            ("pixel_aspect_x", 1e3), ("pixel_aspect_y", 1e3)):
            if abs(numbers[name]) > limit:
                raise InputError(f"camera {name} is {numbers[name]!r}, outside "
                                 f"[-{limit:g}, {limit:g}]" if name.startswith("shift") else
                                 f"camera {name} is {numbers[name]!r}, above {limit:g}", _FIX)
        if self.clip_end <= self.clip_start:
            raise InputError(f"camera clip_end ({self.clip_end}) must exceed clip_start "
                             f"({self.clip_start})", "raise the camera's Clip End")
        if self.sensor_fit not in SENSOR_FITS:
            raise InputError(f"unknown sensor_fit {self.sensor_fit!r}",
                             f"use one of {', '.join(SENSOR_FITS)}")
        for name in ("resolution_x", "resolution_y", "resolution_percentage"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"camera {name} must be a positive integer, got {value!r}",
                                 _FIX)
        w, h = self.image_size
        if w < 1 or h < 1 or w > 16384 or h > 16384:
            raise InputError(f"render size {w}x{h} is outside 1..16384 pixels",
                             "set the output resolution and percentage to a usable size")
        return self

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels, as Blender renders them."""
        return (self.resolution_x * self.resolution_percentage // 100,
                self.resolution_y * self.resolution_percentage // 100)

    def viewplane(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the image on the plane at distance 1 (tangents)."""
        w, h = self.image_size
        aspx, aspy = self.pixel_aspect_x, self.pixel_aspect_y
        ycor = aspy / aspx
        sensor = self.sensor_height if self.sensor_fit == "VERTICAL" else self.sensor_width
        fit = self.sensor_fit
        if fit == "AUTO":
            fit = "HORIZONTAL" if aspx * w >= aspy * h else "VERTICAL"
        viewfac = w if fit == "HORIZONTAL" else ycor * h
        pix = sensor / self.lens / viewfac  # tangent per (aspect-corrected) pixel
        dx, dy = self.shift_x * viewfac, self.shift_y * viewfac
        return ((-0.5 * w + dx) * pix, (0.5 * w + dx) * pix,
                (-0.5 * ycor * h + dy) * pix, (0.5 * ycor * h + dy) * pix)

    def intrinsics(self) -> np.ndarray:
        """3x3 pinhole matrix K in pixels (top-left origin, y down; see module doc)."""
        w, h = self.image_size
        xmin, xmax, ymin, ymax = self.viewplane()
        fx, fy = w / (xmax - xmin), h / (ymax - ymin)
        return np.array([[fx, 0.0, -xmin * fx], [0.0, fy, ymax * fy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CameraView:
    """One camera for one frame: intrinsics, world-to-camera (Blender axes), size."""

    k: np.ndarray  # [3, 3]
    world_to_camera: np.ndarray  # [4, 4]
    width: int
    height: int
    clip_start: float
    clip_end: float

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [..., 3] -> (pixels [..., 2] top-left origin, depth [...] along -Z)."""
        p = np.asarray(points_world, float)
        cam = p @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        depth = -cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = cam[..., 0] / depth, cam[..., 1] / depth
        x = self.k[0, 2] + self.k[0, 0] * u
        y = self.k[1, 2] - self.k[1, 1] * v
        return np.stack([x, y], axis=-1), depth


def _matrix(value: Any, what: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not a 4x4 matrix of numbers", _MATRIX_FIX) from exc
    if m.shape[-2:] != (4, 4):
        raise InputError(f"{what} must be 4x4 (or [T, 4, 4]), got shape {m.shape}",
                         _MATRIX_FIX)
    if not np.all(np.isfinite(m)):
        raise InputError(f"{what} contains NaN or infinite values", _MATRIX_FIX)
    return m


_MATRIX_FIX = "pass the camera object's matrix_world as 4 rows of 4 numbers"


def world_to_camera(matrix_world: np.ndarray) -> np.ndarray:
    """Invert a camera's matrix_world ([..., 4, 4]) after removing its scale (as Blender)."""
    m = _matrix(matrix_world, "camera matrix_world")
    rot = m[..., :3, :3]
    scale = np.linalg.norm(rot, axis=-2)
    if np.any(scale < 1e-9) or not np.allclose(m[..., 3, :], [0, 0, 0, 1]):
        raise InputError("camera matrix_world is degenerate (zero scale or not affine)",
                         _MATRIX_FIX)
    rot = rot / scale[..., None, :]
    u, _, vt = np.linalg.svd(rot)  # nearest rotation: tolerate float noise and shear
    rot = u @ vt
    if np.any(np.linalg.det(rot) < 0):
        raise InputError("camera matrix_world is mirrored (negative scale)",
                         "remove negative scale from the camera object")
    out = np.zeros(m.shape)
    out[..., :3, :3] = np.swapaxes(rot, -1, -2)
    out[..., :3, 3] = -np.einsum("...ji,...j->...i", rot, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def camera_from_dict(data: dict) -> tuple[BlenderCamera, np.ndarray]:
    """Parse a ``cam.json`` dict -> (camera, matrix_world [4,4] or [T,4,4])."""
    if not isinstance(data, dict):
        raise InputError("camera must be a JSON object", "write it with camera_to_dict")
    if data.get("format", CAMERA_FORMAT) != CAMERA_FORMAT:
        raise InputError(f"not a Facecast camera (format={data.get('format')!r})",
                         "export the camera from the Facecast add-on")
    version = data.get("version", CAMERA_VERSION)
    if version != CAMERA_VERSION:
        raise InputError(f"camera format version {version} is not supported",
                         f"update Facecast; this backend reads version {CAMERA_VERSION}")
    if data.get("type", "PERSP") != "PERSP":
        raise InputError(f"camera type {data.get('type')!r} is not supported",
                         "use a perspective camera (orthographic/panoramic cannot render)")
    fields = {f: data[f] for f in BlenderCamera.__dataclass_fields__ if f in data}
    cam = BlenderCamera(**fields).validated()
    if "matrix_world" not in data:
        raise InputError("camera has no matrix_world", _MATRIX_FIX)
    return cam, _matrix(data["matrix_world"], "camera matrix_world")


def camera_to_dict(cam: BlenderCamera, matrix_world: np.ndarray) -> dict:
    """The ``cam.json`` dict (``matrix_world`` row-major, 4x4 or per-frame [T,4,4])."""
    out = {"format": CAMERA_FORMAT, "version": CAMERA_VERSION, "type": "PERSP"}
    out.update({f: getattr(cam, f) for f in BlenderCamera.__dataclass_fields__})
    out["matrix_world"] = np.asarray(matrix_world, float).tolist()
    return out


def load_camera(path: str | Path) -> tuple[BlenderCamera, np.ndarray]:
    """Read a ``cam.json`` file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"camera file not found: {p}", "export it from the add-on") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"camera file {p.name} is not valid JSON: {exc}",
                         "export it again from the add-on") from exc
    return camera_from_dict(data)


def camera_views(cam: BlenderCamera, matrix_world: np.ndarray, n_frames: int
                 ) -> list[CameraView]:
    """One CameraView per frame (a single matrix is held for all frames)."""
    cam = cam.validated()
    w2c = world_to_camera(matrix_world)
    if w2c.ndim == 2:
        w2c = np.broadcast_to(w2c, (n_frames, 4, 4))
    elif len(w2c) != n_frames:
        raise InputError(f"camera has {len(w2c)} matrices for {n_frames} frames",
                         "give one matrix_world, or one per rendered frame")
    k = cam.intrinsics()
    w, h = cam.image_size
    return [CameraView(k, np.array(m), w, h, cam.clip_start, cam.clip_end) for m in w2c]


def camera_dict_from_blender(cam_object: Any, scene: Any) -> dict:
    """Build the ``cam.json`` dict from a bpy camera object + scene (duck-typed, no bpy
    import, so the add-on and tests call the same code)."""
    d, r = cam_object.data, scene.render
    if d.type != "PERSP":
        raise InputError(f"camera {cam_object.name!r} is {d.type}, not perspective",
                         "set the camera type to Perspective")
    # ``lens`` stays authoritative even when the UI shows a field of view.
    cam = BlenderCamera(float(d.lens), float(d.sensor_width), float(d.sensor_height),
                        str(d.sensor_fit), float(d.shift_x), float(d.shift_y),
                        float(d.clip_start), float(d.clip_end), int(r.resolution_x),
                        int(r.resolution_y), int(r.resolution_percentage),
                        float(r.pixel_aspect_x), float(r.pixel_aspect_y))
    return camera_to_dict(cam, np.array([list(row) for row in cam_object.matrix_world]))
