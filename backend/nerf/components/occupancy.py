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
    """A boolean [G, G, G] grid (index order x, y, z) over the box [lo, hi]; every tensor
    lives on ``lo``'s device (``to`` moves them all)."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor, res: int = 64,
                 occ: torch.Tensor | None = None) -> None:
        self.lo, self.hi, self.res = lo.float(), hi.float(), int(res)
        dev = self.lo.device
        self.occ = (torch.ones((res,) * 3, dtype=torch.bool, device=dev) if occ is None
                    else occ.bool().to(dev))
        self._last: torch.Tensor | None = None
        # The visual hull (``carve``): refreshes never occupy cells outside it, so space
        # no training camera saw stays empty instead of filling with untrained fog.
        self.hull: torch.Tensor | None = None

    @property
    def occ(self) -> torch.Tensor:
        return self._occ

    @occ.setter
    def occ(self, value: torch.Tensor) -> None:
        # Derived data (dilation, tight bounds) is cached per occupancy tensor.
        self._occ = value
        self._cache: dict[str, torch.Tensor] = {}

    def dilated(self, cells: int = 2) -> torch.Tensor:
        """Occupancy dilated by ``cells`` cells (cached per ``cells``)."""
        key = f"dilated{cells}"
        if key not in self._cache:
            v = self.occ.float()[None, None]
            k = 2 * cells + 1
            self._cache[key] = F.max_pool3d(v, k, stride=1, padding=cells)[0, 0] > 0
        return self._cache[key]

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Tight box around the occupied cells (cached): rays are marched only inside
        it, so rays that miss the subject cost nothing and steps get shorter."""
        if "bounds" not in self._cache:
            idx = self.occ.nonzero()
            if len(idx) == 0:
                lo, hi = self.lo, self.lo
            else:
                cell = (self.hi - self.lo) / self.res
                lo = self.lo + idx.min(0).values * cell
                hi = self.lo + (idx.max(0).values + 1) * cell
            self._cache["bounds"] = torch.stack([lo, hi])
        b = self._cache["bounds"]
        return b[0], b[1]

    def to(self, device: torch.device | str) -> OccupancyGrid:
        grid = OccupancyGrid(self.lo.to(device), self.hi.to(device), self.res,
                             self.occ.to(device))
        grid.hull = None if self.hull is None else self.hull.to(device)
        return grid

    @property
    def fraction(self) -> float:
        return float(self.occ.float().mean())

    def centres(self) -> torch.Tensor:
        g = (torch.arange(self.res, device=self.lo.device, dtype=torch.float32) + 0.5) / self.res
        gx, gy, gz = torch.meshgrid(g, g, g, indexing="ij")
        unit = torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)
        return self.lo + unit * (self.hi - self.lo)

    def lookup(self, pts: torch.Tensor, occ: torch.Tensor | None = None) -> torch.Tensor:
        """pts [..., 3] -> bool [...]: inside the box and in an occupied cell (of
        ``occ`` when given, e.g. the dilated grid)."""
        u = (pts - self.lo.to(pts.device)) / (self.hi - self.lo).to(pts.device)
        inside = ((u >= 0) & (u < 1)).all(dim=-1)
        idx = (u * self.res).long().clamp(0, self.res - 1)
        occ = (self.occ if occ is None else occ).to(pts.device)
        r = self.res
        flat = (idx[..., 0] * r + idx[..., 1]) * r + idx[..., 2]
        return inside & occ.reshape(-1)[flat]

    def ray_lookup(self, o: torch.Tensor, d: torch.Tensor, t: torch.Tensor,
                   occ: torch.Tensor | None = None) -> torch.Tensor:
        """Occupancy at o + t d: o, d [R, 3], t [R, N] -> bool [R, N].

        The marcher's hot loop, done in grid-index space with integer arithmetic (~3x
        fewer passes over [R, N, 3] data than ``lookup``). Points are assumed inside the
        box (rays are clipped to ``bounds`` first); strays are clamped to the border.
        """
        scale = self.res / (self.hi - self.lo).to(o.device)
        g0 = (o - self.lo.to(o.device)) * scale
        g = torch.addcmul(g0[:, None], t[..., None], (d * scale)[:, None])
        gi = g.to(torch.int32).clamp_(0, self.res - 1)
        r = self.res
        flat = (gi[..., 0] * r + gi[..., 1]) * r + gi[..., 2]
        occ = (self.occ if occ is None else occ).to(o.device)
        return occ.reshape(-1)[flat.long()]

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
        occ = (best > threshold).view(*(self.res,) * 3)
        if self._last is not None:
            occ, self._last = occ | self._last, occ
        else:
            self._last = occ
        occ = occ.view(1, 1, *(self.res,) * 3).float()
        occ = F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0
        if self.hull is not None:
            occ &= self.hull.to(occ.device)
        self.occ = occ

    def carve(self, masks: list[np.ndarray], ks: list[np.ndarray],
              head_to_camera: list[np.ndarray], fronts: list[np.ndarray] | None = None,
              margin: float = 0.0) -> None:
        """Visual hull: keep cells whose centre projects inside every (dilated) matte.

        With ``fronts`` (per view, a planar depth map of a surface known to be there, NaN
        where unknown), cells nearer to that view's camera than the surface minus
        ``margin`` metres are carved too: free space the mattes cannot see.

        A cell that projects outside an image (or behind the camera) is not carved by
        that view: the camera simply did not see it. A cell that NO view saw is carved:
        nothing was learnt there, and keeping it would leave untrained fog that shows up
        from new Blender cameras (and costs render time). The result is also kept as
        ``hull``, the limit of later refreshes.
        """
        pts = self.centres().cpu().double().numpy()
        keep = np.ones(len(pts), dtype=bool)
        seen_any = np.zeros(len(pts), dtype=bool)
        fronts = fronts if fronts is not None else [None] * len(masks)
        for mask, k, pose, known in zip(masks, ks, head_to_camera, fronts, strict=True):
            cam = pts @ pose[:3, :3].T + pose[:3, 3]
            z = -cam[:, 2]
            front = z > 1e-3
            x = np.floor(k[0, 2] + k[0, 0] * cam[:, 0] / np.where(front, z, 1)).astype(int)
            y = np.floor(k[1, 2] - k[1, 1] * cam[:, 1] / np.where(front, z, 1)).astype(int)
            h, w = mask.shape
            seen = front & (x >= 0) & (x < w) & (y >= 0) & (y < h)
            inside = np.ones(len(pts), dtype=bool)
            inside[seen] = mask[y[seen], x[seen]]
            if known is not None:
                surface = np.full(len(pts), np.nan)
                surface[seen] = known[y[seen], x[seen]]
                with np.errstate(invalid="ignore"):
                    inside &= ~(z < surface - margin)  # NaN (off the surface) keeps
            keep &= inside
            seen_any |= seen
        keep &= seen_any
        occ = torch.from_numpy(keep.reshape((self.res,) * 3)).float()[None, None]
        self.occ = (F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0).to(self.lo.device)
        self.hull = self.occ.clone()

    def clear_in_front_of(self, z: float) -> None:
        """Empty every cell whose centre lies further forward than ``z`` (the box's +Z,
        metres), in the grid and in its hull, so later refreshes keep them empty."""
        keep = (self.centres()[:, 2] <= z).view((self.res,) * 3).to(self.occ.device)
        self.occ = self.occ & keep
        if self.hull is not None:
            self.hull = self.hull & keep.to(self.hull.device)

    def state(self) -> dict:
        # Torch tensors, not numpy: weights-only torch.load accepts them (safe to load).
        def pack(v: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.packbits(v.cpu().numpy().ravel()))

        st = {"res": self.res, "occ": pack(self.occ)}
        if self.hull is not None:
            st["hull"] = pack(self.hull)
        return st

    @classmethod
    def from_state(cls, state: dict, lo: torch.Tensor, hi: torch.Tensor) -> OccupancyGrid:
        res = int(state["res"])

        def unpack(v: object) -> torch.Tensor:
            a = v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            bits = np.unpackbits(a.astype(np.uint8))[: res ** 3]
            return torch.from_numpy(bits.reshape((res,) * 3).astype(bool))

        grid = cls(lo, hi, res, unpack(state["occ"]))
        if "hull" in state:
            grid.hull = unpack(state["hull"])
        return grid
