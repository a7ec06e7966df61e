"""Mesh-guided deformation: warp sample points from the posed face to the canonical one
with the displacement field of the 478-point face mesh (RigNeRF / NeRFace style).

Why: a field conditioned only on learned codes can show only the expressions its footage
showed (the default subject could not smile: its performer never did). The face mesh
says where every part of the face went this frame; moving each sample point by the
displacement of the mesh near it (posed -> canonical) makes the canonical field render
a smile, a frown or an open jaw that the footage never showed, following the geometry.
What geometry cannot explain (teeth, tongue, wrinkles) is left to the learned
landmark-attention residual (``model.LandmarkAttention``).

The displacement at a point x of the posed (observed) space:

    d(x) = f(x) * sum_k w_k(x) (c_k - v_k)

over the ``K`` mesh vertices nearest to x (``c`` canonical positions: the subject's
mean face; ``v`` this frame's positions): skinning weights ``w_k`` are a softmax of
``-|x - v_k|^2 / (2 sigma^2)`` (a smooth partition of unity near the surface, sharper
than the vertex spacing so upper and lower lip keep their own motion) and
``f(x) = exp(-d_min^2 / (2 r^2))`` fades the warp out with the distance ``d_min`` to the
nearest vertex (hair, ears, the back of the head and the torso stay rigid).

Cost: evaluated once per frame on a lattice (``LATTICE_SPACING``, over the face box
``lattice.ATTN_LO/HI``) and trilinearly interpolated per sample, like the attention
lattice. The ``K`` candidate vertices of each lattice point are chosen once, by
distance to the canonical face (so a frame costs P x K work, not P x 478); weights use
the frame's own vertex positions.
"""

from __future__ import annotations

import torch
from torch import nn

from ..components.lattice import lattice_points, lattice_shape, sample_lattice

LATTICE_SPACING = 0.004  # metres: eyelids and lips are ~1 cm tall
N_CANDIDATES = 12
SIGMA = 0.003  # skinning width, metres (mesh spacing around lips and eyes: 2-5 mm)
FALLOFF = 0.015  # warp fades over ~1.5 cm from the surface


class MeshWarp(nn.Module):
    """The per-frame posed -> canonical displacement of the face mesh."""

    def __init__(self, canonical: torch.Tensor, spacing: float = LATTICE_SPACING,
                 k: int = N_CANDIDATES) -> None:
        super().__init__()
        self.shape = lattice_shape(spacing)
        pts = lattice_points(self.shape)
        self.register_buffer("points", pts, persistent=False)
        self.register_buffer("canonical", canonical.float().clone())
        self.k = k
        self.register_buffer("candidates", self._candidates(pts, canonical.float()),
                             persistent=False)
        # The canonical face is saved; the candidates derived from it are not.
        self.register_load_state_dict_post_hook(lambda module, _keys: module.load_canonical())

    def _candidates(self, pts: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(pts), 16384):
            d = torch.cdist(pts[i:i + 16384], verts)
            out.append(d.topk(self.k, dim=1, largest=False).indices)
        return torch.cat(out)

    def set_canonical(self, canonical: torch.Tensor) -> None:
        """The subject's canonical face (its training mean); re-chooses candidates."""
        self.canonical.copy_(canonical.to(self.canonical))
        self.load_canonical()

    @torch.no_grad()
    def lattice(self, verts: torch.Tensor, index: torch.Tensor | None = None
                ) -> torch.Tensor:
        """verts [F, 478, 3] this frame's face (metres, head frame) -> displacement
        lattice [F, P, 3] (posed -> canonical, channels last, ``lattice_points`` order).
        With ``index`` only those lattice points are computed (the rest stay zero: no
        occupied sample can read them)."""
        cand = self.candidates if index is None else self.candidates[index]  # [n, K]
        pts = self.points if index is None else self.points[index]
        v = verts[:, cand]  # [F, n, K, 3]
        c = self.canonical[cand]  # [n, K, 3]
        d2 = ((pts[None, :, None] - v) ** 2).sum(-1)  # [F, n, K]
        w = torch.softmax(-d2 / (2 * SIGMA ** 2), dim=-1)
        fade = torch.exp(-d2.min(-1).values / (2 * FALLOFF ** 2))  # [F, n]
        disp = (w[..., None] * (c[None] - v)).sum(-2) * fade[..., None]
        if index is None:
            return disp
        out = disp.new_zeros(verts.shape[0], len(self.points), 3)
        return out.index_copy(1, index, disp)

    def sample(self, table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Displacement at x [F, S, 3] -> [F * S, 3] (zero outside the lattice box)."""
        return sample_lattice(table, x, self.shape)

    def load_canonical(self) -> None:
        """After ``load_state_dict`` restored the canonical face: candidates follow it."""
        self.candidates = self._candidates(self.points, self.canonical)
