"""The head box the field lives in, and rays expressed in the canonical head frame.

The field is defined in the canonical head frame of ``shared.landmarks`` (metres, +X the
subject's left, +Y up, +Z out of the face), so one trained subject renders under any
head pose and any camera: a ray is moved into the head frame by the head-to-camera pose,
nothing else changes.

What the box holds in version-2 subjects (current subjects have a head box that ends
under the chin and a torso field of their own: ``model.CURRENT``, ``torso``): a
head-and-shoulders BUST, rigid with the head, cut below the shoulders with density faded
to zero over its lowest ``FADE`` metres. Everything outside the boxes (background, the
rest of the body) is the background plate during training and transparent at render
time, so a render is an RGBA layer to composite over any plate or CG. Inside a box,
space that no training frame showed (below the source frame's bottom edge, beside a
tight close-up) is carved out of the occupancy grid, so from a wider Blender camera the
subject simply ends where the source frame ended instead of showing untrained fog.
"""

from __future__ import annotations

import numpy as np
import torch

# Canonical-frame bust box, metres. The face spans x +-0.078, y -0.094..0.083 (chin to
# forehead), z -0.024..0.076; hair, ears and the back of the head add ~8 cm, shoulders
# reach ~0.23 m sideways and ~0.3 m below the chin.
BOX_LO = (-0.26, -0.42, -0.17)
BOX_HI = (0.26, 0.21, 0.14)
FADE = 0.05  # density fades out over the lowest 5 cm of the box (soft bust cut)


def box_tensors(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(BOX_LO, dtype=torch.float32, device=device),
            torch.tensor(BOX_HI, dtype=torch.float32, device=device))


def pixel_rays(k: np.ndarray, width: int, height: int, head_to_camera: np.ndarray,
               pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rays through pixel centres, in the head frame.

    Directions are NOT unit length: each is scaled so that its camera-space z component
    is -1, which makes the ray parameter ``t`` equal to the planar depth in front of the
    camera (what a depth pass stores). ``pixels`` is ``[N, 2]`` (x, y) integer pixel
    coordinates; all pixels in row-major order when None. Returns origins ``[N, 3]`` and
    directions ``[N, 3]`` (float32).
    """
    if pixels is None:
        ys, xs = np.mgrid[0:height, 0:width]
        pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    px = pixels[:, 0].astype(np.float64) + 0.5
    py = pixels[:, 1].astype(np.float64) + 0.5
    cam_dirs = np.stack([(px - k[0, 2]) / k[0, 0], -(py - k[1, 2]) / k[1, 1],
                         -np.ones_like(px)], axis=1)
    rot, trans = head_to_camera[:3, :3], head_to_camera[:3, 3]
    origin = -rot.T @ trans  # camera centre in the head frame
    dirs = cam_dirs @ rot  # rot.T applied to each row
    return (np.broadcast_to(origin, dirs.shape).astype(np.float32),
            dirs.astype(np.float32))


def rays_torch(k: torch.Tensor, pixels: torch.Tensor, head_to_camera: torch.Tensor,
               focal_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``pixel_rays`` in torch (float64, differentiable in the focal scale) for integer
    pixels [N, 2] of one camera pose: origins [N, 3], directions [N, 3] (camera z = -1)."""
    px = pixels[:, 0].to(k.dtype) + 0.5
    py = pixels[:, 1].to(k.dtype) + 0.5
    fx, fy = k[0, 0], k[1, 1]
    if focal_scale is not None:
        fx, fy = fx * focal_scale.to(k.dtype), fy * focal_scale.to(k.dtype)
    cam = torch.stack([(px - k[0, 2]) / fx, -(py - k[1, 2]) / fy, -torch.ones_like(px)], 1)
    rot, trans = head_to_camera[:3, :3], head_to_camera[:3, 3]
    origin = -rot.t() @ trans
    return origin.expand_as(cam), cam @ rot


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab intersection: (t_near, t_far, hit) per ray; t_near clamped at 0."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (lo - origins) * inv, (hi - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    return near, far, far > near
