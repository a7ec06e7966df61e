"""Volume rendering of one field along rays, and compositing two layers.

``march_field`` walks each ray's band (``sampler``) in blocks of ``step_block`` steps;
after each block, rays whose transmittance fell below ``early_stop`` stop (the face is
opaque: most rays are done a few samples past its surface). Training uses one block
(``step_block >= band``) so the whole band gets gradients. The field is any function of
points and a frame (``FieldFn``): the head's and the torso's (``backend.nerf.reference``).

Colour, alpha and depth are the usual emission-absorption integrals; depth is the
expected PLANAR depth (distance along the camera's -Z axis, metres) because ray
directions are scaled to camera z = -1 (``geometry.pixel_rays``), normalised by alpha so
a half-transparent hair strand still gets the depth of the hair, not half of it.

Head and torso are marched separately, each through its own occupancy grid and in its
own frame, then composited per ray front to back by their depths (``composite_layers``):
the chin over the neck from the front, the shoulders over the hair's ends from behind.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .geometry import ray_box
from .occupancy import OccupancyGrid
from .sampler import SampleOptions, march_steps

FieldFn = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _field(fn: FieldFn, x: torch.Tensor, frame: torch.Tensor, n_frames: int, chunk: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Field at points x [S, 3] of frames ``frame`` [S] -> sigma [S], rgb [S, 3],
    offset^2 sum (scalar). ``fn(points [N, 3], f)`` evaluates frame f; points are
    grouped by frame (one lattice volume each)."""
    if len(x) == 0:
        return x.new_zeros(0), x.new_zeros(0, 3), x.new_zeros(())
    if n_frames == 1:
        groups = [(0, None)]
    else:
        groups = [(f, (frame == f).nonzero()[:, 0]) for f in torch.unique(frame).tolist()]
    sig_parts, rgb_parts, idx_parts = [], [], []
    off_sq = x.new_zeros(())
    for f, sel in groups:
        xs = x if sel is None else x[sel]
        for c in range(0, len(xs), chunk):
            s, rgb, osq = fn(xs[c:c + chunk], f)
            sig_parts.append(s)
            rgb_parts.append(rgb)
            off_sq = off_sq + osq
        if sel is not None:
            idx_parts.append(sel)
    sigma, rgb = torch.cat(sig_parts), torch.cat(rgb_parts)
    if idx_parts:  # back to the caller's order
        order = torch.cat(idx_parts)
        sigma = sigma.new_zeros(len(x)).index_put((order,), sigma)
        rgb = rgb.new_zeros(len(x), 3).index_put((order,), rgb)
    return sigma, rgb, off_sq


def composite_layers(head: dict[str, torch.Tensor], torso: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
    """Two premultiplied layers along the same rays, front to back by their depths
    (a layer with no alpha is behind everything)."""
    big = torch.finfo(head["depth"].dtype).max
    dh = torch.where(head["alpha"] > 1e-4, head["depth"], torch.full_like(head["depth"], big))
    dt = torch.where(torso["alpha"] > 1e-4, torso["depth"],
                     torch.full_like(torso["depth"], big))
    head_front = (dh <= dt)[:, None]
    front = {k: torch.where(head_front[:, 0] if head[k].ndim == 1 else head_front, head[k],
                            torso[k]) for k in ("rgb", "alpha", "depth")}
    back = {k: torch.where(head_front[:, 0] if head[k].ndim == 1 else head_front, torso[k],
                           head[k]) for k in ("rgb", "alpha", "depth")}
    rgb = front["rgb"] + (1.0 - front["alpha"][:, None]) * back["rgb"]
    alpha = front["alpha"] + (1.0 - front["alpha"]) * back["alpha"]
    # Depth of the nearest surface that is there (the front one unless it is empty).
    depth = torch.where(front["alpha"] > 1e-4, front["depth"], back["depth"])
    return {"rgb": rgb, "alpha": alpha, "depth": depth,
            "offset_sq": head["offset_sq"],
            "n_samples": head["n_samples"] + torso["n_samples"]}


def march_field(fn: FieldFn, n_frames: int, grid: OccupancyGrid, origins: torch.Tensor,
                dirs: torch.Tensor, frame_ids: torch.Tensor, opts: SampleOptions,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Volume-render one field (``fn``) through its occupancy grid.

    Returns rgb [N, 3] (premultiplied by alpha), alpha [N], depth [N] (0 where empty),
    ``offset_sq`` (mean squared deformation, metres^2, for regularisation) and
    ``n_samples`` (network evaluations, for the benchmark).
    """
    n, dev = origins.shape[0], origins.device
    rgb_out = torch.zeros(n, 3, device=dev)
    alpha_out = torch.zeros(n, device=dev)
    depth_out = torch.zeros(n, device=dev)
    lo, hi = grid.bounds()
    near, far, hit = ray_box(origins, dirs, lo, hi)
    rays = hit.nonzero()[:, 0]
    zero = torch.zeros((), device=dev)
    if rays.numel() == 0:
        return {"rgb": rgb_out, "alpha": alpha_out, "depth": depth_out, "offset_sq": zero,
                "n_samples": zero}
    o, d, fid = origins[rays], dirs[rays], frame_ids[rays]
    nr, fr = near[rays], far[rays]
    m = opts.n_steps
    t, occ = march_steps(grid, o, d, nr, fr, opts, generator)
    first = torch.argmax(occ.int(), dim=1)
    any_occ = occ.any(dim=1)
    delta_cm = (fr - nr) / m * d.norm(dim=-1) * 100.0
    r = len(rays)
    trans = torch.ones(r, device=dev)
    rgb = torch.zeros(r, 3, device=dev)
    acc = torch.zeros(r, device=dev)
    wt = torch.zeros(r, device=dev)
    off_sq, n_eval = zero, 0
    alive = any_occ.nonzero()[:, 0]
    block = max(1, min(opts.step_block, opts.band))
    for b0 in range(0, opts.band, block):
        if alive.numel() == 0:
            break
        blk = min(block, opts.band - b0)
        steps = first[alive, None] + b0 + torch.arange(blk, device=dev)[None]  # [A, blk]
        valid = steps < m
        steps = steps.clamp(max=m - 1)
        keep = occ[alive[:, None], steps] & valid
        ai, j = keep.nonzero(as_tuple=True)
        ray = alive[ai]
        ts = t[ray, steps[ai, j]]
        x = o[ray] + ts[:, None] * d[ray]
        s_val, c_val, osq = _field(fn, x, fid[ray], n_frames, opts.chunk)
        off_sq = off_sq + osq
        n_eval += len(ai)
        a = len(alive)
        sigma = torch.zeros(a, blk, device=dev).index_put((ai, j), s_val.float())
        colour = torch.zeros(a, blk, 3, device=dev).index_put((ai, j), c_val.float())
        tblk = t[alive[:, None], steps]
        alpha = 1.0 - torch.exp(-sigma * delta_cm[alive, None])
        local = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]),
                                         1.0 - alpha + 1e-10], dim=1), dim=1)
        w = trans[alive, None] * alpha * local[:, :-1]
        rgb = rgb.index_add(0, alive, (w[..., None] * colour).sum(1))
        acc = acc.index_add(0, alive, w.sum(1))
        wt = wt.index_add(0, alive, (w * tblk).sum(1))
        trans = trans.index_put((alive,), trans[alive] * local[:, -1])
        alive = alive[trans[alive].detach() > opts.early_stop]
    depth = torch.where(acc > 1e-4, wt / acc.clamp_min(1e-6), torch.zeros_like(acc))
    rgb_out = rgb_out.index_put((rays,), rgb)
    alpha_out = alpha_out.index_put((rays,), acc)
    depth_out = depth_out.index_put((rays,), depth)
    return {"rgb": rgb_out, "alpha": alpha_out, "depth": depth_out,
            "offset_sq": off_sq / max(1, n_eval), "n_samples": torch.tensor(float(n_eval))}
