"""From a subject's field, cameras and a ``Conditioning`` to RGBA + depth frames.

``render_sequence`` is the field's frame loop: give it the subject's field and occupancy
grid, one ``shared.camera.CameraView`` per frame and a ``Conditioning`` made by
``backend.subject.conditioning.render_conditioning`` (the contract: validation,
retargeting onto the subject, head and body poses in the Blender world). It yields one
raw ``(index, rgba, depth)`` per frame. Renders for users go through the render service
(``backend.render``), which stamps every frame with its watermark and signs it.

``Conditioning`` (validated by ``check_conditioning``):

* ``landmarks`` [T, 478, 3]: the subject's face-space landmarks, metres, canonical head
  frame (pose removed).
* ``blendshapes`` [T, 52] (optional): ARKit weights in ``shared.blendshapes`` order.
* ``head_pose`` [T, 4, 4]: canonical head frame -> Blender WORLD (metres, Z up).
  Default: the head at the world origin looking down Blender's -Y (Front view).
* ``body_pose`` [T, 4, 4] (optional): the torso's frame -> world (default: the head's).

Outputs per frame: RGBA uint8 (straight alpha, for PNG/compositing) and depth as uint16
MILLIMETRES of planar distance from the camera (along its -Z axis; 0 = no subject).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shared.camera import CameraView
from shared.errors import InputError
from shared.landmarks import N_LANDMARKS

from .components.sampler import SampleOptions
from .fields.torso import pose_code
from .view import render_view

N_BS = 52
HEAD_DEFAULT = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
MAX_FRAMES = 100_000


@dataclass
class Conditioning:
    landmarks: np.ndarray  # float32 [T, 478, 3]
    blendshapes: np.ndarray | None  # float32 [T, 52]
    head_pose: np.ndarray  # float64 [T, 4, 4] head -> world
    body_pose: np.ndarray | None = None  # float64 [T, 4, 4] torso frame -> world

    def __len__(self) -> int:
        return len(self.landmarks)

    def frames(self, start: int, stop: int) -> Conditioning:
        """Frames ``[start, stop)`` (e.g. one chunk for a render actor)."""
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        return Conditioning(self.landmarks[start:stop], cut(self.blendshapes),
                            self.head_pose[start:stop], cut(self.body_pose))


def _finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))[:, 0]
        raise InputError(f"{name} contains NaN/inf values (frames {bad[:5].tolist()}...)",
                         f"fix or drop those frames of {name} before rendering")


def check_conditioning(landmarks: np.ndarray | None, blendshapes: np.ndarray | None,
                       head_pose: np.ndarray | None) -> Conditioning:
    """Validate shapes and values; InputError naming the array and the expected shape."""
    if landmarks is None and blendshapes is None:
        raise InputError("no conditioning given",
                         "pass landmarks [T, 478, 3] and/or blendshapes [T, 52]")
    if blendshapes is not None:
        blendshapes = np.asarray(blendshapes, dtype=np.float32)
        if blendshapes.ndim != 2 or blendshapes.shape[1] != N_BS:
            raise InputError(f"blendshapes must be shaped [T, 52], got {blendshapes.shape}",
                             "pass one row of 52 ARKit weights per frame")
        _finite(blendshapes, "blendshapes")
    if landmarks is None:
        try:
            from backend.motion import face_basis  # written by the motion-model work
        except ImportError as exc:
            raise InputError("this renderer needs landmarks; blendshapes alone cannot "
                             "be turned into landmarks here",
                             "pass landmarks [T, 478, 3] (the motion model outputs them)"
                             ) from exc
        landmarks = face_basis.landmarks_from_blendshapes(blendshapes)  # type: ignore
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 3):
        raise InputError(f"landmarks must be shaped [T, 478, 3], got {landmarks.shape}",
                         "pass face-space landmarks (metres) for every frame")
    t = len(landmarks)
    if t == 0 or t > MAX_FRAMES:
        raise InputError(f"{t} frames of conditioning", f"render 1..{MAX_FRAMES} frames")
    _finite(landmarks, "landmarks")
    if np.abs(landmarks).max() > 1.0:
        raise InputError("landmarks are not in metres (values beyond 1 m)",
                         "pass face-space landmarks in metres, not pixels")
    if blendshapes is not None and len(blendshapes) != t:
        raise InputError(f"{len(blendshapes)} blendshape rows for {t} landmark frames",
                         "give both arrays one row per frame")
    if head_pose is None:
        head_pose = HEAD_DEFAULT
    head_pose = np.asarray(head_pose, dtype=np.float64)
    if head_pose.shape == (4, 4):
        head_pose = np.broadcast_to(head_pose, (t, 4, 4)).copy()
    if head_pose.shape != (t, 4, 4):
        raise InputError(f"head_pose must be [4, 4] or [{t}, 4, 4], got {head_pose.shape}",
                         "pass one head-to-world matrix, or one per frame")
    _finite(head_pose, "head_pose")
    return Conditioning(landmarks, blendshapes, head_pose)


def head_to_camera(view: CameraView, head_to_world: np.ndarray) -> np.ndarray:
    """Compose, and refuse cameras that cannot see the head (behind it / inside it)."""
    m = view.world_to_camera @ head_to_world
    depth = -m[2, 3]  # head origin's distance in front of the camera
    if depth <= max(view.clip_start, 0.05):
        raise InputError(f"the head is {'behind' if depth <= 0 else 'too close to'} the "
                         f"camera (head origin at {depth:.3f} m along its view axis)",
                         "point the camera at the head from at least 5 cm away "
                         "(and beyond its Clip Start)")
    return m


def to_outputs(rgba: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied float RGBA -> straight-alpha uint8; depth metres -> uint16 mm."""
    a = rgba[..., 3:]
    rgb = np.where(a > 1e-4, rgba[..., :3] / np.maximum(a, 1e-4), 0.0)
    out = np.concatenate([rgb, a], axis=-1)
    rgba8 = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    mm = np.where(a[..., 0] > 1e-3, depth * 1000.0, 0.0)
    return rgba8, np.clip(mm + 0.5, 0, 65535).astype(np.uint16)


def render_sequence(model, grid, views: list[CameraView], cond: Conditioning,
                    opts: SampleOptions | None = None, fp16: bool = False
                    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield raw (index, rgba uint8 [H, W, 4], depth uint16 mm [H, W]) per frame, with no
    watermark (``backend.render.render_frames`` adds it).

    Deterministic: the same inputs give bit-identical frames (no jitter, fixed chunks).
    """
    opts = opts or SampleOptions()
    poses = [head_to_camera(v, cond.head_pose[i]) for i, v in enumerate(views)]  # fail early
    body = cond.head_pose if cond.body_pose is None else cond.body_pose
    body_poses = [v.world_to_camera @ body[i] for i, v in enumerate(views)]
    dev = next(model.parameters()).device
    lm = torch.from_numpy(np.ascontiguousarray(cond.landmarks, np.float32)).to(dev)
    bs = None if cond.blendshapes is None else torch.from_numpy(
        np.ascontiguousarray(cond.blendshapes, np.float32)).to(dev)
    codes = None
    if getattr(model, "torso", None) is not None:
        rel = np.linalg.inv(body) @ cond.head_pose  # the head relative to the body
        codes = torch.from_numpy(pose_code(rel)).to(dev)
    for i, view in enumerate(views):
        with torch.inference_mode():
            vol = model.condition(lm[i:i + 1], None if bs is None else bs[i:i + 1], grid,
                                  None if codes is None else codes[i:i + 1])
        rgba, depth = render_view(model, grid, view.k, view.width, view.height, poses[i],
                                  vol, opts, fp16=fp16, body_to_camera=body_poses[i])
        rgba8, mm = to_outputs(rgba, depth)
        yield i, rgba8, mm
