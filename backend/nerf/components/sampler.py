"""The sampler: where along each ray the field is evaluated.

Each ray is intersected with the tight box around the occupied cells and marched with
``n_steps`` cheap grid lookups (integer lookups in the ``occupancy`` grid, no network);
the field is then evaluated only at occupied samples inside a band of ``band`` steps
starting at the first occupied one. ``SampleOptions`` holds those numbers and the block
size and threshold of early ray termination (``volume_rendering.march_field``). Training jitters
the step depths (stratified); rendering takes each step's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .occupancy import OccupancyGrid

COARSE = 4  # marching steps per coarse occupancy test


@dataclass(frozen=True)
class SampleOptions:
    # Steps and band are what subjects are trained with (``train.TRAIN_MARCH``): the band
    # is a depth budget the field learns to put its surface in, so rendering must use
    # the same one (a shorter band renders the fog in front of the face, not the face).
    n_steps: int = 96  # grid lookups per ray across the occupied box
    band: int = 24  # network evaluations per ray, at most
    chunk: int = 262144  # samples per network call (memory bound)
    jitter: bool = False  # stratified offsets (training only)
    step_block: int = 4  # band steps per pass between early-termination checks
    early_stop: float = 1e-3  # a ray stops once its transmittance is below this


def march_steps(grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor, nr: torch.Tensor,
           fr: torch.Tensor, opts: SampleOptions, generator: torch.Generator | None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Step depths t [R, M] and occupancy [R, M] (integer grid lookups only).

    Two levels: blocks of ``COARSE`` steps are first tested at their centre against the
    occupancy dilated by enough cells to cover the whole block, and only the steps of
    blocks that pass are looked up one by one. Exact (the dilation is conservative), and
    it skips the empty air in front of and around the subject, most of each ray.
    """
    dev, m = o.device, opts.n_steps
    if opts.jitter:
        u = torch.rand(len(o), m, device=dev, generator=generator)
    else:
        u = torch.full((len(o), m), 0.5, device=dev)
    t = nr[:, None] + (fr - nr)[:, None] * ((torch.arange(m, device=dev) + u) / m)
    k = COARSE
    if len(o) == 0 or m % k:
        return t, grid.ray_lookup(o, d, t)
    step = float(((fr - nr) / m * d.norm(dim=-1)).max().detach())
    cell = float(((grid.hi - grid.lo) / grid.res).min())
    cells = math.ceil((k / 2 + 0.5) * step / cell)  # block half-length + rounding slack
    if cells > 3:  # steps too long for the coarse level to pay off
        return t, grid.ray_lookup(o, d, t)
    centre = nr[:, None] + (fr - nr)[:, None] * (
        (torch.arange(m // k, device=dev) * k + k / 2) / m)
    coarse = grid.ray_lookup(o, d, centre, grid.dilated(cells))
    rb, kb = coarse.nonzero(as_tuple=True)
    steps = kb[:, None] * k + torch.arange(k, device=dev)[None]  # [B, K]
    occ = torch.zeros(len(o), m, dtype=torch.bool, device=dev)
    if len(rb):
        fine = grid.ray_lookup(o[rb], d[rb], t[rb[:, None], steps])
        occ[rb[:, None], steps] = fine
    return t, occ
