"""Tri-plane features: three axis-aligned feature planes (XY, XZ, YZ) per resolution level,
bilinearly sampled and concatenated (EG3D-style), gathered with ``embedding_bag``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..components.gather import weighted_gather


class TriPlane(nn.Module):
    """Three feature planes per level; x in [-1, 1]^3 -> concatenated features.

    Multi-resolution: the coarse levels make early training fast and fill views the fine
    level saw rarely; the fine level holds the lip line, eyelids and hair strands.
    """

    def __init__(self, levels: tuple[tuple[int, int], ...]) -> None:
        """``levels``: (resolution, channels) per level, finest first."""
        super().__init__()
        self.levels = nn.ParameterList([
            nn.Parameter(torch.randn(3, c, r, r) * 0.1) for r, c in levels])
        self.out_dim = sum(3 * c for _, c in levels)

    PAIRS = ((0, 1), (0, 2), (1, 2))  # plane 0 = XY, 1 = XZ, 2 = YZ: (column, row) axes

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        """xn [S, 3] -> features [S, sum of 3 * C] (level-major, then plane, then channel).

        Bilinear lookups gathered from channels-last views of the planes with
        ``embedding_bag`` (4 weighted rows per lookup): the same result and gradients as
        ``grid_sample`` (align_corners=False, border padding; ``_grid_sample`` is the
        reference), but each corner is one contiguous C-float read instead of C
        scattered ones: ~4x faster for rendering, ~2x for a training step's forward +
        backward, where this lookup was the largest cost.
        """
        return torch.cat(self.levels_features(xn), dim=1)

    def levels_features(self, xn: torch.Tensor) -> list[torch.Tensor]:
        """Per level [S, 3 * C] (the three planes side by side), without a concat."""
        return [self._gather(xn, i) for i in range(len(self.levels))]

    def _grid_sample(self, xn: torch.Tensor) -> torch.Tensor:
        """Channel-major [out_dim, S] via grid_sample (the reference for ``forward``)."""
        cols = torch.tensor([0, 1, 0, 2, 1, 2], device=xn.device)
        grid = xn.index_select(1, cols).view(-1, 3, 2).transpose(0, 1)[:, :, None]
        grid = grid.to(self.levels[0].dtype)  # [3, S, 1, 2]: (u, v) = (column, row)
        feats = [F.grid_sample(planes, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)  # [3, C, S, 1]
                 for planes in self.levels]
        return torch.cat([f.reshape(-1, xn.shape[0]) for f in feats])

    def _table(self, level: int) -> torch.Tensor:
        """[3 * R * R, C] channels-last view of a level. With autograd it is rebuilt each
        call (gradients flow to the planes); without, cached until the weights change."""
        planes = self.levels[level]
        if torch.is_grad_enabled() and planes.requires_grad:
            return planes.permute(0, 2, 3, 1).reshape(-1, planes.shape[1])
        key = (planes.data_ptr(), planes._version, planes.dtype)
        cache = self.__dict__.setdefault("_tables", {})
        if cache.get(level, (None,))[0] != key:
            cache[level] = (key, planes.detach().permute(0, 2, 3, 1).reshape(
                -1, planes.shape[1]).contiguous())
        return cache[level][1]

    def _gather(self, xn: torch.Tensor, level: int) -> torch.Tensor:
        """[S, 3 * C]: one ``embedding_bag`` call with a bag of 4 corners per (sample,
        plane); the output rows of a sample's three planes are adjacent, so the
        [S * 3, C] result IS the per-sample concatenation (a free view)."""
        table = self._table(level)
        c = table.shape[1]
        r = self.levels[level].shape[-1]
        pix = (((xn + 1.0) * r - 1.0) * 0.5).clamp(0.0, r - 1.0).to(table.dtype)
        i0f = pix.detach().floor()
        w1 = pix - i0f
        i0 = i0f.long()
        i1 = (i0 + 1).clamp(max=r - 1)
        ca, cb = self._cols(xn.device)  # column / row axis of each plane
        base = torch.arange(3, device=xn.device) * (r * r)
        row0 = base + i0[:, cb] * r
        row1 = base + i1[:, cb] * r
        col0, col1 = i0[:, ca], i1[:, ca]
        idx = torch.stack([row0 + col0, row0 + col1, row1 + col0, row1 + col1], -1)
        wa, wb = w1[:, ca], w1[:, cb]
        wts = torch.stack([(1 - wb) * (1 - wa), (1 - wb) * wa, wb * (1 - wa), wb * wa], -1)
        out = weighted_gather(table, idx.view(-1, 4), wts.view(-1, 4))
        return out.view(-1, 3 * c)

    def _cols(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.tensor([p[0] for p in self.PAIRS], device=device)
        b = torch.tensor([p[1] for p in self.PAIRS], device=device)
        return a, b
