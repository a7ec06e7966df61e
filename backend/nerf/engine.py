"""The fused render engine: one frame's rays through the head and torso fields with static
shapes and a handful of large operations, instead of the reference path's per-block loop.

Why: the reference (``components.volume_rendering.march_field``) walks each ray's sample
band in blocks of ``step_block`` steps, compacts alive rays and occupied samples with
boolean masks at every block, and looks the tri-planes up level by level: thousands of
small torch calls per frame, so a CPU frame and even more a GPU frame cost launch
overhead, not arithmetic. Here, per frame:

1. head rays and torso rays are marched together as two layers, each through its own
   grid; rays that hit their grid's tight box are compacted ONCE (one ``nonzero``);
2. every step of every such ray is looked up in the grid in one pass ([R, n_steps]:
   the same occupancy the reference's two-level march finds, its coarse test being
   conservative);
3. the band of ``band`` steps after the first occupied one is a fixed [R, band] block;
   its occupied samples are compacted ONCE and the field runs on all of them (on CPU in
   cache-sized chunks): the attention lattice is one ``embedding_bag`` from a
   zero-padded table, and the tri-plane levels of equal channel count are one
   channels-last table read with one ``embedding_bag`` and one GEMM of the first layer;
4. compositing is vectorised over the whole band: the exclusive transmittance is one
   ``cumprod``, and the reference's early termination (a ray stops after a block once
   its transmittance is below ``early_stop``) is reproduced exactly as a mask on the
   blocks that follow, so both paths composite the same samples.

The eager reference stays the definition (``render``): on the same weights the fused
path matches it within one uint8 level (tested). Frames are deterministic (no atomics:
compaction indices are unique, ``index_copy`` scatters).

``torch.compile`` (inductor: C++/OpenMP on CPU, Triton and CUDA graphs on CUDA) compiles
the head and torso fields (``Engine(compile=True)``, opt-in: on CPU it costs seconds per
new shape and was not faster): the tri-plane gather then becomes a plain indexed read
fused with its weighted sum. Sample counts are padded to buckets so few graphs are made.
Compilation that fails (no C++ compiler, no Triton) falls back to the fused eager path
with one log line. Subjects with the mesh warp, and jittered (training)
options, render through the reference path.

Training marches through the engine too (``Engine.train_march`` then
``Engine.train_field``, differentiable): the same single march and compaction, jittered
from the trainer's generator exactly as the reference draws it, the attention evaluated
only at the lattice points the step's samples read, one field call per layer for all
the step's frames, and the reference's loss terms (tested: the same gradients).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from .components import native
from .components.gather import weighted_gather
from .components.lattice import ATTN_HI, ATTN_LO
from .components.occupancy import OccupancyGrid
from .components.sampler import SampleOptions
from .model import FaceNeRF, FrameCondition

log = logging.getLogger(__name__)

#: ``FACECAST_ENGINE``: ``fused`` (default), ``compiled`` (fused + torch.compile) or
#: ``eager`` (the reference path).
ENGINE_ENV = "FACECAST_ENGINE"
ENGINES = ("eager", "fused", "compiled")
BUCKET = 8192
#: ``FACECAST_FIELD_CHUNK``: samples per field call; 0 = the whole frame in one call.
CHUNK_ENV = "FACECAST_FIELD_CHUNK"
#: On CPU the field runs in chunks: one call over a frame's ~2 x 10^5 samples makes
#: [planes, S, 4] index/weight temporaries of tens of MB and was ~20 % slower than
#: chunks of 32768 (8192 and 65536 were no faster). On CUDA: one call.
CPU_CHUNK = 32768  # compiled shapes are padded to a multiple of this (few graphs)
#: Samples per native field chunk (CPU kernels; in training too): the first layer's
#: inputs of one chunk stay in cache, and every tensor of a chunk stays under glibc's
#: 32 MB mmap limit (larger ones are mapped afresh, page fault by page fault, each time).
NATIVE_CHUNK = 32768
PAIRS = ((0, 1), (0, 2), (1, 2))  # as ``TriPlane.PAIRS``: (column, row) axes per plane


def field_chunk(device: torch.device) -> int:
    """Samples per field call on ``device`` (0: all at once); ``$FACECAST_FIELD_CHUNK``
    overrides."""
    env = os.environ.get(CHUNK_ENV, "").strip()
    if env.isdigit():
        return int(env)
    return CPU_CHUNK if device.type == "cpu" else 0


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
class PlaneRun:
    """Consecutive levels of one ``TriPlane`` with the same channel count, as one
    channels-last table: plane p's texel (row, col) is table row ``base[p] + row * R_p +
    col`` (planes level-major, then XY, XZ, YZ)."""

    table: torch.Tensor  # [sum 3 R^2, C]
    cols: torch.Tensor  # [2 P] (column, row) axis of each plane, interleaved
    # Per plane, shaped to broadcast over [P, 2, S] (samples innermost: long loops):
    half: torch.Tensor  # [P, 1, 1] float R / 2: pixel coordinate = xn R / 2 + (R - 1) / 2
    offset: torch.Tensor  # [P, 1, 1] float (R - 1) / 2
    zero: torch.Tensor  # [P, 1, 1] float 0
    res1: torch.Tensor  # [P, 1, 1] float R - 1
    res2: torch.Tensor  # [P, 1, 1] float R - 2
    rowcol: torch.Tensor  # [P, 2, 1] int32 (1, R): table rows per texel column, row
    corner: torch.Tensor  # [P, 1, 4] int32 the plane's first table row + (0, 1, R, R + 1):
    # the 4 corners

    @classmethod
    def of(cls, levels: list[torch.Tensor]) -> PlaneRun:
        dev, dt = levels[0].device, levels[0].dtype
        res = [p.shape[-1] for p in levels for _ in range(3)]
        base = np.cumsum([0] + [r * r for r in res[:-1]]).tolist()
        i32 = torch.int32
        r = torch.tensor(res, device=dev, dtype=dt)[:, None, None]
        return cls(torch.cat([p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) for p in levels]),
                   torch.tensor([a for pair in PAIRS for a in pair] * len(levels), device=dev),
                   r * 0.5, (r - 1.0) * 0.5, torch.zeros_like(r), r - 1.0, r - 2.0,
                   torch.tensor([[[1], [x]] for x in res], device=dev, dtype=i32),
                   torch.tensor([[[b, b + 1, b + x, b + x + 1]] for x, b in zip(
                       res, base, strict=True)], device=dev, dtype=i32))


@dataclass
class PlaneSet:
    """A tri-plane's runs (``PlaneRun``) with their per-plane constants side by side
    (same fields, planes of all runs): the bilinear corners of every plane are computed
    in one pass, then each run's table is read with one gather."""

    tables: list[torch.Tensor]
    counts: list[int]  # planes per run
    cols: torch.Tensor
    half: torch.Tensor
    offset: torch.Tensor
    zero: torch.Tensor
    res1: torch.Tensor
    res2: torch.Tensor
    rowcol: torch.Tensor
    corner: torch.Tensor

    @classmethod
    def of(cls, levels: list[torch.Tensor]) -> PlaneSet:
        runs = plane_runs(levels)
        cat = {k: torch.cat([getattr(r, k) for r in runs]) for k in (
            "cols", "half", "offset", "zero", "res1", "res2", "rowcol", "corner")}
        return cls([r.table for r in runs], [r.half.shape[0] for r in runs], **cat)


def plane_runs(levels: list[torch.Tensor]) -> list[PlaneRun]:
    """A ``TriPlane``'s levels as runs of equal channel count (no padded channels)."""
    runs: list[list[torch.Tensor]] = []
    for p in levels:
        if runs and runs[-1][0].shape[1] == p.shape[1]:
            runs[-1].append(p)
        else:
            runs.append([p])
    return [PlaneRun.of(r) for r in runs]


def gather_rows(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] * table[idx[n, k]] -> [N, C]. Eager: ``embedding_bag`` (each corner
    one contiguous read; in training with the sort-free gradient of ``gather``);
    compiled: an indexed read that inductor fuses with the sum (and whose gradient is a
    scatter-add, no sort)."""
    if torch.compiler.is_compiling():
        return (table[idx] * w[..., None]).sum(-2)
    return weighted_gather(table, idx, w)


def plane_corners(pl: PlaneRun | PlaneSet, xn: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """xn [S, 3] in [-1, 1] -> the table rows [P, S, 4] (int32; r0c0, r0c1, r1c0, r1c1)
    and weights [P, S, 4] of every plane's bilinear lookup (align_corners=False, border
    clamp: ``TriPlane``'s). The lower corner is clamped to R - 2, so the upper one is
    always inside (weight 1 at the far border). Coordinates are laid out [P, 2, S]:
    per-plane constants broadcast over long contiguous loops instead of inner
    dimensions of 2."""
    s, p = xn.shape[0], pl.half.shape[0]
    uv = xn.t().index_select(0, pl.cols).view(p, 2, s)
    pix = torch.addcmul(pl.offset, uv, pl.half).clamp(pl.zero, pl.res1)
    i0 = pix.floor().minimum(pl.res2)
    w1 = pix - i0
    side = torch.stack([1.0 - w1, w1], 2)  # [P, axis, (1 - w, w), S]
    lin = (i0.to(torch.int32) * pl.rowcol).sum(1, dtype=torch.int32)  # [P, S]
    w = side[:, 1, :, None] * side[:, 0, None]  # [P, row side, column side, S]
    return lin[..., None] + pl.corner, w.view(p, 4, s).transpose(1, 2).contiguous()


def _run_features(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One run's gather: rows / weights [P, S, 4] -> features [S, P * C]."""
    p, s = idx.shape[:2]
    c = table.shape[1]
    out = gather_rows(table, idx.view(p * s, 4), w.view(p * s, 4))
    return out.view(p, s, c).transpose(0, 1).reshape(s, p * c)


def plane_features(pl: PlaneRun, xn: torch.Tensor) -> torch.Tensor:
    """xn [S, 3] in [-1, 1] -> [S, P * C] bilinear features of every plane of the run."""
    return _run_features(pl.table, *plane_corners(pl, xn))


def first_layer(planes: PlaneSet, w_feat: list[torch.Tensor], h: torch.Tensor,
                xn: torch.Tensor) -> torch.Tensor:
    """h + the plane features' share of the first layer: the corners of all planes in
    one pass, then one gather and one GEMM per run."""
    idx, w = plane_corners(planes, xn)
    p0 = 0
    for table, p, wf in zip(planes.tables, planes.counts, w_feat, strict=True):
        h = torch.addmm(h, _run_features(table, idx[p0:p0 + p], w[p0:p0 + p]), wf)
        p0 += p
    return h


def _split_first(first: torch.nn.Linear, planes: PlaneSet
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The first layer's W^T rows per run (features in ``TriPlane`` order), and the rest."""
    w, out, row = first.weight.t(), [], 0
    for table, p in zip(planes.tables, planes.counts, strict=True):
        n = p * table.shape[1]
        out.append(w[row:row + n])
        row += n
    return out, w[row:]


@dataclass
class Lattice:
    """The attention lattice's constants (``lattice.sample_lattice``), for tables padded
    with one zero point on every side (``pad_lattice``): outside the lattice box the
    lookup fades to zero over one step, with no validity mask."""

    # Per axis, shaped [3, 1] to broadcast over [3, S] (samples innermost):
    scale: torch.Tensor  # padded lattice steps per metre
    shift: torch.Tensor  # padded coordinate of x = 0
    zero: torch.Tensor  # float 0
    top: torch.Tensor  # float (nx, ny, nz) + 1: the padded box's last index
    top1: torch.Tensor  # float (nx, ny, nz): the last lower corner
    stride: torch.Tensor  # int32 strides of the padded volume
    corner: torch.Tensor  # [8] int32 the 8 corners' offsets (z, y, x major to minor)
    shape: tuple[int, int, int]

    @classmethod
    def of(cls, shape: tuple[int, int, int], device: torch.device) -> Lattice:
        lo = torch.tensor(ATTN_LO, device=device)
        hi = torch.tensor(ATTN_HI, device=device)
        dims = torch.tensor(shape, device=device, dtype=torch.float32)
        px, py = shape[0] + 2, shape[1] + 2
        corner = [dz * px * py + dy * px + dx for dz in (0, 1) for dy in (0, 1)
                  for dx in (0, 1)]
        i32 = torch.int32
        scale = (dims - 1) / (hi - lo)
        return cls(scale[:, None], (1.0 - lo * scale)[:, None], torch.zeros_like(lo)[:, None],
                   (dims + 1)[:, None], dims[:, None],
                   torch.tensor([[1], [px], [px * py]], device=device, dtype=i32),
                   torch.tensor(corner, device=device, dtype=i32), shape)


def pad_lattice(lat: Lattice, table: torch.Tensor) -> torch.Tensor:
    """Lattice values of one frame [P, C] (or F frames [F, P, C]) -> the zero-padded
    table lookups read (frame f's rows from f * ``padded_size``)."""
    nx, ny, nz = lat.shape
    vol = table.reshape(-1, nz, ny, nx, table.shape[-1])
    return F.pad(vol, (0, 0, 1, 1, 1, 1, 1, 1)).reshape(-1, table.shape[-1])


def padded_size(lat: Lattice) -> int:
    """Rows of one frame's padded lattice table."""
    return (lat.shape[0] + 2) * (lat.shape[1] + 2) * (lat.shape[2] + 2)


def lattice_values(lat: Lattice, table: torch.Tensor, x: torch.Tensor,
                   row: torch.Tensor | None = None) -> torch.Tensor:
    """Trilinear lookup of a padded lattice ``table`` at x [S, 3] -> [S, C], zero
    outside the lattice (``lattice.sample_lattice``); coordinates laid out [3, S].
    ``row`` [S] int32: each sample's frame's first table row (several frames)."""
    idx, wts = lattice_corners(lat, x)
    return gather_rows(table, idx if row is None else idx + row[:, None], wts)


def lattice_corners(lat: Lattice, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [S, 3] -> the padded lattice rows [S, 8] (int32) a trilinear lookup reads, and
    their weights [S, 8]."""
    g = torch.addcmul(lat.shift, x.t(), lat.scale).clamp(lat.zero, lat.top)
    i0 = g.floor().minimum(lat.top1)
    w = g - i0
    side = torch.stack([1.0 - w, w], 1)  # [axis, (1 - w, w), S]
    lin = (i0.to(torch.int32) * lat.stride).sum(0, dtype=torch.int32)
    # (x side * y side) * z side, laid out [dz, dy, dx, S] (long loops over the samples),
    # then [S, 8] in the corners' order
    xyz = (side[0, None] * side[1, :, None])[None] * side[2, :, None, None]
    return lin[:, None] + lat.corner, xyz.view(8, -1).t().contiguous()


@dataclass
class HeadField:
    """The head field's weights laid out for ``head_field``."""

    planes: PlaneSet
    lattice: Lattice
    w_feat: list[torch.Tensor]  # per run [P * C, H]: the first layer on its features
    w_app: torch.Tensor  # [A, H]
    b0: torch.Tensor
    hidden: list[tuple[torch.Tensor, torch.Tensor]]  # further (W^T, b) layers, last -> 4
    box_lo: torch.Tensor
    box_span: torch.Tensor
    fade: float

    @classmethod
    def of(cls, model: FaceNeRF) -> HeadField:
        runs = PlaneSet.of(list(model.planes.levels))
        first = model.mlp[0]
        w_feat, w_app = _split_first(first, runs)
        linears = [m for m in model.mlp if isinstance(m, torch.nn.Linear)][1:]
        return cls(runs, Lattice.of(model.lattice_shape, w_app.device), w_feat, w_app,
                   first.bias, [(m.weight.t(), m.bias) for m in linears], model.box_lo,
                   model.box_hi - model.box_lo, float(model.cfg.fade))


def mlp_out(h: torch.Tensor, hidden: list[tuple[torch.Tensor, torch.Tensor]]
            ) -> torch.Tensor:
    """SiLU hidden layers then the output layer: first-layer pre-activations [S, H] ->
    raw [S, 4] (density logit, rgb logits)."""
    for w, b in hidden:
        h = torch.addmm(b, F.silu(h), w)
    return h


def head_field(hf: HeadField, attn: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Head field at x [S, 3] (head frame) for one frame's padded attention lattice
    ``attn`` -> [S, 4]: density per cm, rgb (``FaceNeRF.forward`` without the warp)."""
    return head_field_offsets(hf, attn, x)[0]


def head_field_offsets(hf: HeadField, attn: torch.Tensor, x: torch.Tensor,
                       row: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``head_field`` and the attention offsets [S, 3]; with ``row`` (``lattice_values``)
    the samples read several frames' lattices stacked in ``attn``."""
    c = lattice_values(hf.lattice, attn, x, row)
    xn = (x + c[:, :3] - hf.box_lo) / hf.box_span * 2.0 - 1.0
    h = first_layer(hf.planes, hf.w_feat, torch.addmm(hf.b0, c[:, 3:], hf.w_app), xn)
    raw = mlp_out(h, hf.hidden).float()
    fade = ((x[:, 1:2] - hf.box_lo[1]) / hf.fade).clamp(0.0, 1.0)
    return (torch.cat([F.softplus(raw[:, :1] - 1.0) * fade, torch.sigmoid(raw[:, 1:])], 1),
            c[:, :3])


@dataclass
class TorsoFieldW:
    """The torso field's weights laid out for ``torso_field``."""

    planes: PlaneSet
    w_feat: list[torch.Tensor]
    w_code: torch.Tensor  # [9, H]
    b0: torch.Tensor
    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    box_lo: torch.Tensor
    box_span: torch.Tensor

    @classmethod
    def of(cls, torso: torch.nn.Module) -> TorsoFieldW:
        runs = PlaneSet.of(list(torso.planes.levels))
        first = torso.mlp[0]
        w_feat, w_code = _split_first(first, runs)
        linears = [m for m in torso.mlp if isinstance(m, torch.nn.Linear)][1:]
        return cls(runs, w_feat, w_code, first.bias,
                   [(m.weight.t(), m.bias) for m in linears], torso.box_lo,
                   torso.box_hi - torso.box_lo)


def torso_field(tf: TorsoFieldW, code: torch.Tensor, x: torch.Tensor,
                frame: torch.Tensor | None = None) -> torch.Tensor:
    """Torso field at body-frame points x [S, 3], pose code [1, 9] -> [S, 4]: density
    per cm, rgb (``TorsoField``); with ``frame`` [S] each sample uses its row of
    ``code`` [F, 9]."""
    xn = (x - tf.box_lo) / tf.box_span * 2.0 - 1.0
    b = torch.addmm(tf.b0[None], code.to(tf.w_code.dtype), tf.w_code)
    b = b[0] if frame is None else b.index_select(0, frame)
    raw = mlp_out(first_layer(tf.planes, tf.w_feat, b, xn), tf.hidden).float()
    return torch.cat([F.softplus(raw[:, :1] - 1.0), torch.sigmoid(raw[:, 1:])], 1)


# --- marching and compositing ------------------------------------------------------------

@dataclass
class MarchPlan:
    """Constants of one joint march of L layers (head, torso) of N rays each: layer l's
    rays are rows [l N, (l + 1) N), each with its own occupancy grid."""

    n: int
    occ: torch.Tensor  # all grids' cells, flat, one after the other
    lo: torch.Tensor  # [L N, 3] the grid's box corner per ray
    scale: torch.Tensor  # [L N, 3] cells per metre
    top: torch.Tensor  # [L N, 1] int32 last cell index
    gstride: torch.Tensor  # [L N, 3] int32 (G^2, G, 1)
    base: torch.Tensor  # [L N, 1] int32 first cell of the grid in ``occ``
    blo: torch.Tensor  # [L N, 3] the tight box around occupied cells
    bhi: torch.Tensor
    frac: torch.Tensor  # [n_steps] step centres along [near, far]
    steps_ar: torch.Tensor  # [n_steps] float 0, 1, ...
    band_ar: torch.Tensor  # [band]
    start: torch.Tensor  # [band] first step of each step's block
    first_block: torch.Tensor  # [band] bool
    n_steps: int
    band: int
    early_stop: float

    @classmethod
    def of(cls, grids: list[OccupancyGrid], n: int, opts: SampleOptions) -> MarchPlan:
        dev = grids[0].lo.device
        i32 = torch.int32
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in (
            "lo", "scale", "top", "gstride", "base", "blo", "bhi")}
        base = 0
        for g in grids:
            r = g.res
            blo, bhi = g.bounds()
            for k, v in (("lo", g.lo), ("scale", r / (g.hi - g.lo)), ("blo", blo),
                         ("bhi", bhi),
                         ("top", torch.tensor([r - 1], dtype=i32, device=dev)),
                         ("gstride", torch.tensor([r * r, r, 1], dtype=i32, device=dev)),
                         ("base", torch.tensor([base], dtype=i32, device=dev))):
                rows[k].append(v.expand(n, *v.shape))
            base += r ** 3
        cat = {k: torch.cat(v) for k, v in rows.items()}
        band, m = opts.band, opts.n_steps
        block = max(1, min(opts.step_block, band))
        start = (torch.arange(band, device=dev) // block) * block
        return cls(n, torch.cat([g.occ.reshape(-1) for g in grids]), cat["lo"],
                   cat["scale"], cat["top"], cat["gstride"], cat["base"], cat["blo"],
                   cat["bhi"], (torch.arange(m, device=dev, dtype=torch.float32) + 0.5) / m,
                   torch.arange(m, device=dev, dtype=torch.float32),
                   torch.arange(band, device=dev), start, start == 0, m, band,
                   opts.early_stop)


def march(plan: MarchPlan, o: torch.Tensor, d: torch.Tensor,
          generator: torch.Generator | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                     torch.Tensor]:
    """All layers' rays [L N] -> (indices of rays hitting their box [R], their origins,
    directions, band depths t [R, band], occupied [R, band], step length in cm [R]).

    Each ray is clipped to its grid's tight box (``geometry.ray_box``), the grid looked up
    at all ``n_steps`` centred steps (``OccupancyGrid.ray_lookup``: the occupancy the
    reference's two-level march finds), and the band starts at the first occupied one.
    With ``generator`` the steps are jittered (training: one uniform offset per step,
    drawn as the reference draws them, so both see the same samples).
    """
    inv = 1.0 / torch.where(d.abs() < 1e-9, 1e-9, d)
    t0, t1 = (plan.blo - o) * inv, (plan.bhi - o) * inv
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    rays = (far > near).nonzero()[:, 0]
    o, d, nr, span = o[rays], d[rays], near[rays], (far - near)[rays]
    scale = plan.scale[rays]
    if generator is None:
        t = torch.addcmul(nr[:, None], span[:, None], plan.frac)
    else:
        u = torch.rand(len(rays), plan.n_steps, device=o.device, generator=generator)
        t = nr[:, None] + span[:, None] * ((plan.steps_ar + u) / plan.n_steps)
    # Grid coordinates laid out [3, R, n_steps]: long contiguous loops over the steps.
    g = torch.addcmul(((o - plan.lo[rays]) * scale).t()[..., None], t,
                      (d * scale).t()[..., None])
    gi = torch.minimum(g.to(torch.int32).clamp_min_(0), plan.top[rays])
    flat = (gi * plan.gstride[rays].t()[..., None]).sum(0, dtype=torch.int32)
    occ = plan.occ[flat + plan.base[rays]]
    steps = torch.argmax(occ.to(torch.uint8), dim=1)[:, None] + plan.band_ar
    keep = F.pad(occ, (0, plan.band)).gather(1, steps)  # False past the last step
    ts = t.gather(1, steps.clamp_(max=plan.n_steps - 1))
    return rays, o, d, ts, keep, span / plan.n_steps * d.norm(dim=-1) * 100.0


def composite(plan: MarchPlan, dense: torch.Tensor, t: torch.Tensor, delta_cm: torch.Tensor
              ) -> torch.Tensor:
    """Emission-absorption along the band: ``dense`` [R, band, 4] (density, rgb; zero
    where not evaluated), t [R, band] -> [R, 5] (premultiplied rgb, alpha, depth).
    Samples in a block that starts with transmittance <= ``early_stop`` (after the first
    block) are dropped, exactly as the reference's early termination."""
    return band_sums(band_weights(plan, dense[..., 0], delta_cm)[0], dense, t)


def band_weights(plan: MarchPlan, sigma: torch.Tensor, delta_cm: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Compositing weights [R, band] of densities ``sigma`` [R, band], and which samples
    the reference evaluates (bool [R, band]: their block starts alive)."""
    alpha = 1.0 - torch.exp(-sigma * delta_cm[:, None])
    trans = torch.cumprod(F.pad(1.0 - alpha + 1e-10, (1, 0), value=1.0)[:, :-1], dim=1)
    live = (trans[:, plan.start] > plan.early_stop) | plan.first_block
    return trans * alpha * live, live


def band_sums(w: torch.Tensor, dense: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Weights [R, band], samples [R, band, 4], depths [R, band] -> [R, 5] (premultiplied
    rgb, alpha, depth)."""
    # (rgb, 1, t): the weighted sums are colour, alpha and alpha-weighted depth. No
    # in-place writes: training backpropagates through this.
    sums = (w[..., None] * torch.cat([dense[..., 1:], torch.ones_like(t)[..., None],
                                      t[..., None]], -1)).sum(1)  # [R, 5]
    acc = sums[:, 3:4]
    depth = torch.where(acc > 1e-4, sums[:, 4:] / acc.clamp_min(1e-6), 0.0)
    return torch.cat([sums[:, :4], depth], 1)


def layer_over(layers: torch.Tensor) -> torch.Tensor:
    """Two [N, 5] layers ([2, N, 5]) front to back by depth
    (``components.volume_rendering.composite_layers``)."""
    d = torch.where(layers[..., 3] > 1e-4, layers[..., 4], torch.finfo(layers.dtype).max)
    d_head, d_torso = d.unbind(0)
    front, back = torch.where((d_head <= d_torso)[None, :, None], layers,
                              layers.flip(0)).unbind(0)
    fa = front[:, 3:4]
    out = torch.where(fa > 1e-4, front, back)  # its depth; colour and alpha below
    out[:, :4] = torch.addcmul(front[:, :4], 1.0 - fa, back[:, :4])
    return out


# --- the CPU kernels' layout (``components.native``) ------------------------------------

@dataclass
class NativeMarch:
    """A joint march's per-layer constants for ``fc_march`` ([L, 3] / [L] rows)."""

    lo: torch.Tensor
    scale: torch.Tensor
    res: torch.Tensor  # int32
    base: torch.Tensor  # int64 first cell of each grid in ``occ``
    blo: torch.Tensor
    bhi: torch.Tensor
    occ: torch.Tensor  # uint8, all grids' cells

    @classmethod
    def of(cls, grids: list[OccupancyGrid]) -> NativeMarch:
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("lo", "scale", "blo", "bhi")}
        for g in grids:
            blo, bhi = g.bounds()
            for k, v in (("lo", g.lo), ("scale", g.res / (g.hi - g.lo)), ("blo", blo),
                         ("bhi", bhi)):
                rows[k].append(v.float().reshape(3))
        res = [g.res for g in grids]
        base = np.cumsum([0] + [r ** 3 for r in res[:-1]]).tolist()
        st = {k: torch.stack(v).contiguous() for k, v in rows.items()}
        return cls(st["lo"], st["scale"], torch.tensor(res, dtype=torch.int32),
                   torch.tensor(base, dtype=torch.int64), st["blo"], st["bhi"],
                   torch.cat([g.occ.reshape(-1) for g in grids]).to(torch.uint8).contiguous())


@dataclass
class NativeField:
    """A field laid out for ``fc_features`` (its lookups, one row of the first layer's
    input per sample) and the PyTorch GEMMs after it."""

    tables: list[torch.Tensor]  # kept alive: ``ptrs`` point into them
    counts: list[int]  # planes per table
    ptrs: torch.Tensor  # int64 per plane: its table's data pointer
    chans: torch.Tensor  # int32 per plane
    res: torch.Tensor  # int32
    row0: torch.Tensor  # int64 first table row
    u: torch.Tensor  # int32 column axis
    v: torch.Tensor  # int32 row axis
    col: torch.Tensor  # int32 first output column
    width: int  # columns of the first layer's input
    w0: torch.Tensor  # [width, H] the first layer's W^T (inputs in ``TriPlane`` order)
    b0: torch.Tensor
    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    box_lo: torch.Tensor
    box_span: torch.Tensor
    lattice: Lattice | None = None  # the head's attention lattice
    lat_consts: tuple[torch.Tensor, ...] = ()
    app_col: int = 0  # the lattice's appearance channels' first column

    @classmethod
    def of(cls, planes: PlaneSet, w_feat: list[torch.Tensor], rest: torch.Tensor | None,
           b0: torch.Tensor, hidden: list[tuple[torch.Tensor, torch.Tensor]],
           box_lo: torch.Tensor, box_span: torch.Tensor,
           lattice: Lattice | None = None) -> NativeField:
        tables = [t.contiguous() for t in planes.tables]
        ptrs, chans, col = [], [], []
        c0 = 0
        for t, p in zip(tables, planes.counts, strict=True):
            for q in range(p):
                ptrs.append(t.data_ptr())
                chans.append(t.shape[1])
                col.append(c0 + q * t.shape[1])
            c0 += p * t.shape[1]
        uv = planes.cols.view(-1, 2)
        w0 = torch.cat(w_feat + ([rest] if rest is not None else [])).contiguous()
        consts: tuple[torch.Tensor, ...] = ()
        if lattice is not None:
            consts = tuple(v.reshape(-1).contiguous() for v in (
                lattice.scale, lattice.shift, lattice.top, lattice.top1, lattice.stride,
                lattice.corner))
        i32 = torch.int32
        return cls(tables, list(planes.counts), torch.tensor(ptrs, dtype=torch.int64),
                   torch.tensor(chans, dtype=i32),
                   planes.rowcol[:, 1, 0].to(i32).contiguous(),
                   planes.corner[:, 0, 0].to(torch.int64).contiguous(),
                   uv[:, 0].to(i32).contiguous(), uv[:, 1].to(i32).contiguous(),
                   torch.tensor(col, dtype=i32), w0.shape[0], w0, b0, hidden,
                   box_lo.float().contiguous(), box_span.float().contiguous(), lattice,
                   consts, c0)


def native_features(lib, nf: NativeField, x: torch.Tensor, out: torch.Tensor,
                    lat: torch.Tensor | None = None, row: torch.Tensor | None = None,
                    off: torch.Tensor | None = None) -> torch.Tensor:
    """``fc_features``: the first layer's inputs [S, width] at points x [S, 3] into
    ``out`` (the head reads the padded attention table ``lat``: sample s from row
    ``row[s]`` on (int32, several frames) or from 0; ``off`` [S, 3] receives the
    lattice offsets)."""
    p = native.ptr
    lc = nf.lat_consts if lat is not None else (None,) * 6
    lib.fc_features(len(x), p(x), p(row), p(lat), 0 if lat is None else lat.shape[1],
                    *(p(c) for c in lc), 0 if lat is None else lat.shape[1] - 3, nf.app_col,
                    p(nf.box_lo), p(nf.box_span), len(nf.ptrs), p(nf.ptrs), p(nf.chans),
                    p(nf.res), p(nf.row0), p(nf.u), p(nf.v), p(nf.col), p(out), out.shape[1],
                    p(off), torch.get_num_threads())
    return out


class NativeInputs(torch.autograd.Function):
    """``native_features`` with its gradients (``fc_features_backward``): into the
    tri-plane tables and the attention lattice table, not into the points (callers use
    it only when the points need none) -> (inputs [S, width], lattice offsets [S, 3])."""

    @staticmethod
    def forward(ctx, lib, nf: NativeField, x: torch.Tensor, lat: torch.Tensor | None,
                row: torch.Tensor | None, *tables: torch.Tensor):
        out = x.new_empty(len(x), nf.width)
        off = x.new_zeros(len(x), 3)
        native_features(lib, nf, x, out, lat, row, off if lat is not None else None)
        ctx.lib, ctx.nf = lib, nf
        ctx.save_for_backward(x, lat, row)
        if lat is None:
            ctx.mark_non_differentiable(off)
        return out, off

    @staticmethod
    def backward(ctx, g_feat: torch.Tensor, g_off: torch.Tensor | None):
        x, lat, row = ctx.saved_tensors
        nf: NativeField = ctx.nf
        g_feat = g_feat.contiguous()
        g_off = g_off.contiguous() if g_off is not None and lat is not None else None
        g_tab = [torch.empty_like(t) for t in nf.tables]
        per_plane, rows = [], []
        for t, g, n in zip(nf.tables, g_tab, nf.counts, strict=True):
            per_plane += [g.data_ptr()] * n
            rows += [t.shape[0]] * n
        g_lat = torch.empty_like(lat) if lat is not None else None
        lat_c = 0 if lat is None else lat.shape[1]
        s, n_pl = len(x), len(nf.ptrs)
        pl_row, pl_w = torch.empty(s, n_pl, dtype=torch.int64), x.new_empty(s, n_pl, 4)
        lat_lin = torch.empty(s if lat is not None else 0, dtype=torch.int64)
        lat_w, g_c = x.new_empty(len(lat_lin), 8), x.new_empty(len(lat_lin), lat_c)
        rows_t = torch.tensor(rows, dtype=torch.int64)  # alive across the call
        g_ptrs = torch.tensor(per_plane, dtype=torch.int64)
        p = native.ptr
        lc = nf.lat_consts if lat is not None else (None,) * 6
        ctx.lib.fc_features_backward(
            len(x), p(x), p(row), p(lat), lat_c, 0 if lat is None else lat.shape[0], *(
                p(c) for c in lc), 0 if lat is None else lat_c - 3, nf.app_col, p(nf.box_lo),
            p(nf.box_span), len(nf.ptrs), p(nf.ptrs), p(nf.chans), p(nf.res), p(nf.row0),
            p(nf.u), p(nf.v), p(nf.col), p(rows_t), p(g_feat), g_feat.shape[1], p(g_off),
            p(g_ptrs), p(g_lat), p(pl_row), p(pl_w), p(lat_lin), p(lat_w), p(g_c),
            torch.get_num_threads())
        return (None, None, None, g_lat, None, *g_tab)


def head_field_native(lib, hf: HeadField, attn: torch.Tensor, x: torch.Tensor,
                      row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``head_field_offsets`` with the lookups in the CPU kernels (differentiable in the
    weights and the lattice, not in x)."""
    nf = NativeField.of(hf.planes, hf.w_feat, hf.w_app, hf.b0, hf.hidden, hf.box_lo,
                        hf.box_span, hf.lattice)
    x, attn, row = x.contiguous(), attn.contiguous(), row.to(torch.int32).contiguous()
    raws, offs = [], []
    for i in range(0, max(len(x), 1), NATIVE_CHUNK):
        feat, off = NativeInputs.apply(lib, nf, x[i:i + NATIVE_CHUNK], attn,
                                       row[i:i + NATIVE_CHUNK], *nf.tables)
        raws.append(mlp_out(torch.addmm(hf.b0, feat, nf.w0), hf.hidden))
        offs.append(off)
    raw = (raws[0] if len(raws) == 1 else torch.cat(raws)).float()
    fade = ((x[:, 1:2] - hf.box_lo[1]) / hf.fade).clamp(0.0, 1.0)
    return (torch.cat([F.softplus(raw[:, :1] - 1.0) * fade, torch.sigmoid(raw[:, 1:])], 1),
            offs[0] if len(offs) == 1 else torch.cat(offs))


def torso_field_native(lib, tf: TorsoFieldW, code: torch.Tensor, x: torch.Tensor,
                       frame: torch.Tensor) -> torch.Tensor:
    """``torso_field`` (several frames) with the lookups in the CPU kernels."""
    nf = NativeField.of(tf.planes, tf.w_feat, None, tf.b0, tf.hidden, tf.box_lo, tf.box_span)
    x = x.contiguous()
    b = torch.addmm(tf.b0[None], code.to(tf.w_code.dtype), tf.w_code).index_select(0, frame)
    raws = []
    for i in range(0, max(len(x), 1), NATIVE_CHUNK):
        feat, _ = NativeInputs.apply(lib, nf, x[i:i + NATIVE_CHUNK], None, None, *nf.tables)
        raws.append(mlp_out(torch.addmm(b[i:i + NATIVE_CHUNK], feat, nf.w0), tf.hidden))
    raw = (raws[0] if len(raws) == 1 else torch.cat(raws)).float()
    return torch.cat([F.softplus(raw[:, :1] - 1.0), torch.sigmoid(raw[:, 1:])], 1)


# --- the engine --------------------------------------------------------------------------

@dataclass
class TrainSamples:
    """A training step's marched samples (``Engine.train_march``): layer-ordered, the
    head's first."""

    plan: MarchPlan
    n: int  # rays per layer
    torso: bool  # a torso layer follows the head's
    rays: torch.Tensor  # [R] rows (of L N) that hit their grid's box
    t: torch.Tensor  # [R, band] depths along the band
    delta: torch.Tensor  # [R] step length, cm
    sel: torch.Tensor  # [S] occupied band samples, flat in [R, band]
    x: torch.Tensor  # [S, 3] their points
    frame: torch.Tensor  # [S] int32 their frames
    split: int  # samples [0, split) are the head's


def _pad(n: int, bucket: int) -> int:
    return max(bucket, -(-n // bucket) * bucket)


class Engine:
    """Renders one frame's rays with the fused path; weights laid out once per model
    state (rebuilt when a parameter changes)."""

    def __init__(self, model: FaceNeRF, compile: bool = False) -> None:
        self.model = model
        self._key: list | None = None
        self._plan_key: tuple | None = None
        self._plan_cache: MarchPlan | None = None
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
            # dynamic=None: the second sample count recompiles once with symbolic shapes
            self._head_fn = torch.compile(head_field, mode=mode)
            self._torso_fn = torch.compile(torso_field, mode=mode)
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
        # The parameters themselves (by identity) and their versions: an optimiser step
        # or a loaded state bumps a version, a replaced parameter is a new object.
        key = [(p, p._version) for p in self.model.parameters()]
        old = self._key
        if (old is None or len(old) != len(key)
                or any(a is not b or u != v for (a, u), (b, v) in zip(old, key, strict=True))):
            with torch.no_grad():
                self.head = HeadField.of(self.model)
                self.torso = (TorsoFieldW.of(self.model.torso)
                              if self.model.torso is not None else None)
                self._native_fields()
            self._key = key

    def _native_fields(self) -> None:
        self.native_head = self.native_torso = None
        hf, tf = self.head, self.torso
        if hf.w_app.device.type != "cpu" or hf.w_app.dtype != torch.float32:
            return
        self.native_head = NativeField.of(hf.planes, hf.w_feat, hf.w_app, hf.b0, hf.hidden,
                                          hf.box_lo, hf.box_span, hf.lattice)
        if tf is not None:
            self.native_torso = NativeField.of(tf.planes, tf.w_feat, None, tf.b0, tf.hidden,
                                               tf.box_lo, tf.box_span)

    def native(self, o: torch.Tensor, opts: SampleOptions):
        """The CPU kernels when this frame can use them (CPU float32 rays, eager, a band
        of at most 64 steps, an attention lattice of at most 64 channels), else None."""
        if (self.compiled or o.device.type != "cpu" or o.dtype != torch.float32
                or opts.band > 64 or getattr(self, "native_head", None) is None
                or torch.is_grad_enabled() or torch.is_autocast_enabled("cpu")):
            return None
        return native.library()

    def render(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
               volume: FrameCondition, opts: SampleOptions,
               body: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """All rays of ONE frame: head (and torso, along ``body`` rays) -> [N, 5]
        premultiplied rgb, alpha, planar depth (metres, 0 where empty)."""
        self._weights()
        lib = self.native(o, opts)
        if lib is not None and volume.attn.shape[-1] <= 64:
            return self._render_native(lib, grid, o, d, volume, opts, body)
        try:
            return self._render(grid, o, d, volume, opts, body)
        except Exception as exc:
            if not self.compiled:
                raise
            self._fallback(exc)
            return self._render(grid, o, d, volume, opts, body)

    def _plan(self, grids: list[OccupancyGrid], n: int, opts: SampleOptions) -> MarchPlan:
        # The key holds the occupancy tensors themselves (compared by identity: a refresh
        # makes new ones), so a freed tensor's id can never match a new one.
        occ = [g.occ for g in grids]
        key = (n, opts.n_steps, opts.band, opts.step_block, opts.early_stop)
        old = self._plan_key
        if (self._plan_cache is None or old is None or old[0] != key or len(old[1]) != len(occ)
                or any(a is not b for a, b in zip(old[1], occ, strict=True))):
            self._plan_cache = MarchPlan.of(grids, n, opts)
            self._plan_key = (key, occ)
        return self._plan_cache

    def _render(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
                volume: FrameCondition, opts: SampleOptions,
                body: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        n = o.shape[0]
        tgrid = self.model.torso_grid
        torso = self.torso is not None and tgrid is not None and body is not None
        if torso:
            o, d = torch.cat([o, body[0]]), torch.cat([d, body[1]])
        plan = self._plan([grid, tgrid] if torso else [grid], n, opts)
        rays, o, d, t, keep, delta = march(plan, o, d)
        band = plan.band
        sel = keep.view(-1).nonzero()[:, 0]
        ray = sel // band
        x = torch.addcmul(o[ray], t.view(-1)[sel, None], d[ray])
        # Rays (and so samples) are in layer order: the head's come first.
        split = int(torch.searchsorted(ray, int(torch.searchsorted(rays, n))))
        attn = pad_lattice(self.head.lattice, volume.attn[0])
        vals = self._field(self._head_fn, self.head, attn, x[:split])
        if torso:
            vals = torch.cat([vals, self._field(self._torso_fn, self.torso,
                                                volume.torso_code[:1], x[split:])])
        r = len(rays)
        dense = o.new_zeros(r * band, 4).index_copy(0, sel, vals.to(o.dtype))
        layers = o.new_zeros(len(plan.lo), 5).index_copy(
            0, rays, composite(plan, dense.view(r, band, 4), t, delta))
        return layer_over(layers.view(2, n, 5)) if torso else layers

    def native_train(self, x: torch.Tensor, attn: torch.Tensor):
        """The CPU kernels for a training step's field (CPU float32 points that need no
        gradient: no camera refinement), else None."""
        if (x.device.type != "cpu" or x.dtype != torch.float32 or x.requires_grad
                or attn.dtype != torch.float32 or attn.shape[-1] > 64
                or torch.is_autocast_enabled("cpu")):
            return None
        return native.library()

    def _render_native(self, lib, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
                       volume: FrameCondition, opts: SampleOptions,
                       body: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """``_render`` through the CPU kernels: the march, the samples' points and the
        compositing in C; per chunk of samples the lookups in C, the MLP in PyTorch."""
        n = o.shape[0]
        tgrid = self.model.torso_grid
        torso = self.native_torso is not None and tgrid is not None and body is not None
        if torso:
            o, d = torch.cat([o, body[0]]), torch.cat([d, body[1]])
        o, d = o.contiguous(), d.contiguous()
        grids = [grid, tgrid] if torso else [grid]
        key = tuple(g.occ for g in grids)
        hit = self.__dict__.get("_native_plan")
        if hit is None or len(hit[0]) != len(key) or any(
                a is not b for a, b in zip(hit[0], key, strict=True)):
            hit = (key, NativeMarch.of(grids))
            self.__dict__["_native_plan"] = hit
        nm: NativeMarch = hit[1]
        nr, nt, p = len(o), torch.get_num_threads(), native.ptr
        first = torch.empty(nr, dtype=torch.int32)
        near, span, delta = (torch.empty(nr) for _ in range(3))
        mask = torch.empty(nr, dtype=torch.int64)
        offsets = torch.empty(nr + 1, dtype=torch.int64)
        s = lib.fc_march(nr, n, p(o), p(d), p(nm.lo), p(nm.scale), p(nm.res), p(nm.base),
                         p(nm.blo), p(nm.bhi), p(nm.occ), opts.n_steps, opts.band, p(first),
                         p(near), p(span), p(delta), p(mask), p(offsets), nt)
        x = torch.empty(s, 3)
        lib.fc_samples(nr, p(o), p(d), p(first), p(near), p(span), p(mask), p(offsets),
                       opts.n_steps, p(x), nt)
        split = int(offsets[n])
        raw = torch.empty(s, 4)
        attn = pad_lattice(self.head.lattice, volume.attn[0]).contiguous()
        self._native_field(lib, self.native_head, x[:split], raw[:split], attn,
                           self.native_head.b0)
        if torso and split < s:
            b = torch.addmm(self.torso.b0[None], volume.torso_code[:1].to(torch.float32),
                            self.torso.w_code)[0]
            self._native_field(lib, self.native_torso, x[split:], raw[split:], None, b)
        layers = torch.empty(nr, 5)
        block = max(1, min(opts.step_block, opts.band))
        lib.fc_composite(nr, p(first), p(near), p(span), p(delta), p(mask), p(offsets),
                         p(raw), p(x), n, float(self.head.box_lo[1]), float(self.head.fade),
                         opts.n_steps, opts.band, block, float(opts.early_stop), p(layers),
                         nt)
        return layer_over(layers.view(2, n, 5)) if torso else layers

    @staticmethod
    def _native_field(lib, nf: NativeField, x: torch.Tensor, raw: torch.Tensor,
                      lat: torch.Tensor | None, bias: torch.Tensor) -> None:
        """The field's raw outputs [S, 4] at x into ``raw``, in chunks: lookups in C,
        the MLP as GEMMs (activations are applied while compositing)."""
        chunk = NATIVE_CHUNK
        feat = x.new_empty(min(chunk, len(x)), nf.width)
        *hidden, (w_out, b_out) = [(nf.w0, bias), *nf.hidden]
        for i in range(0, len(x), chunk):
            xs = x[i:i + chunk]
            h = native_features(lib, nf, xs, feat[:len(xs)], lat)
            for k, (w, b) in enumerate(hidden):
                h = torch.addmm(b, h if k == 0 else F.silu(h), w)
            torch.addmm(b_out, F.silu(h), w_out, out=raw[i:i + len(xs)])

    def train_march(self, grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor,
                    frame: torch.Tensor, opts: SampleOptions,
                    generator: torch.Generator | None = None,
                    body: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainSamples:
        """A training step's samples: rays of several frames (``frame`` [N], head rays
        and the torso's ``body`` rays) marched as the reference marches them (jittered
        from ``generator`` as it draws), the band's occupied samples compacted once."""
        n = o.shape[0]
        tgrid = self.model.torso_grid
        torso = self.model.torso is not None and tgrid is not None and body is not None
        if torso:
            o, d, frame = torch.cat([o, body[0]]), torch.cat([d, body[1]]), frame.repeat(2)
        plan = self._plan([grid, tgrid] if torso else [grid], n, opts)
        rays, o, d, t, keep, delta = march(plan, o, d, generator if opts.jitter else None)
        sel = keep.view(-1).nonzero()[:, 0]
        ray = sel // plan.band
        x = torch.addcmul(o[ray], t.view(-1)[sel, None], d[ray])
        split = int(torch.searchsorted(ray, int(torch.searchsorted(rays, n))))
        return TrainSamples(plan, n, torso, rays, t, delta, sel, x,
                            frame.to(torch.int32)[rays].index_select(0, ray), split)

    def lattice_reads(self, s: TrainSamples) -> torch.Tensor:
        """bool [P]: the attention lattice points the head samples read (the only ones
        whose values, and so attention, the step needs)."""
        lat = Lattice.of(self.model.lattice_shape, s.x.device)
        idx = lattice_corners(lat, s.x[:s.split])[0]
        mark = torch.zeros(padded_size(lat), dtype=torch.bool, device=s.x.device)
        mark[idx.reshape(-1).long()] = True
        nx, ny, nz = lat.shape
        return mark.view(nz + 2, ny + 2, nx + 2)[1:-1, 1:-1, 1:-1].reshape(-1)

    def train_field(self, s: TrainSamples, volume: FrameCondition
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The field and compositing of ``train_march``'s samples, differentiable
        (weights, and rays when they are) -> (layers [L, N, 5]: the head's, then the
        torso's, each premultiplied rgb, alpha, depth; the mean squared attention offset
        of the head's samples).

        The reference's training forward (``reference.render_rays`` + ``render_torso_rays``)
        with static shapes: one field call per layer for all frames (each sample reads
        its frame's lattice rows / pose code), compositing over the band with the
        reference's early-termination mask. Weights are laid out afresh (differentiably).
        """
        model, plan = self.model, s.plan
        head = HeadField.of(model)
        attn = pad_lattice(head.lattice, volume.attn)
        lib = self.native_train(s.x, attn)
        head_fn = head_field_offsets if lib is None else partial(head_field_native, lib)
        torso_fn = torso_field if lib is None else partial(torso_field_native, lib)
        vals, off = head_fn(head, attn, s.x[:s.split],
                            s.frame[:s.split] * padded_size(head.lattice))
        if s.torso:
            tf = TorsoFieldW.of(model.torso)
            vals = torch.cat([vals, torso_fn(tf, volume.torso_code, s.x[s.split:],
                                             s.frame[s.split:])])
        r, band = len(s.rays), plan.band
        dense = s.x.new_zeros(r * band, 4).index_copy(0, s.sel, vals.to(s.x.dtype))
        dense = dense.view(r, band, 4)
        w, live = band_weights(plan, dense[..., 0], s.delta)
        layers = s.x.new_zeros(len(plan.lo), 5).index_copy(0, s.rays,
                                                            band_sums(w, dense, s.t))
        # The regulariser's mean runs over the samples the reference evaluates: not
        # those in blocks after its early termination.
        counted = live.view(-1)[s.sel[:s.split]]
        off_sq = ((off.float() ** 2).sum(1) * counted).sum() / counted.sum().clamp_min(1)
        return layers.view(-1, s.n, 5), off_sq

    def _field(self, fn: Callable, weights: object, cond: torch.Tensor, x: torch.Tensor
               ) -> torch.Tensor:
        m = x.shape[0]
        if m == 0:
            return x.new_zeros(0, 4)
        if self.compiled:  # padded to a bucket: few compiled shapes; cloned, as a CUDA
            # graph's output buffer is reused by its next replay
            return fn(weights, cond, F.pad(x, (0, 0, 0, _pad(m, BUCKET) - m)))[:m].clone()
        chunk = field_chunk(x.device)
        if not chunk or m <= chunk:
            return fn(weights, cond, x)
        return torch.cat([fn(weights, cond, x[i:i + chunk]) for i in range(0, m, chunk)])
