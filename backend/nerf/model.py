"""The field: tri-plane features + landmark attention -> density and colour.

Per sample point x (canonical head frame, metres):

1. Landmark attention. The query is a positional encoding of x; keys/values come from
   the frame's tokens (``tokens.token_ids`` landmarks: position + displacement from the
   subject's mean + a learned id) plus ONE blendshape token (the 52 ARKit weights, or a
   learned "absent" vector for subjects trained without them). Every head's logits get a
   geometric bias ``-w_h |x - p_k|^2`` (the blendshape token has none) with a learned
   per-head width, initialised from 1 cm to 8 cm: a point on the lip then looks first at
   lip landmarks, a point on the brow at brow landmarks, while wide heads see the whole
   face. The bias is folded into the dot product (extra query/key columns) so a single
   fused ``scaled_dot_product_attention`` call does it: no [samples x tokens] mask is
   ever materialised. Output: a bounded deformation offset (the point is looked up at
   x + dx: jaw and lip motion) and an appearance code (teeth, tongue, wrinkles, shading
   that deformation cannot explain).
2. Tri-plane features at x + dx: three axis-aligned planes (XY, XZ, YZ) at two
   resolutions (fine R, coarse R/4; the coarse level makes early training fast and fills
   views the fine level saw rarely), bilinearly sampled and concatenated.
3. A small MLP on [features, appearance code] -> density (per cm) and RGB. No view
   direction input: a talking-head clip sees the face from a narrow cone of directions,
   and a Lambertian field extrapolates to new Blender cameras without view-dependent
   artefacts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.blendshapes import ARKIT_BLENDSHAPES

from .geometry import BOX_HI, BOX_LO, FADE

N_BLENDSHAPES = len(ARKIT_BLENDSHAPES)
POS_SCALE = 10.0  # attention works in decimetres: keeps the geometric bias well scaled


@dataclass(frozen=True)
class ModelConfig:
    plane_res: int = 256
    plane_channels: int = 16
    n_tokens: int = 124
    heads: int = 4
    head_dim: int = 16
    app_dim: int = 16
    hidden: int = 64
    max_offset: float = 0.02  # metres: jaw drop + lip motion
    use_blendshapes: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def posenc(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """[..., D] -> [..., D * (1 + 2 n_freqs)] sin/cos encoding (x expected ~[-1, 1])."""
    freqs = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xf = x[..., None] * freqs
    return torch.cat([x, torch.sin(xf).flatten(-2), torch.cos(xf).flatten(-2)], dim=-1)


class TriPlane(nn.Module):
    """Three feature planes per level; x in [-1, 1]^3 -> concatenated features."""

    def __init__(self, res: int, channels: int) -> None:
        super().__init__()
        self.levels = nn.ParameterList([
            nn.Parameter(torch.randn(3, channels, r, r) * 0.1)
            for r in (res, max(8, res // 4))])
        self.out_dim = 2 * 3 * channels

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        # Plane 0 = XY, 1 = XZ, 2 = YZ; grid_sample wants (u, v) = (column, row) in [-1, 1].
        coords = torch.stack([xn[:, [0, 1]], xn[:, [0, 2]], xn[:, [1, 2]]])  # [3, S, 2]
        grid = coords[:, :, None, :].to(self.levels[0].dtype)
        feats = []
        for planes in self.levels:
            f = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border",
                              align_corners=False)  # [3, C, S, 1]
            feats.append(f[..., 0].permute(2, 0, 1).reshape(xn.shape[0], -1))
        return torch.cat(feats, dim=-1)


class LandmarkAttention(nn.Module):
    """Each sample attends over the frame's landmark tokens + one blendshape token."""

    PE_Q = 4
    PE_K = 3

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, d = cfg.heads, cfg.head_dim
        self.h, self.d = h, d
        self.max_offset = cfg.max_offset
        self.token_id = nn.Embedding(cfg.n_tokens, 16)
        tok_in = 3 * (1 + 2 * self.PE_K) + 3 + 16
        self.tok_mlp = nn.Sequential(nn.Linear(tok_in, 64), nn.SiLU(), nn.Linear(64, 2 * h * d))
        self.bs_mlp = nn.Sequential(nn.Linear(N_BLENDSHAPES, 64), nn.SiLU(),
                                    nn.Linear(64, 2 * h * d))
        self.bs_absent = nn.Parameter(torch.zeros(2 * h * d))
        self.q_proj = nn.Linear(3 * (1 + 2 * self.PE_Q), h * d)
        sigmas_dm = torch.tensor([0.1 * 2.0 ** i for i in range(h)])  # 1, 2, 4, 8 cm
        self.log_w = nn.Parameter(torch.log(1.0 / (2.0 * sigmas_dm ** 2)))
        self.out = nn.Linear(h * d, 3 + cfg.app_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def tokens(self, landmarks: torch.Tensor, mean: torch.Tensor,
               blendshapes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame keys [F, H, K+1, d+5] and values [F, H, K+1, d].

        ``landmarks`` [F, K, 3] are the token landmarks (metres, head frame), ``mean``
        [K, 3] the subject's mean; ``blendshapes`` [F, 52] or None.
        """
        f, k, _ = landmarks.shape
        p = landmarks * POS_SCALE
        ids = self.token_id.weight[None].expand(f, -1, -1)
        disp = (landmarks - mean) * 100.0  # centimetres: the expression signal
        kv = self.tok_mlp(torch.cat([posenc(p, self.PE_K), disp, ids], dim=-1))
        if blendshapes is None:
            bs = self.bs_absent[None, None].expand(f, 1, -1)
        else:
            bs = self.bs_mlp(blendshapes)[:, None]
        kv = torch.cat([kv, bs], dim=1)  # [F, K+1, 2hd]
        key, val = kv.view(f, k + 1, 2, self.h, self.d).permute(2, 0, 3, 1, 4)
        # Geometric columns: [p, |p|^2, 1] for landmarks, zeros for the blendshape token.
        geo = torch.cat([p, (p * p).sum(-1, keepdim=True), torch.ones_like(p[..., :1])], -1)
        geo = torch.cat([geo, torch.zeros_like(geo[:, :1])], dim=1)  # [F, K+1, 5]
        key = torch.cat([key, geo[:, None].expand(-1, self.h, -1, -1)], dim=-1)
        return key, val

    def forward(self, x: torch.Tensor, key: torch.Tensor, val: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [F, S, 3] metres -> (offset [F, S, 3] metres, appearance [F, S, A])."""
        f, s, _ = x.shape
        p = x * POS_SCALE
        q = self.q_proj(posenc(p, self.PE_Q)).view(f, s, self.h, self.d).transpose(1, 2)
        w = self.log_w.exp().to(x.dtype)[None, :, None, None]  # [1, H, 1, 1]
        pq = p[:, None]  # [F, 1, S, 3]
        sq = (pq * pq).sum(-1, keepdim=True)
        # q'.k' = q.k/sqrt(d) + 2w x.p - w|p|^2 - w|x|^2 = q.k/sqrt(d) - w|x - p|^2
        q = torch.cat([q / math.sqrt(self.d), (2 * w * pq).expand(-1, self.h, -1, -1),
                       (-w).expand(f, -1, s, 1), -w * sq], dim=-1)
        o = F.scaled_dot_product_attention(q.to(key.dtype), key, val, scale=1.0)
        o = self.out(o.transpose(1, 2).reshape(f, s, self.h * self.d).to(x.dtype))
        return torch.tanh(o[..., :3]) * self.max_offset, o[..., 3:]


class FaceNeRF(nn.Module):
    """The subject's field. ``forward`` takes grouped samples (see ``render``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.planes = TriPlane(cfg.plane_res, cfg.plane_channels)
        self.attn = LandmarkAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(self.planes.out_dim + cfg.app_dim, cfg.hidden),
                                 nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(),
                                 nn.Linear(cfg.hidden, 4))
        lo, hi = torch.tensor(BOX_LO), torch.tensor(BOX_HI)
        self.register_buffer("box_lo", lo)
        self.register_buffer("box_hi", hi)
        self.register_buffer("token_mean", torch.zeros(cfg.n_tokens, 3))

    def tokens(self, landmarks: torch.Tensor, blendshapes: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cfg.use_blendshapes:
            blendshapes = None
        return self.attn.tokens(landmarks, self.token_mean, blendshapes)

    def forward(self, x: torch.Tensor, key: torch.Tensor, val: torch.Tensor,
                anchors: torch.Tensor | None = None, members: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [F, S, 3] -> density per cm [F, S], rgb [F, S, 3], offset [F, S, 3].

        With ``anchors`` (indices into S) and ``members`` ([S] -> anchor row), attention
        runs only at the anchor points and each sample uses its anchor's offset and
        appearance code (``render.SampleOptions.attn_group``).
        """
        f, s, _ = x.shape
        if anchors is None:
            offset, app = self.attn(x, key, val)
        else:
            offset, app = self.attn(x[:, anchors], key, val)
            offset, app = offset[:, members], app[:, members]
        xd = (x + offset).reshape(-1, 3)
        xn = (xd - self.box_lo) / (self.box_hi - self.box_lo) * 2.0 - 1.0
        feat = self.planes(xn).to(app.dtype)
        raw = self.mlp(torch.cat([feat, app.reshape(f * s, -1)], dim=-1)).view(f, s, 4)
        fade = ((x[..., 1] - self.box_lo[1]) / FADE).clamp(0.0, 1.0)
        sigma = F.softplus(raw[..., 0].float() - 1.0) * fade
        rgb = torch.sigmoid(raw[..., 1:].float())
        return sigma, rgb, offset
