"""Occupancy grid over the head box: where the field can have density.

Why: most of the box is empty air. A ray is marched cheaply through this grid (integer
lookups, no network) and the network is evaluated only at occupied samples, and only in
a thin band after the first occupied one (the bust is opaque: what lies behind its
front surface cannot be seen). That is the "fast sampler" - it turns ~128 candidate
samples per ray into ~16 network evaluations, on rays that hit the subject at all.

The grid starts as the visual hull of the training mattes (``carve``) and is refreshed
from the field's own density during training (``refresh``), dilated by one cell so the
deformation offsets and mouth motion never step outside it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


class OccupancyGrid:
    """A boolean [G, G, G] grid (index order x, y, z) over the box [lo, hi]."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor, res: int = 64,
                 occ: torch.Tensor | None = None) -> None:
        self.lo, self.hi, self.res = lo.float(), hi.float(), int(res)
        self.occ = (torch.ones((res,) * 3, dtype=torch.bool) if occ is None
                    else occ.bool().cpu())
        self._last: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> OccupancyGrid:
        return OccupancyGrid(self.lo.to(device), self.hi.to(device), self.res,
                             self.occ.to(device))

    @property
    def fraction(self) -> float:
        return float(self.occ.float().mean())

    def centres(self) -> torch.Tensor:
        g = (torch.arange(self.res, device=self.lo.device, dtype=torch.float32) + 0.5) / self.res
        gx, gy, gz = torch.meshgrid(g, g, g, indexing="ij")
        unit = torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)
        return self.lo + unit * (self.hi - self.lo)

    def lookup(self, pts: torch.Tensor) -> torch.Tensor:
        """pts [..., 3] -> bool [...]: inside the box and in an occupied cell."""
        u = (pts - self.lo) / (self.hi - self.lo)
        inside = ((u >= 0) & (u < 1)).all(dim=-1)
        idx = (u * self.res).long().clamp(0, self.res - 1)
        occ = self.occ.to(pts.device)
        return inside & occ[idx[..., 0], idx[..., 1], idx[..., 2]]

    def refresh(self, density: Callable[[torch.Tensor], torch.Tensor], threshold: float,
                chunk: int = 65536, seed: int = 0) -> None:
        """Re-derive occupancy from ``density(points [N, 3]) -> [N]`` (per cm).

        Each cell is probed at one jittered point (a fresh jitter every refresh, so thin
        hair strands between centres are found over time); cells stay occupied while
        ANY of the last two probes saw density, then the grid is dilated by one cell.
        """
        gen = torch.Generator(device="cpu").manual_seed(seed)
        cell = (self.hi - self.lo) / self.res
        centres = self.centres()
        jitter = (torch.rand(centres.shape, generator=gen) - 0.5).to(centres.device) * cell
        best = torch.zeros(len(centres), device=centres.device)
        with torch.no_grad():
            for pts in (centres + jitter,):
                for i in range(0, len(pts), chunk):
                    d = density(pts[i:i + chunk]).float()
                    best[i:i + chunk] = torch.maximum(best[i:i + chunk], d)
        occ = (best > threshold).view(*(self.res,) * 3).cpu()
        if self._last is not None:
            occ, self._last = occ | self._last, occ
        else:
            self._last = occ
        occ = occ.view(1, 1, *(self.res,) * 3).float()
        occ = F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0
        self.occ = occ.cpu()

    def carve(self, masks: list[np.ndarray], ks: list[np.ndarray],
              head_to_camera: list[np.ndarray]) -> None:
        """Visual hull: keep cells whose centre projects inside every (dilated) matte.

        A cell that projects outside an image (or behind the camera) is not carved by
        that view: the camera simply did not see it.
        """
        pts = self.centres().cpu().double().numpy()
        keep = np.ones(len(pts), dtype=bool)
        for mask, k, pose in zip(masks, ks, head_to_camera, strict=True):
            cam = pts @ pose[:3, :3].T + pose[:3, 3]
            z = -cam[:, 2]
            front = z > 1e-3
            x = np.floor(k[0, 2] + k[0, 0] * cam[:, 0] / np.where(front, z, 1)).astype(int)
            y = np.floor(k[1, 2] - k[1, 1] * cam[:, 1] / np.where(front, z, 1)).astype(int)
            h, w = mask.shape
            seen = front & (x >= 0) & (x < w) & (y >= 0) & (y < h)
            inside = np.ones(len(pts), dtype=bool)
            inside[seen] = mask[y[seen], x[seen]]
            keep &= inside
        occ = torch.from_numpy(keep.reshape((self.res,) * 3)).float()[None, None]
        self.occ = (F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0)

    def state(self) -> dict:
        # A torch tensor, not numpy: weights-only torch.load accepts it (safe to load).
        bits = np.packbits(self.occ.cpu().numpy().ravel())
        return {"res": self.res, "occ": torch.from_numpy(bits)}

    @classmethod
    def from_state(cls, state: dict, lo: torch.Tensor, hi: torch.Tensor) -> OccupancyGrid:
        res = int(state["res"])
        occ = state["occ"]
        occ = occ.cpu().numpy() if isinstance(occ, torch.Tensor) else np.asarray(occ)
        bits = np.unpackbits(occ.astype(np.uint8))[: res ** 3]
        return cls(lo, hi, res, torch.from_numpy(bits.reshape((res,) * 3).astype(bool)))
