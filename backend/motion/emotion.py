"""Emotion bank (after DICE-Talk); the optional "auto" estimator is ``emotion_from_audio``.

Each of the 8 emotions is a Gaussian (mean, log-variance) in a small embedding space, not
a fixed vector: training samples from it, so the deformation model learns a *range* of
each expression and a mix of emotions lands between learned regions instead of on an
unseen point. A learnable bank of vector-quantised prototype vectors is shared by all
emotions; each frame's embedding attends over the bank (multi-head attention), which lets
related emotions (fear and surprise, anger and disgust) share what they learn. Intensity
scales the final embedding, so intensity 0 is exactly "no emotion".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from shared.emotions import EMOTIONS

EMB_DIM = 32
BANK_SIZE = 16


class EmotionBank(nn.Module):
    """weights [B, T, 8] + intensity [B, T] -> embedding [B, T, EMB_DIM]."""

    def __init__(self, dim: int = EMB_DIM, bank: int = BANK_SIZE, heads: int = 4) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.randn(len(EMOTIONS), dim) * 0.5)
        self.logvar = nn.Parameter(torch.full((len(EMOTIONS), dim), -3.0))
        self.bank = nn.Parameter(torch.randn(bank, dim) * 0.5)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, weights: torch.Tensor, intensity: torch.Tensor,
                sample: bool = False) -> torch.Tensor:
        b, t, _ = weights.shape
        proto = self.mean.expand(b, t, -1, -1)
        if sample:  # one draw per sequence and emotion: a consistent take, not frame noise
            eps = torch.randn(b, 1, *self.mean.shape, device=weights.device)
            proto = proto + eps * torch.exp(0.5 * self.logvar)
        e = torch.einsum("btk,btkd->btd", weights, proto)
        bank = self.bank.expand(b, -1, -1)
        shared, _ = self.attn(self.norm(e).reshape(b, t, -1), bank, bank, need_weights=False)
        return (e + shared) * intensity[..., None]

    def regulariser(self) -> torch.Tensor:
        """VQ codebook + commitment loss (each emotion mean near a bank vector) and a weak
        KL of each Gaussian towards N(0, I), so the space stays compact."""
        d = torch.cdist(self.mean, self.bank)
        nearest = self.bank[d.argmin(dim=1)]
        vq = F.mse_loss(nearest, self.mean.detach()) + 0.25 * F.mse_loss(self.mean,
                                                                         nearest.detach())
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1 - self.logvar).mean()
        return vq + 1e-3 * kl


# --------------------------------------------------------------------- "auto" mode
# The estimator lives in its own module (features, classifier, track); animate imports it
# from here.
from .emotion_from_audio import estimate_emotion_from_prosody  # noqa: E402,F401
