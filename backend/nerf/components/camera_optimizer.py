"""Per-frame head-pose (and body-pose) refinement and focal-length estimation during
training, like nerfstudio's camera optimizer.

Why: the head poses come from fitting the canonical face to tracked landmarks, smoothed;
they are off by a few millimetres and a fraction of a degree, and the field's focal
length is a 40-degree guess. Every such error blurs the field (the same surface point
lands on different pixels in different frames), which is why the old field underfit
its own training frames. The field learns the corrections with everything else.

Parametrisation: a small rigid correction of the head frame (axis-angle rotation +
translation, metres) applied to the rays in the head frame (o' = R o + t, d' = R d), the
same for the body frame (the torso's rays), and one global focal scale. The corrections
are a piecewise-linear function of TIME with a knot every ``KNOT_FRAMES`` frames, not a
free correction per frame: a training step sees 2 frames, so in a CPU budget (~1500
steps on a ~900-frame clip) each frame is drawn ~3 times, and free per-frame
corrections came out as noise (measured on d6: neighbouring frames' depth corrections
differed by 8 mm, and the renders blurred). A knot collects the gradients of its
~2 x ``KNOT_FRAMES`` frames, and a real tracking error (a slow drift in depth, a nod the
smoothing flattened) is smooth in time anyway. The corrections' mean is removed (the
gauge: the field, not the poses, absorbs a common offset), a small L2 penalty keeps them
near the tracked poses, and Adam runs without momentum on them (``betas=(0, 0.99)``
in the trainer) so a knot moves only while its frames are drawn. Held-out frames keep
their tracked poses: they are measured as a new performance would be.
"""

from __future__ import annotations

import torch
from torch import nn


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """[N, 3] axis-angle -> [N, 3, 3] rotation (Rodrigues; exact at 0)."""
    theta2 = (v * v).sum(-1, keepdim=True)
    theta = theta2.clamp_min(1e-12).sqrt()
    # sin(t)/t and (1 - cos(t))/t^2 with their series near 0.
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


KNOT_FRAMES = 8  # ~0.27 s at 30 fps


class CameraOptimizer(nn.Module):
    """Learned corrections for ``n_frames`` training frames (zero at start)."""

    def __init__(self, n_frames: int, knot_frames: int = KNOT_FRAMES) -> None:
        super().__init__()
        self.n_frames, self.knot_frames = int(n_frames), int(knot_frames)
        n_knots = (max(1, self.n_frames) - 1) // self.knot_frames + 2
        self.head = nn.Parameter(torch.zeros(n_knots, 6))
        self.body = nn.Parameter(torch.zeros(n_knots, 6))
        self.log_focal = nn.Parameter(torch.zeros(()))

    def _per_frame(self, table: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Corrections [F, 6] of frames: linear between the two knots around each."""
        u = frames.to(table.dtype) / self.knot_frames
        i0 = u.floor().long().clamp(0, len(table) - 2)
        w = (u - i0.to(u.dtype)).clamp(0.0, 1.0)[:, None]
        return table[i0] * (1 - w) + table[i0 + 1] * w

    def _correction(self, table: torch.Tensor, frames: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        delta = self._per_frame(table, frames) - table.mean(0)  # gauge: zero mean
        return axis_angle_to_matrix(delta[:, :3]), delta[:, 3:]

    def apply(self, which: str, frames: torch.Tensor, origins: torch.Tensor,
              dirs: torch.Tensor, ray_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct rays (head or body frame) of training frames ``frames`` [F];
        ``ray_frame`` [N] indexes ``frames`` per ray."""
        rot, trans = self._correction(self.head if which == "head" else self.body, frames)
        r, t = rot[ray_frame], trans[ray_frame]
        o = (r @ origins[..., None])[..., 0] + t
        d = (r @ dirs[..., None])[..., 0]
        return o, d

    @property
    def focal_scale(self) -> torch.Tensor:
        return self.log_focal.exp()

    def penalty(self) -> torch.Tensor:
        """Mean squared correction (radians^2 and metres^2 x 100: 1 cm ~ 0.1 rad)."""
        def sq(table: torch.Tensor) -> torch.Tensor:
            d = table - table.mean(0)
            return (d[:, :3] ** 2).sum(-1).mean() + 100.0 * (d[:, 3:] ** 2).sum(-1).mean()

        return sq(self.head) + sq(self.body)

    def corrected(self, which: str, poses: torch.Tensor) -> torch.Tensor:
        """Tracked head->camera (or body->camera) poses [N, 4, 4] of the training frames
        0..N-1 -> refined ones: camera <- head is composed with the head-frame
        correction's inverse (rays moved by C are the rays of pose @ C^-1)."""
        rot, trans = self._correction(self.head if which == "head" else self.body,
                                      torch.arange(len(poses), device=poses.device))
        inv = torch.zeros_like(poses)
        inv[:, :3, :3] = rot.transpose(1, 2).to(poses.dtype)
        inv[:, :3, 3] = -(rot.transpose(1, 2) @ trans[..., None])[..., 0].to(poses.dtype)
        inv[:, 3, 3] = 1
        return poses @ inv
