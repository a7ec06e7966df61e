"""Volume rendering with occupancy-guided band sampling.

Each ray is intersected with the head box, marched with ``n_steps`` cheap grid lookups,
and the network is evaluated only at occupied samples inside a band of ``band`` steps
starting at the first occupied one (see ``occupancy``). Landmark attention, the costly
part of the network, is evaluated once per ``attn_group`` consecutive band samples of a
ray (~1 cm of depth) and shared by them: deformation and appearance codes vary smoothly
along a ray through the surface, and this cuts attention cost 4x (``attn_group=1``
gives exact per-sample attention). Colour, alpha and depth are the
usual emission-absorption integrals; depth is the expected PLANAR depth (distance along
the camera's -Z axis, metres) because ray directions are scaled to camera z = -1
(``geometry.pixel_rays``), normalised by alpha so a half-transparent hair strand still
gets the depth of the hair, not half of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import ray_box
from .model import FaceNeRF
from .occupancy import OccupancyGrid


@dataclass(frozen=True)
class SampleOptions:
    n_steps: int = 128  # grid lookups per ray across the box
    band: int = 16  # network evaluations per ray, at most
    chunk: int = 131072  # samples per network call (memory bound)
    jitter: bool = False  # stratified offsets (training only)
    attn_group: int = 4  # consecutive band samples of a ray sharing one attention query


def render_rays(model: FaceNeRF, grid: OccupancyGrid, origins: torch.Tensor,
                dirs: torch.Tensor, frame_ids: torch.Tensor, key: torch.Tensor,
                val: torch.Tensor, opts: SampleOptions,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Render rays of several frames. ``frame_ids`` [N] index ``key``/``val`` rows.

    Returns rgb [N, 3] (premultiplied by alpha), alpha [N], depth [N] (0 where empty),
    ``offset_sq`` (mean squared deformation, metres^2, for regularisation) and
    ``n_samples`` (network evaluations, for the benchmark).
    """
    n = origins.shape[0]
    dev = origins.device
    rgb_out = torch.zeros(n, 3, device=dev)
    alpha_out = torch.zeros(n, device=dev)
    depth_out = torch.zeros(n, device=dev)
    near, far, hit = ray_box(origins, dirs, model.box_lo, model.box_hi)
    rays = hit.nonzero()[:, 0]
    zero = torch.zeros((), device=dev)
    if rays.numel() == 0:
        return {"rgb": rgb_out, "alpha": alpha_out, "depth": depth_out, "offset_sq": zero,
                "n_samples": zero}
    o, d, fid = origins[rays], dirs[rays], frame_ids[rays]
    nr, fr = near[rays], far[rays]
    m = opts.n_steps
    if opts.jitter:
        u = torch.rand(len(rays), m, device=dev, generator=generator)
    else:
        u = torch.full((len(rays), m), 0.5, device=dev)
    steps = (torch.arange(m, device=dev, dtype=torch.float32)[None] + u) / m
    t = nr[:, None] + (fr - nr)[:, None] * steps  # [R, M]
    pts = o[:, None] + t[..., None] * d[:, None]
    occ = grid.lookup(pts)
    first = torch.argmax(occ.int(), dim=1)
    idx = torch.arange(m, device=dev)[None]
    keep = occ & (idx >= first[:, None]) & (idx < first[:, None] + opts.band)
    ri, si = keep.nonzero(as_tuple=True)
    sigma = torch.zeros(len(rays), m, device=dev)
    colours = torch.zeros(len(ri), 3, device=dev)
    off_sq = zero
    sample_frames = fid[ri]
    for f in torch.unique(sample_frames).tolist():
        sel = (sample_frames == f).nonzero()[:, 0]
        for c in range(0, len(sel), opts.chunk):
            part = sel[c:c + opts.chunk]
            x = pts[ri[part], si[part]][None]
            anchors = members = None
            if opts.attn_group > 1:
                # Samples are row-major sorted (ray, step): consecutive groups of
                # ``attn_group`` steps on one ray share the attention of their first one.
                gid = ri[part] * m + (si[part] - first[ri[part]]) // opts.attn_group
                _, members = torch.unique_consecutive(gid, return_inverse=True)
                starts = torch.ones_like(gid, dtype=torch.bool)
                starts[1:] = gid[1:] != gid[:-1]
                anchors = starts.nonzero()[:, 0]
            s, rgb, off = model(x, key[f:f + 1], val[f:f + 1], anchors, members)
            sigma = sigma.index_put((ri[part], si[part]), s[0].float())
            colours = colours.index_put((part,), rgb[0].float())
            off_sq = off_sq + (off.float() ** 2).sum() / max(1, len(ri))
    delta_cm = ((fr - nr) / m * d.norm(dim=-1) * 100.0)[:, None]
    alpha = 1.0 - torch.exp(-sigma * delta_cm)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10],
                                    dim=1), dim=1)[:, :-1]
    w = alpha * trans
    acc = w.sum(dim=1)
    w_sel = w[ri, si]
    rgb = torch.zeros(len(rays), 3, device=dev).index_add(0, ri, w_sel[:, None] * colours)
    depth = (w * t).sum(dim=1) / acc.clamp_min(1e-6)
    depth = torch.where(acc > 1e-4, depth, torch.zeros_like(depth))
    rgb_out = rgb_out.index_put((rays,), rgb)
    alpha_out = alpha_out.index_put((rays,), acc)
    depth_out = depth_out.index_put((rays,), depth)
    return {"rgb": rgb_out, "alpha": alpha_out, "depth": depth_out, "offset_sq": off_sq,
            "n_samples": torch.tensor(float(len(ri)))}
