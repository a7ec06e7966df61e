"""Landmark Deformation Model (RealTalk's stage 2) and the emotion classifier it is
trained against (DICE-Talk's emotion-discrimination objective).

The LDM turns the speech face into the emotional face. Its tokens are LANDMARKS: 16 key
points (lip corners and centres, lids, brows, cheeks), each carrying its speech
displacement and canonical position, plus one emotion token. Multi-head self-attention
runs across these 17 tokens in every frame (so the brows can see what the mouth does),
then a learned temporal filter smooths the offsets over time. The published
code attends over a sequence of length one, i.e. not at all; here attention has real
tokens to weigh. ResNet blocks are FiLM-conditioned on the emotion embedding.

Output: a blendshape offset added to the speech weights. There is no pull towards
training landmarks (RealTalk blends 20 % back, which weakens the emotion), and identity
cannot drift because landmarks are always ``neutral + basis(weights)``: the emotion moves
expression channels only, never the face's proportions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shared.emotions import EMOTIONS
from shared.landmarks import canonical_face

from .emotion import EMB_DIM
from .face_basis import N_SHAPES, basis

TOKEN_IDS: tuple[int, ...] = (
    61, 0, 291, 17, 13, 14,  # lip corners, outer and inner lip centres
    159, 145, 386, 374,  # upper and lower lids
    107, 70, 336, 300,  # inner and outer brows
    205, 425,  # cheeks
)


class FiLMResBlock(nn.Module):
    """x + MLP(LayerNorm(x) * (1 + gamma(e)) + beta(e)) on token features."""

    def __init__(self, dim: int, cond: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.film = nn.Linear(cond, 2 * dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(e).unsqueeze(-2).chunk(2, dim=-1)
        h = self.norm(x) * (1 + gamma) + beta
        return x + self.fc2(F.gelu(self.fc1(h)))


class TokenAttention(nn.Module):
    """Pre-norm multi-head self-attention across the tokens of each frame."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, k, d = x.shape
        flat = self.norm(x).reshape(b * t, k, d)
        out, _ = self.attn(flat, flat, flat, need_weights=False)
        return x + out.reshape(b, t, k, d)


class TimeMix(nn.Module):
    """Learned temporal filter on the per-frame offsets [B, T, C] (smooth onsets, no
    frame-to-frame jitter); a full conv over the 52 channels, cheap at one vector a frame."""

    def __init__(self, ch: int, kernel: int = 9) -> None:
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x.transpose(1, 2)).transpose(1, 2)


class LandmarkDeformationModel(nn.Module):
    """(speech weights [B, T, 52], emotion embedding [B, T, E]) -> offsets [B, T, 52]."""

    def __init__(self, dim: int = 32, blocks: int = 2) -> None:
        super().__init__()
        ids = list(TOKEN_IDS)
        self.register_buffer("token_basis", torch.from_numpy(
            (basis()[:, ids, :] * 100.0).reshape(N_SHAPES, -1).copy()))  # cm per unit
        pos = canonical_face().vertices[ids].astype(np.float32) * 20.0
        self.register_buffer("token_pos", torch.from_numpy(pos.copy()))
        self.n_tokens = len(ids)
        self.tok_in = nn.Linear(6, dim)
        self.tok_emb = nn.Parameter(torch.randn(len(ids) + 1, dim) * 0.02)
        self.emo_in = nn.Linear(EMB_DIM, dim)
        self.res = nn.ModuleList([FiLMResBlock(dim, EMB_DIM) for _ in range(blocks)])
        self.attn = nn.ModuleList([TokenAttention(dim) for _ in range(blocks)])
        self.head = nn.Linear((len(ids) + 1) * dim, N_SHAPES)
        self.time = TimeMix(N_SHAPES)

    def forward(self, speech: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = speech.shape
        disp = (speech @ self.token_basis).reshape(b, t, self.n_tokens, 3)
        pos = self.token_pos.expand(b, t, -1, -1)
        tokens = self.tok_in(torch.cat([disp, pos], dim=-1))
        tokens = torch.cat([tokens, self.emo_in(emb).unsqueeze(2)], dim=2) + self.tok_emb
        for res, attn in zip(self.res, self.attn, strict=True):
            tokens = attn(res(tokens, emb))
        return torch.tanh(self.time(self.head(tokens.reshape(b, t, -1))))


def apply_offsets(speech: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Emotional weights: speech + offsets, kept in [0, 1]."""
    return (speech + offsets).clamp(0.0, 1.0)


class EmotionClassifier(nn.Module):
    """Which emotion does an expression show? Input: the expression part of a face
    (weights minus the speech weights) [.., 52]; output logits [.., 8]. Trained on FACS
    prototypes at random intensities, then frozen to judge the LDM's output."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_SHAPES, hidden), nn.GELU(),
                                 nn.Linear(hidden, len(EMOTIONS)))

    def forward(self, expression: torch.Tensor) -> torch.Tensor:
        return self.net(expression * 4.0)
