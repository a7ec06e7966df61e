"""Emotion bank (after DICE-Talk) and the optional "auto" emotion-from-audio estimator.

Each of the 8 emotions is a Gaussian (mean, log-variance) in a small embedding space, not
a fixed vector: training samples from it, so the deformation model learns a *range* of
each expression and a mix of emotions lands between learned regions instead of on an
unseen point. A learnable bank of vector-quantised prototype vectors is shared by all
emotions; each frame's embedding attends over the bank (multi-head attention), which lets
related emotions (fear and surprise, anger and disgust) share what they learn. Intensity
scales the final embedding, so intensity 0 is exactly "no emotion".
"""

from __future__ import annotations

import numpy as np
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

AUTO_WINDOW_S = 2.0


def estimate_emotion_from_prosody(prosody: np.ndarray, fps: float
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """A per-frame emotion track guessed from the voice: (weights [T, 8], intensity [T]).

    Honest scope: no emotion-labelled audio exists in this project, so this is a
    transparent prosody rule, not a trained classifier. Over a sliding ~2 s window it
    reads arousal from loudness and pitch movement relative to the whole recording:
    lively, loud, varied pitch -> happy (with some surprise at the peaks); quiet, flat and
    low -> sad; otherwise neutral. Intensity is capped at 0.6, because a guess should not
    drive a full expression. Use explicit keys for anything that matters.
    """
    from scipy.ndimage import uniform_filter1d

    p = np.asarray(prosody, dtype=np.float64)
    n = len(p)
    weights = np.zeros((n, len(EMOTIONS)), np.float32)
    weights[:, 0] = 1.0
    intensity = np.zeros(n, np.float32)
    active = p[:, 3] > 0.5
    if n == 0 or active.sum() < max(3, 0.05 * n):
        return weights, intensity
    win = max(3, round(AUTO_WINDOW_S * fps))
    energy = uniform_filter1d(np.where(active, p[:, 0], np.nan_to_num(p[active, 0].min())),
                              win, mode="nearest")
    voiced = p[:, 2] > 0.5
    pitch = np.where(voiced, p[:, 1], 0.0)
    mean_pitch = uniform_filter1d(pitch, win) / np.maximum(uniform_filter1d(
        voiced.astype(float), win), 1e-3)
    var_pitch = np.sqrt(np.maximum(uniform_filter1d(pitch**2, win) / np.maximum(
        uniform_filter1d(voiced.astype(float), win), 1e-3) - mean_pitch**2, 0.0))

    def z(x: np.ndarray) -> np.ndarray:
        ref = x[active]
        return (x - ref.mean()) / (ref.std() + 1e-6)

    arousal = 0.5 * z(energy) + 0.3 * z(var_pitch) + 0.2 * z(mean_pitch)
    happy = np.clip(arousal - 0.3, 0.0, 1.5) / 1.5
    sad = np.clip(-arousal - 0.5, 0.0, 1.5) / 1.5
    surprised = np.clip(arousal - 1.2, 0.0, 1.0) * 0.5
    weights[:, EMOTIONS.index("happy")] = happy
    weights[:, EMOTIONS.index("sad")] = sad
    weights[:, EMOTIONS.index("surprised")] = surprised
    weights[:, 0] = np.clip(1.0 - happy - sad, 0.0, 1.0)
    intensity[:] = np.clip(np.maximum(happy, sad) * 0.6, 0.0, 0.6) + 0.0
    intensity = uniform_filter1d(intensity, win, mode="nearest").astype(np.float32)
    return weights.astype(np.float32), intensity
