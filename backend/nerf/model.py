"""The subject's field: a head field (tri-planes warped by the face mesh + landmark
attention -> density and colour) and, in current subjects, a torso field of its own.

Per sample point x of the head (canonical head frame, metres, posed by this frame's
expression):

1. Mesh-guided deformation (``deformation.MeshWarp``, when ``cfg.mesh_warp``): x moves by
   the displacement of the 478-point face mesh near it, posed -> canonical (the
   subject's mean face). An expression the footage never showed still renders, following
   the geometry.
2. Landmark attention (``attention.LandmarkAttention``) over the frame's landmark tokens
   and its 52 ARKit blendshapes (``cfg.use_blendshapes``), evaluated ONCE PER FRAME on a
   coarse lattice (``lattice``) and trilinearly interpolated: a bounded residual offset
   and an appearance code (teeth, tongue, wrinkles, shading). Outside the lattice box
   (hair, the back of the head: rigid) both fade to zero.
3. Multi-resolution tri-plane features (``triplane.TriPlane``) at the warped point.
4. A small MLP on [features, appearance code] -> density (per cm) and RGB. No view
   direction input: a talking-head clip sees the face from a narrow cone of directions,
   and a Lambertian field extrapolates to new Blender cameras without view-dependent
   artefacts.

Old subjects (manifest version 2: no warp, no blendshapes, no torso, a bust box rigid
with the head) load with their own config and render as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .components.geometry import BOX_HI, BOX_LO, FADE
from .components.lattice import lattice_mask, lattice_points, lattice_shape, sample_lattice
from .components.occupancy import OccupancyGrid
from .fields.attention import LandmarkAttention
from .fields.deformation import MeshWarp
from .fields.tokens import token_ids
from .fields.torso import TorsoField
from .fields.triplane import TriPlane

N_LANDMARKS = 478


@dataclass(frozen=True)
class ModelConfig:
    plane_res: int = 256
    plane_channels: int = 16
    # (resolution, channels) per tri-plane level, finest first; empty: the two-level
    # (plane_res, plane_res / 4) layout of version-2 subjects.
    plane_levels: tuple[tuple[int, int], ...] = ()
    n_tokens: int = 124
    heads: int = 4
    head_dim: int = 16
    app_dim: int = 16
    hidden: int = 64
    mlp_layers: int = 1  # hidden layers; one (as EG3D's tri-plane decoder) halves CPU cost
    max_offset: float = 0.02  # metres: bound of the attention offset
    use_blendshapes: bool = False
    attn_spacing: float = 0.01  # metres between attention lattice points (~1 cm)
    mesh_warp: bool = False
    torso: bool = False
    box_lo: tuple[float, float, float] = BOX_LO  # the head field's box (head frame)
    box_hi: tuple[float, float, float] = BOX_HI
    fade: float = FADE  # density fades out over the box's lowest ``fade`` metres
    torso_res: int = 128
    torso_channels: int = 8

    def levels(self) -> tuple[tuple[int, int], ...]:
        if self.plane_levels:
            return tuple(tuple(lv) for lv in self.plane_levels)  # type: ignore[misc]
        return ((self.plane_res, self.plane_channels),
                (max(8, self.plane_res // 4), self.plane_channels))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        for key in ("box_lo", "box_hi"):
            if key in d:
                d[key] = tuple(d[key])
        if "plane_levels" in d:
            d["plane_levels"] = tuple(tuple(lv) for lv in d["plane_levels"])
        return cls(**d)


#: Current subjects: a head field that ends under the chin (the torso field takes the
#: neck and shoulders), conditioned on landmarks and blendshapes, with a three-level
#: tri-plane whose finest level resolves ~1 mm over the head. The mesh warp is opt-in
#: (``subject build --mesh-warp``): on d6 it moved lip corners and brows the footage
#: lacks further (lift 71 vs 76 %, drop 71 vs 38 %) but halved a commanded jaw drop
#: (37-50 % vs 109-131 %), and the jaw is what lip sync needs.
HEAD_BOX_LO = (-0.17, -0.22, -0.17)
HEAD_BOX_HI = (0.17, 0.21, 0.14)
CURRENT = ModelConfig(plane_levels=((320, 8), (96, 16), (24, 16)), use_blendshapes=True,
                      mesh_warp=False, torso=True, box_lo=HEAD_BOX_LO, box_hi=HEAD_BOX_HI,
                      fade=0.04, max_offset=0.01)


@dataclass
class FrameCondition:
    """One or more frames' conditioning, evaluated once per frame and shared by all the
    frame's rays: the attention lattice, the mesh-warp lattice, the torso's pose code."""

    attn: torch.Tensor  # [F, P, 3 + A]
    warp: torch.Tensor | None = None  # [F, Pw, 3]
    torso_code: torch.Tensor | None = None  # [F, 9]
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.attn.shape[0]

    def frame(self, f: int) -> FrameCondition:
        return FrameCondition(self.attn[f:f + 1],
                              None if self.warp is None else self.warp[f:f + 1],
                              None if self.torso_code is None else self.torso_code[f:f + 1])


class FaceNeRF(nn.Module):
    """The subject's field. ``forward`` evaluates the head at grouped samples (see
    ``render``); ``torso`` (a ``TorsoField``) is None for version-2 subjects."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.planes = TriPlane(cfg.levels())
        self.attn = LandmarkAttention(cfg)
        layers: list[nn.Module] = [nn.Linear(self.planes.out_dim + cfg.app_dim, cfg.hidden),
                                   nn.SiLU()]
        for _ in range(cfg.mlp_layers - 1):
            layers += [nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(cfg.hidden, 4))
        self.register_buffer("box_lo", torch.tensor(cfg.box_lo, dtype=torch.float32))
        self.register_buffer("box_hi", torch.tensor(cfg.box_hi, dtype=torch.float32))
        self.register_buffer("token_mean", torch.zeros(cfg.n_tokens, 3))
        self.lattice_shape = lattice_shape(cfg.attn_spacing)
        # Derived from the config, so not saved: old and new checkpoints stay loadable.
        self.register_buffer("lattice_pts", lattice_points(self.lattice_shape),
                             persistent=False)
        self.register_buffer("token_index", torch.tensor(token_ids()), persistent=False)
        self.warp = MeshWarp(torch.zeros(N_LANDMARKS, 3)) if cfg.mesh_warp else None
        self.torso = (TorsoField(cfg.torso_res, cfg.torso_channels) if cfg.torso else None)
        # The torso's occupancy grid (not a tensor of the state dict: saved beside it).
        self.torso_grid: OccupancyGrid | None = None

    def set_canonical(self, landmarks: torch.Tensor) -> None:
        """The canonical face [478, 3] (the subject's training mean): attention tokens
        are displacements from it, the mesh warp maps every frame onto it."""
        self.token_mean.copy_(landmarks[self.token_index.to(landmarks.device)].to(
            self.token_mean))
        if self.warp is not None:
            self.warp.set_canonical(landmarks)

    def tokens(self, landmarks: torch.Tensor, blendshapes: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of token landmarks [F, K, 3] (+ blendshapes [F, 52])."""
        if not self.cfg.use_blendshapes:
            blendshapes = None
        return self.attn.tokens(landmarks, self.token_mean, blendshapes)

    def condition(self, landmarks: torch.Tensor, blendshapes: torch.Tensor | None,
                  grid: OccupancyGrid | None, torso_code: torch.Tensor | None = None,
                  reads: torch.Tensor | None = None) -> FrameCondition:
        """Per-frame conditioning from the frames' face landmarks [F, 478, 3] (metres,
        head frame), blendshapes [F, 52] (or None) and the torso's pose code [F, 9].

        The attention lattice holds (offset, appearance) at ``lattice_pts``; with ``grid``
        only the lattice points a sample in an occupied cell can read are queried (the
        rest stay zero); with None, every lattice point (used when re-deriving occupancy).
        ``reads`` (bool [P]) narrows the query to the points a training step's samples
        read: the values they read are the same, the others are never read.
        """
        key, val = self.tokens(landmarks[:, self.token_index], blendshapes)
        f = landmarks.shape[0]
        pts = self.lattice_pts
        idx = self._lattice_index("attn", grid, pts, self.lattice_shape)
        if reads is not None:
            idx = idx[reads[idx]]
        if torch.is_grad_enabled():
            offset, app = self.attn(pts[idx][None].expand(f, -1, -1), key, val)
        else:
            offset, app = self.attn.attend(self._queries(idx, f), key, val)
        vals = torch.cat([offset, app], dim=-1).to(pts.dtype)  # [F, n, C]
        c = vals.shape[-1]
        attn = vals.new_zeros(f, len(pts), c).index_copy(1, idx, vals)
        warp = None
        if self.warp is not None:
            widx = self._lattice_index("warp", grid, self.warp.points, self.warp.shape)
            warp = self.warp.lattice(landmarks.float(), widx)
        if self.torso is not None and torso_code is None:
            torso_code = landmarks.new_zeros(f, 9)
        return FrameCondition(attn, warp, torso_code)

    def _queries(self, idx: torch.Tensor, f: int) -> list[tuple[torch.Tensor, torch.dtype]]:
        """The attention's queries at lattice points ``idx`` for ``f`` frames: they do not
        depend on the frame, so (without autograd) they are kept while the points, the
        query weights (by identity and version) and the autocast state stay the same."""
        pts, attn = self.lattice_pts, self.attn
        params = (attn.q_proj.weight, attn.q_proj.bias, attn.log_w)
        key = (f, torch.is_autocast_enabled(pts.device.type), [p._version for p in params])
        hit = self.__dict__.get("_query_cache")
        if (hit is None or hit[0] is not idx or hit[1] is not pts or hit[2] != key
                or any(a is not b for a, b in zip(hit[3], params, strict=True))):
            hit = (idx, pts, key, params, attn.queries(pts[idx][None].expand(f, -1, -1)))
            self.__dict__["_query_cache"] = hit
        return hit[4]

    def _lattice_index(self, name: str, grid: OccupancyGrid | None, pts: torch.Tensor,
                       shape: tuple[int, int, int]) -> torch.Tensor:
        """Indices of the lattice points a sample in an occupied cell can read (all with
        no grid), cached per occupancy tensor (a refresh makes a new one)."""
        if grid is None:
            return torch.arange(len(pts), device=pts.device)
        cache = self.__dict__.setdefault("_masks", {})
        hit = cache.get(name)
        # an index made under inference_mode (a render) cannot be saved for a backward:
        # outside it, such an index is made again
        if (hit is None or hit[0] is not grid.occ
                or (hit[1].is_inference() and not torch.is_inference_mode_enabled())):
            hit = (grid.occ, lattice_mask(grid, pts, shape).nonzero()[:, 0])
            cache[name] = hit
        return hit[1]

    def forward(self, x: torch.Tensor, cond: FrameCondition
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [F, S, 3] -> density per cm [F, S], rgb [F, S, 3], attention offset
        [F, S, 3]; ``cond`` is ``condition``'s output for the same F frames."""
        f, s, _ = x.shape
        c = sample_lattice(cond.attn, x, self.lattice_shape)  # [F*S, 3 + A]
        offset, app = c[:, :3], c[:, 3:]
        xd = x.reshape(-1, 3) + offset
        if self.warp is not None and cond.warp is not None:
            xd = xd + self.warp.sample(cond.warp, x).to(xd.dtype)
        xn = (xd - self.box_lo) / (self.box_hi - self.box_lo) * 2.0 - 1.0
        # The first layer on [planes, appearance] without concatenating them: one GEMM
        # per feature block into the same accumulator.
        first = self.mlp[0]
        h = torch.addmm(first.bias, app, first.weight[:, -app.shape[1]:].t())
        col = 0
        for feat in self.planes.levels_features(xn):
            h = torch.addmm(h, feat.to(h.dtype), first.weight[:, col:col + feat.shape[1]].t())
            col += feat.shape[1]
        raw = self.mlp[1:](h).view(f, s, 4)
        fade = ((x[..., 1] - self.box_lo[1]) / self.cfg.fade).clamp(0.0, 1.0)
        sigma = F.softplus(raw[..., 0].float() - 1.0) * fade
        rgb = torch.sigmoid(raw[..., 1:].float())
        return sigma, rgb, offset.view(f, s, 3)
