"""The attention lattice: where a frame's landmark attention is evaluated.

Why a lattice: the deformation offset and appearance code that landmark attention gives
vary smoothly over a few millimetres, while a 256^2 frame needs ~10^5-10^6 field samples.
Evaluating attention at every sample made it 95% of the render time. Instead it runs
once per frame at the points of a regular lattice over the FACE box (the part that moves
with expression: jaw, lips, cheeks, eyes, brows; hair and shoulders are rigid) and the
field trilinearly interpolates the result at each sample (``grid_sample``, differentiable,
so training learns the lattice values through the interpolation).

Only lattice points next to occupied space are queried (``lattice_mask``): the others can
never be read by a sample that the sampler evaluates, so they stay zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .gather import weighted_gather
from .occupancy import OccupancyGrid

# Canonical head frame, metres: the face (x +-0.078, chin -0.094 to forehead 0.083, z
# -0.024..0.076) plus room for a dropped jaw, the cheeks' sides and the offsets.
ATTN_LO = (-0.11, -0.15, -0.07)
ATTN_HI = (0.11, 0.12, 0.13)


def lattice_shape(spacing: float) -> tuple[int, int, int]:
    """(nx, ny, nz) points so neighbours are at most ``spacing`` metres apart."""
    return tuple(math.ceil((h - lo) / spacing) + 1  # type: ignore[return-value]
                 for lo, h in zip(ATTN_LO, ATTN_HI, strict=True))


def lattice_points(shape: tuple[int, int, int]) -> torch.Tensor:
    """[nz * ny * nx, 3] (x, y, z) points, z-major: row-major order of a [Z, Y, X] volume,
    the layout ``grid_sample`` expects for a [N, C, D=Z, H=Y, W=X] input."""
    axes = [torch.linspace(lo, hi, n) for lo, hi, n in zip(ATTN_LO, ATTN_HI, shape,
                                                           strict=True)]
    gz, gy, gx = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)


def lattice_mask(grid: OccupancyGrid, points: torch.Tensor,
                 shape: tuple[int, int, int]) -> torch.Tensor:
    """bool [P]: lattice points whose value a sample in an occupied cell can read.

    A sample reads the 8 lattice points around it. The one nearest to it is at most half
    a lattice step away per axis, so it lies in the occupancy dilated by enough cells to
    cover half a step; the other 7 are one lattice step from that one. So: dilated
    occupancy at each point, then dilate the result by one lattice step. Then masking
    changes nothing at any occupied sample (tested).
    """
    spacing = [(h - lo) / (n - 1) for lo, h, n in zip(ATTN_LO, ATTN_HI, shape, strict=True)]
    cell = ((grid.hi - grid.lo) / grid.res).tolist()
    cells = max(math.ceil(0.5 * s / c) for s, c in zip(spacing, cell, strict=True))
    occ = grid.dilated(cells).to(points.device)
    near = grid.lookup(points, occ)
    vol = near.view(1, 1, shape[2], shape[1], shape[0]).float()
    return (F.max_pool3d(vol, 3, stride=1, padding=1) > 0).reshape(-1)


def sample_lattice(table: torch.Tensor, x: torch.Tensor,
                   shape: tuple[int, int, int]) -> torch.Tensor:
    """Trilinear lookup. ``table`` [F, P, C] (lattice points in ``lattice_points``
    order, channels last), x [F, S, 3] metres -> [F * S, C]; zero outside the lattice
    box (fading over one lattice step).

    Gathered with ``embedding_bag`` (8 weighted rows per sample, one call for all frames):
    each corner is one contiguous C-float read. Same values and gradients (w.r.t. the
    table) as ``grid_sample(align_corners=True, padding_mode="zeros")`` on the
    [F, C, Z, Y, X] volume (``sample_lattice_reference``), ~3x faster on CPU.
    """
    f, s, _ = x.shape
    p, c = table.shape[1:]
    dims = torch.tensor(shape, device=x.device)  # (nx, ny, nz)
    lo = torch.tensor(ATTN_LO, device=x.device, dtype=x.dtype)
    hi = torch.tensor(ATTN_HI, device=x.device, dtype=x.dtype)
    g = ((x.reshape(-1, 3) - lo) / (hi - lo) * (dims - 1)).to(table.dtype)  # [FS, 3]
    i0f = g.floor()
    w1 = g - i0f
    i0 = i0f.long()
    corner = torch.tensor([[dx, dy, dz] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)],
                          device=x.device)  # [8, 3]
    ic = i0[:, None] + corner  # [FS, 8, 3]
    valid = ((ic >= 0) & (ic < dims)).all(-1)
    ic = torch.minimum(ic.clamp_min(0), dims - 1)
    flat = (ic[..., 2] * shape[1] + ic[..., 1]) * shape[0] + ic[..., 0]
    frame = torch.arange(f, device=x.device).repeat_interleave(s)
    flat = flat + (frame * p)[:, None]
    w = torch.where(corner.bool(), w1[:, None], 1.0 - w1[:, None]).prod(-1)  # [FS, 8]
    w = w * valid
    return weighted_gather(table.reshape(-1, c), flat, w)


def sample_lattice_reference(table: torch.Tensor, x: torch.Tensor,
                             shape: tuple[int, int, int]) -> torch.Tensor:
    """``sample_lattice`` with ``grid_sample`` (the definition; used by tests)."""
    f, s, _ = x.shape
    c = table.shape[-1]
    nx, ny, nz = shape
    volume = table.transpose(1, 2).reshape(f, c, nz, ny, nx)
    lo = torch.tensor(ATTN_LO, device=x.device, dtype=x.dtype)
    hi = torch.tensor(ATTN_HI, device=x.device, dtype=x.dtype)
    g = ((x - lo) / (hi - lo) * 2.0 - 1.0).to(volume.dtype)
    out = F.grid_sample(volume, g.view(f, s, 1, 1, 3), mode="bilinear",
                        padding_mode="zeros", align_corners=True)  # [F, C, S, 1, 1]
    return out.view(f, c, s).transpose(1, 2).reshape(f * s, c)
