"""The fused render engine: one frame's rays through the head and torso fields with static
shapes and a handful of large operations, instead of the reference path's per-block loop.

Why: the reference (``render.march_field``) walks each ray's sample band in blocks of
``step_block`` steps, compacts alive rays and occupied samples with boolean masks at
every block, and looks the tri-planes up level by level: thousands of small torch calls
per frame, so a CPU frame and even more a GPU frame cost launch overhead, not arithmetic.
Here, per field and frame:

1. rays that hit the occupancy grid's tight box are compacted ONCE (one ``nonzero``);
2. every step of every such ray is looked up in the grid in one pass ([R, n_steps]:
   the same occupancy the reference's two-level march finds, its coarse test being
   conservative);
3. the band of ``band`` steps after the first occupied one is a fixed [R, band] block;
   its occupied samples are compacted ONCE and the field runs on all of them in one
   call: the attention lattice and ALL tri-plane levels are one ``embedding_bag`` each
   (the levels' planes side by side in one channels-last table, channels padded to the
   widest level, the MLP's first layer padded with zero columns to match);
4. compositing is vectorised over the whole band: the exclusive transmittance is one
   ``cumprod``, and the reference's early termination (a ray stops after a block once
   its transmittance is below ``early_stop``) is reproduced exactly as a mask on the
   blocks that follow, so both paths composite the same samples.

The eager reference stays the definition (``render``): on the same weights the fused
path matches it within one uint8 level (tested). Frames are deterministic (no atomics:
compaction indices are unique, ``index_copy`` scatters).

``torch.compile`` (inductor: C++/OpenMP on CPU, Triton on CUDA) compiles the field and
the compositing (``Engine(compile=True)``): the tri-plane gather then becomes a plain
indexed read fused with its weighted sum. Compiled shapes are padded to buckets so few
graphs are made. Compilation that fails (no C++ compiler, no Triton) falls back to the
fused eager path with one log line. Subjects with the mesh warp, and jittered (training)
options, render through the reference path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .geometry import ray_box
from .lattice import ATTN_HI, ATTN_LO
from .model import FaceNeRF, FrameCondition
from .occupancy import OccupancyGrid
from .render import SampleOptions

log = logging.getLogger(__name__)

#: ``FACECAST_ENGINE``: ``fused`` (default), ``compiled`` (fused + torch.compile) or
#: ``eager`` (the reference path).
ENGINE_ENV = "FACECAST_ENGINE"
ENGINES = ("eager", "fused", "compiled")
BUCKET = 8192  # compiled shapes are padded to a multiple of this (few graphs)
PAIRS = ((0, 1), (0, 2), (1, 2))  # as ``TriPlane.PAIRS``: (column, row) axes per plane


def engine_choice(name: str | None = None) -> str:
    """The engine to use: ``name``, else ``$FACECAST_ENGINE``, else ``fused``."""
    choice = (name or os.environ.get(ENGINE_ENV) or "fused").strip().lower()
    if choice not in ENGINES:
        log.warning("%s=%r is not one of %s; using the fused engine", ENGINE_ENV, choice,
                    "/".join(ENGINES))
        return "fused"
    return choice


# --- the field's parts as plain tensor functions (compile-friendly) -------------------------

@dataclass
class Planes:
    """All levels' planes of one ``TriPlane`` as one channels-last table, channels padded
    to the widest level: rows ``base[p] + row * res[p] + col`` for plane p (level-major,
    then XY, XZ, YZ)."""

    table: torch.Tensor  # [sum 3 R^2, C]
    cols: torch.Tensor  # [2 P] (column, row) axis of each plane, interleaved
    res: torch.Tensor  # [P, 1] float
    res_i: torch.Tensor  # [P] long
    base: torch.Tensor  # [P] long
    keep: torch.Tensor  # [P * C] bool: which padded channels are real

    @classmethod
    def of(cls, levels: list[torch.Tensor]) -> Planes:
        c = max(p.shape[1] for p in levels)
        dev = levels[0].device
        parts, res, base, keep, row = [], [], [], [], 0
        for planes in levels:
            ch, r = planes.shape[1], planes.shape[-1]
            t = planes.permute(0, 2, 3, 1)  # [3, R, R, C]
            if ch < c:
                t = F.pad(t, (0, c - ch))
            parts.append(t.reshape(-1, c))
            for p in range(3):
                res.append(r)
                base.append(row + p * r * r)
                keep += [True] * ch + [False] * (c - ch)
            row += 3 * r * r
        cols = [a for pair in PAIRS for a in pair] * len(levels)
        return cls(torch.cat(parts), torch.tensor(cols, device=dev),
                   torch.tensor(res, device=dev, dtype=levels[0].dtype)[:, None],
                   torch.tensor(res, device=dev), torch.tensor(base, device=dev),
                   torch.tensor(keep, device=dev))


def gather_rows(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] * table[idx[n, k]] -> [N, C]. Eager: ``embedding_bag`` (each corner
    one contiguous read); compiled: an indexed read that inductor fuses with the sum
    (and whose gradient is a scatter-add, no sort)."""
    if torch.compiler.is_compiling():
        return (table[idx] * w[..., None]).sum(-2)
    return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")


def plane_features(pl: Planes, xn: torch.Tensor) -> torch.Tensor:
    """xn [S, 3] in [-1, 1] -> [S, P * C] bilinear features of every plane of every level
    (align_corners=False, border clamp: ``TriPlane``'s lookup)."""
    s = xn.shape[0]
    uv = xn.index_select(1, pl.cols).view(s, -1, 2).to(pl.table.dtype)  # [S, P, 2]
    pix = (((uv + 1.0) * pl.res[None] - 1.0) * 0.5).clamp_min(0.0).minimum(
        pl.res[None] - 1.0)
    i0f = pix.floor()
    w1 = pix - i0f
    i0 = i0f.long()
    i1 = torch.minimum(i0 + 1, (pl.res_i - 1)[None, :, None])
    r = pl.res_i[None]
    row0 = pl.base[None] + i0[..., 1] * r
    row1 = pl.base[None] + i1[..., 1] * r
    c0, c1 = i0[..., 0], i1[..., 0]
    idx = torch.stack([row0 + c0, row0 + c1, row1 + c0, row1 + c1], -1)
    wa, wb = w1[..., 0], w1[..., 1]
    w = torch.stack([(1 - wb) * (1 - wa), (1 - wb) * wa, wb * (1 - wa), wb * wa], -1)
    return gather_rows(pl.table, idx.view(-1, 4), w.view(-1, 4)).view(s, -1)


@dataclass
class Lattice:
    """The attention lattice's constants (``lattice.sample_lattice``)."""

    lo: torch.Tensor  # [3]
    span: torch.Tensor  # [3] hi - lo
    dims: torch.Tensor  # [3] long (nx, ny, nz)
    dims1: torch.Tensor  # [3] float dims - 1
    corner: torch.Tensor  # [8, 3] long
    stride: torch.Tensor  # [3] long

    @classmethod
    def of(cls, shape: tuple[int, int, int], device: torch.device) -> Lattice:
        lo = torch.tensor(ATTN_LO, device=device)
        hi = torch.tensor(ATTN_HI, device=device)
        dims = torch.tensor(shape, device=device)
        corner = torch.tensor([[dx, dy, dz] for dz in (0, 1) for dy in (0, 1)
                               for dx in (0, 1)], device=device)
        stride = torch.tensor([1, shape[0], shape[0] * shape[1]], device=device)
        return cls(lo, hi - lo, dims, (dims - 1).float(), corner, stride)


def lattice_values(lat: Lattice, table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of one frame's lattice ``table`` [P, C] at x [S, 3] -> [S, C],
    zero outside the lattice (``lattice.sample_lattice``)."""
    g = ((x - lat.lo) / lat.span * lat.dims1).to(table.dtype)
    i0f = g.floor()
    w1 = g - i0f
    ic = i0f.long()[:, None] + lat.corner  # [S, 8, 3]
    valid = ((ic >= 0) & (ic < lat.dims)).all(-1)
    ic = torch.minimum(ic.clamp_min(0), lat.dims - 1)
    flat = (ic * lat.stride).sum(-1)
    w = torch.where(lat.corner.bool(), w1[:, None], 1.0 - w1[:, None]).prod(-1) * valid
    return gather_rows(table, flat, w)


@dataclass
class HeadField:
    """The head field's weights laid out for ``head_field``."""

    planes: Planes
    lattice: Lattice
    w_feat: torch.Tensor  # [P * C, H] first layer on the padded plane features
    w_app: torch.Tensor  # [A, H]
    b0: torch.Tensor
    hidden: list[tuple[torch.Tensor, torch.Tensor]]  # further (W^T, b) layers, last -> 4
    box_lo: torch.Tensor
    box_span: torch.Tensor
    fade: float

    @classmethod
    def of(cls, model: FaceNeRF) -> HeadField:
        planes = Planes.of(list(model.planes.levels))
        first = model.mlp[0]
        n_feat = model.planes.out_dim
        w = first.weight.t()  # [in, H]
        w_feat = w.new_zeros(len(planes.keep), w.shape[1])
        w_feat[planes.keep] = w[:n_feat]
        linears = [m for m in model.mlp if isinstance(m, torch.nn.Linear)][1:]
        return cls(planes, Lattice.of(model.lattice_shape, w.device), w_feat, w[n_feat:],
                   first.bias, [(m.weight.t(), m.bias) for m in linears], model.box_lo,
                   model.box_hi - model.box_lo, float(model.cfg.fade))


def mlp_out(h: torch.Tensor, hidden: list[tuple[torch.Tensor, torch.Tensor]]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """SiLU hidden layers then the (sigma, rgb) head: raw [S, 4] -> sigma (before the
    fade) and rgb."""
    for w, b in hidden:
        h = torch.addmm(b, F.silu(h), w)
    return F.softplus(h[:, 0].float() - 1.0), torch.sigmoid(h[:, 1:].float())


def head_field(hf: HeadField, attn: torch.Tensor, x: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Head field at x [S, 3] (head frame) for one frame's attention lattice ``attn``
    [P, 3 + A] -> sigma per cm [S], rgb [S, 3] (``FaceNeRF.forward`` without the warp)."""
    c = lattice_values(hf.lattice, attn, x)
    xn = (x + c[:, :3] - hf.box_lo) / hf.box_span * 2.0 - 1.0
    feats = plane_features(hf.planes, xn)
    h = torch.addmm(torch.addmm(hf.b0, c[:, 3:], hf.w_app), feats.to(hf.w_feat.dtype),
                    hf.w_feat)
    sigma, rgb = mlp_out(h, hf.hidden)
    fade = ((x[:, 1] - hf.box_lo[1]) / hf.fade).clamp(0.0, 1.0)
    return sigma * fade, rgb


@dataclass
class TorsoFieldW:
    """The torso field's weights laid out for ``torso_field``."""

    planes: Planes
    w_feat: torch.Tensor
    w_code: torch.Tensor  # [9, H]
    b0: torch.Tensor
    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    box_lo: torch.Tensor
    box_span: torch.Tensor

    @classmethod
    def of(cls, torso: torch.nn.Module) -> TorsoFieldW:
        planes = Planes.of(list(torso.planes.levels))
        first = torso.mlp[0]
        n_feat = torso.planes.out_dim
        w = first.weight.t()
        w_feat = w.new_zeros(len(planes.keep), w.shape[1])
        w_feat[planes.keep] = w[:n_feat]
        linears = [m for m in torso.mlp if isinstance(m, torch.nn.Linear)][1:]
        return cls(planes, w_feat, w[n_feat:], first.bias,
                   [(m.weight.t(), m.bias) for m in linears], torso.box_lo,
                   torso.box_hi - torso.box_lo)


def torso_field(tf: TorsoFieldW, code: torch.Tensor, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Torso field at body-frame points x [S, 3], pose code [1, 9] (``TorsoField``)."""
    xn = (x - tf.box_lo) / tf.box_span * 2.0 - 1.0
    feats = plane_features(tf.planes, xn)
    b = torch.addmm(tf.b0[None], code.to(tf.w_code.dtype), tf.w_code)[0]
    return mlp_out(torch.addmm(b, feats, tf.w_feat), tf.hidden)


# --- marching and compositing ------------------------------------------------------------

def march_band(grid_occ: torch.Tensor, lo: torch.Tensor, span: torch.Tensor, res: int,
               o: torch.Tensor, d: torch.Tensor, nr: torch.Tensor, fr: torch.Tensor,
               n_steps: int, band: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays [R] inside the grid's tight box -> (band depths t [R, band], occupied
    [R, band], step length in cm [R]): the grid looked up at all ``n_steps`` centred
    steps (``OccupancyGrid.ray_lookup``), the band starting at the first occupied one."""
    frac = (torch.arange(n_steps, device=o.device, dtype=o.dtype) + 0.5) / n_steps
    t = nr[:, None] + (fr - nr)[:, None] * frac
    scale = res / span
    g = torch.addcmul(((o - lo) * scale)[:, None], t[..., None], (d * scale)[:, None])
    gi = g.to(torch.int32).clamp_(0, res - 1)
    occ = grid_occ.reshape(-1)[((gi[..., 0] * res + gi[..., 1]) * res + gi[..., 2]).long()]
    first = torch.argmax(occ.to(torch.uint8), dim=1)
    steps = first[:, None] + torch.arange(band, device=o.device)
    inside = steps < n_steps
    steps = steps.clamp(max=n_steps - 1)
    keep = occ.gather(1, steps) & inside & occ.any(1, keepdim=True)
    delta_cm = (fr - nr) / n_steps * d.norm(dim=-1) * 100.0
    return t.gather(1, steps), keep, delta_cm


def composite_band(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor,
                   delta_cm: torch.Tensor, block: int, early_stop: float) -> torch.Tensor:
    """Emission-absorption along [R, band] samples -> [R, 5] (premultiplied rgb, alpha,
    depth). Samples in a block that starts with transmittance <= ``early_stop`` (after
    the first block) are dropped, exactly as the reference's early termination."""
    alpha = 1.0 - torch.exp(-sigma * delta_cm[:, None])
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]),
                                     1.0 - alpha + 1e-10], dim=1), dim=1)[:, :-1]
    band = sigma.shape[1]
    start = (torch.arange(band, device=sigma.device) // block) * block
    live = (trans[:, start] > early_stop) | (start == 0)
    w = trans * alpha * live
    acc = w.sum(1)
    depth = torch.where(acc > 1e-4, (w * t).sum(1) / acc.clamp_min(1e-6),
                        torch.zeros_like(acc))
    return torch.cat([(w[..., None] * rgb).sum(1), acc[:, None], depth[:, None]], 1)


def layer_over(head: torch.Tensor, torso: torch.Tensor) -> torch.Tensor:
    """Two [N, 5] layers front to back by depth (``render.composite_layers``)."""
    big = torch.finfo(head.dtype).max
    dh = torch.where(head[:, 3] > 1e-4, head[:, 4], big)
    dt = torch.where(torso[:, 3] > 1e-4, torso[:, 4], big)
    hf = (dh <= dt)[:, None]
    front, back = torch.where(hf, head, torso), torch.where(hf, torso, head)
    fa = front[:, 3:4]
    out = front[:, :4] + (1.0 - fa) * back[:, :4]
    depth = torch.where(fa > 1e-4, front[:, 4:], back[:, 4:])
    return torch.cat([out, depth], 1)


# --- the engine --------------------------------------------------------------------------

def _pad(n: int, bucket: int) -> int:
    return max(bucket, -(-n // bucket) * bucket)


class Engine:
    """Renders one frame's rays with the fused path; weights laid out once per model
    state (rebuilt when a parameter changes)."""

    def __init__(self, model: FaceNeRF, compile: bool = False) -> None:
        self.model = model
        self._key: tuple | None = None
        self.compiled = False
        self._head_fn: Callable = head_field
        self._torso_fn: Callable = torso_field
        if compile:
            self._compile()

    @staticmethod
    def supports(model: FaceNeRF, opts: SampleOptions) -> bool:
        return getattr(model, "warp", None) is None and not opts.jitter

    def _compile(self) -> None:
        try:
            mode = "reduce-overhead" if next(self.model.parameters()).is_cuda else None
            self._head_fn = torch.compile(head_field, mode=mode, dynamic=False)
            self._torso_fn = torch.compile(torso_field, mode=mode, dynamic=False)
            self.compiled = True
        except Exception as exc:
            log.warning("torch.compile unavailable (%s); rendering with the fused eager "
                        "engine", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _fallback(self, exc: Exception) -> None:
        log.warning("torch.compile failed (%s: %s); rendering with the fused eager engine",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        self._head_fn, self._torso_fn = head_field, torso_field
        self.compiled = False

    def _weights(self) -> None:
        key = tuple((p.data_ptr(), p._version) for p in self.model.parameters())
        if key != self._key:
            with torch.no_grad():
                self.head = HeadField.of(self.model)
                self.torso = (TorsoFieldW.of(self.model.torso)
                              if self.model.torso is not None else None)
            self._key = key

    def render(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
               volume: FrameCondition, opts: SampleOptions,
               body: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """All rays of ONE frame: head (and torso, along ``body`` rays) -> [N, 5]
        premultiplied rgb, alpha, planar depth (metres, 0 where empty)."""
        self._weights()
        try:
            return self._render(grid, o, d, volume, opts, body)
        except Exception as exc:
            if not self.compiled:
                raise
            self._fallback(exc)
            return self._render(grid, o, d, volume, opts, body)

    def _render(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
                volume: FrameCondition, opts: SampleOptions,
                body: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        attn = volume.attn[0]
        out = self._layer(grid, o, d, opts,
                          lambda x: self._head_fn(self.head, attn, x))
        tgrid = self.model.torso_grid
        if self.torso is not None and tgrid is not None and body is not None:
            code = volume.torso_code[:1]
            torso = self._layer(tgrid, body[0], body[1], opts,
                                lambda x: self._torso_fn(self.torso, code, x))
            out = layer_over(out, torso)
        return out

    def _layer(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
               opts: SampleOptions, field: Callable) -> torch.Tensor:
        n = o.shape[0]
        out = o.new_zeros(n, 5)
        lo, hi = grid.bounds()
        near, far, hit = ray_box(o, d, lo, hi)
        rays = hit.nonzero()[:, 0]
        if rays.numel() == 0:
            return out
        o, d = o[rays], d[rays]
        t, keep, delta = march_band(grid.occ, grid.lo, grid.hi - grid.lo, grid.res, o, d,
                                    near[rays], far[rays], opts.n_steps, opts.band)
        r, band = keep.shape
        sel = keep.view(-1).nonzero()[:, 0]
        m = sel.numel()
        ray = sel // band
        x = torch.addcmul(o[ray], t.view(-1)[sel, None], d[ray])
        if self.compiled:
            x = F.pad(x, (0, 0, 0, _pad(m, BUCKET) - m))
        sigma_s, rgb_s = field(x)
        sigma = o.new_zeros(r * band).index_copy(0, sel, sigma_s[:m].float())
        rgb = o.new_zeros(r * band, 3).index_copy(0, sel, rgb_s[:m].float())
        block = max(1, min(opts.step_block, opts.band))
        layer = composite_band(sigma.view(r, band), rgb.view(r, band, 3), t, delta, block,
                               opts.early_stop)
        return out.index_copy(0, rays, layer)
