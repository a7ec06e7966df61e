"""The torso field: neck and shoulders, which do not turn with the head.

Why a field of its own (as ER-NeRF and AD-NeRF train one): a bust rigid with the head
smears the shoulders into streaks whenever the head turns on a still body. This field
lives in the BODY frame - the head frame at rest (for training frames: the mean tracked
head pose; at render time the contract's body anchor, ``backend.subject.contract``) -
so the shoulders stay where the body is. The neck still bends with the head: the MLP
also sees the head's pose relative to the body (``pose_code``).

Small on purpose: a two-level tri-plane (the torso is smooth, low-detail cloth and skin)
and one hidden layer of 32. Its occupancy grid is separate from the head's
(``OccupancyGrid`` over ``TORSO_LO/HI``), carved from the mattes seen from the body frame.
Head and torso are rendered along each ray separately and composited front to back by
their depths (``components.volume_rendering.composite_layers``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .triplane import TriPlane

# Body frame (= rest head frame), metres: the neck from ~3.5 cm under the chin (the
# chin is at y -0.085 in d6's neutral, ~2 cm lower with the jaw open), shoulders to the
# frame's lower edge. It overlaps the head box only at the neck. A first build with the
# top at -0.06 let the torso learn the chin and lower lip, rigid with the body: a seam
# across the mouth and a chin that did not follow the jaw.
TORSO_LO = (-0.28, -0.45, -0.18)
TORSO_HI = (0.28, -0.12, 0.14)
POSE_DIM = 9


def pose_code(head_to_body: np.ndarray) -> np.ndarray:
    """[T, 4, 4] head pose relative to the body -> [T, 9]: the rotation's first two
    columns minus the identity's (a continuous rotation code) and the translation in
    decimetres. Zero at rest."""
    m = np.asarray(head_to_body, np.float64)
    rot = m[:, :3, :2] - np.eye(3)[:, :2]
    return np.concatenate([rot.reshape(len(m), 6), m[:, :3, 3] * 10.0], 1).astype(np.float32)


class TorsoField(nn.Module):
    def __init__(self, res: int = 128, channels: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.planes = TriPlane(((res, channels), (max(8, res // 4), channels)))
        self.mlp = nn.Sequential(nn.Linear(self.planes.out_dim + POSE_DIM, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 4))
        self.register_buffer("box_lo", torch.tensor(TORSO_LO))
        self.register_buffer("box_hi", torch.tensor(TORSO_HI))

    def forward(self, x: torch.Tensor, code: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [S, 3] body-frame points, code [S, 9] or [1, 9] -> sigma per cm [S], rgb [S, 3]."""
        xn = (x - self.box_lo) / (self.box_hi - self.box_lo) * 2.0 - 1.0
        feats = self.planes(xn)
        code = code.to(feats.dtype).expand(len(feats), -1)
        raw = self.mlp(torch.cat([feats, code], dim=1))
        sigma = F.softplus(raw[:, 0].float() - 1.0)
        return sigma, torch.sigmoid(raw[:, 1:].float())
