"""Phones + mel + prosody -> mouth blendshapes: a small conditional VAE over time
(RealTalk's stage 1).

Why a VAE: the same line can be spoken with many mouth motions; a latent ``z`` per
``LATENT_FRAMES`` block (~0.6 s) carries that style, so ``variation > 0`` gives natural
takes and ``variation = 0`` (``z`` = prior mean) gives the deterministic average
performance. The style is real because training asks for it: every training window's
target is re-delivered with random jaw and lip activation curves (JALI's two dials,
changing every ~0.6 s, see ``delivery``) that the audio cannot explain, so only ``z``
can carry them, and ``z`` reaches the output through an explicit style head (``style``:
z -> jaw and lip gains) as well as the decoder; and the KL has free bits (``FREE_BITS``
nats per latent dimension are not penalised), so the encoder has no reason to collapse
``z`` to the prior (the earlier weights ended at KL 0.0015, and seeds changed the mouth
by 1e-4; a first run of this recipe with constant per-window gains and no style head
still changed it by only 2 %).

Encoder: each frame's mel window is summarised by 1-D convolutions over its 33 hops (the
±160 ms around the frame, which covers coarticulation), joined with prosody and the phone
evidence (``phones``: the coarticulated viseme curve of the phones heard or aligned, and
where a bilabial or labiodental sounds), then mixed over time by dilated non-causal
residual convolutions (±14 frames). The posterior q(z | audio, target) sees the target
motion only in training; the decoder maps (audio features, z) to the 27 jaw/mouth
channels through a sigmoid and the style gains, clamped to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .face_basis import MOUTH_CHANNELS
from .features import N_PROSODY
from .phones import N_PHONE_FEATURES

LATENT_DIM = 8
LATENT_FRAMES = 16  # one z per 16 frames (~0.6 s), interpolated between block centres
FREE_BITS = 0.5  # nats per latent dimension the KL does not charge for
STYLE_LOG_RANGE = 0.5  # style gains reach exp(±0.5) = 0.61 .. 1.65
N_MOUTH = len(MOUTH_CHANNELS)
JAW_CHANNELS = tuple(MOUTH_CHANNELS.index(n) for n in (
    "jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight"))
MOUTH_CLOSE = MOUTH_CHANNELS.index("mouthClose")
LOGIT_RANGE = 6.0  # sigmoid(-6) = 0.0025: closed enough; beyond it gradients fade


class TemporalBlock(nn.Module):
    """Residual dilated 1-D conv over time (input/output [B, C, T]), same length."""

    def __init__(self, ch: int, dilation: int, dropout: float = 0.25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(ch, ch, 5, padding=2 * dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)
        self.norm = nn.LayerNorm(ch)  # per frame: a chunk's result must not depend on
        self.drop = nn.Dropout(dropout)  # what else is in the chunk (as GroupNorm would)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return x + self.conv2(self.drop(F.gelu(self.conv1(h))))


class MelEncoder(nn.Module):
    """Mel window [N, W, 80] -> per-frame vector [N, out]."""

    def __init__(self, out: int, n_mels: int = 80, ch: int = 48) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, ch, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(ch, ch, 3, stride=2, padding=1)
        self.proj = nn.Linear(2 * ch, out)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel.transpose(1, 2)))
        x = F.gelu(self.conv2(x))
        return self.proj(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


def expand_latent(z_blocks: torch.Tensor, n_frames: int, offset: int = 0) -> torch.Tensor:
    """Per-block latents [B, K, D] -> per-frame [B, T, D] by linear interpolation between
    block centres, so style changes smoothly (no step every 16 frames). ``offset`` is the
    global frame index of the first frame, so chunked inference matches one long pass."""
    k = z_blocks.shape[1]
    t = (torch.arange(n_frames, dtype=torch.float32, device=z_blocks.device) + offset
         - (LATENT_FRAMES - 1) / 2) / LATENT_FRAMES
    t = t.clamp(0, k - 1)
    lo = t.floor().long().clamp(max=k - 1)
    hi = (lo + 1).clamp(max=k - 1)
    a = (t - lo.float())[None, :, None]
    return z_blocks[:, lo] * (1 - a) + z_blocks[:, hi] * a


class SpeechVAE(nn.Module):
    """Mel windows + prosody -> mouth channel weights [B, T, 27] in [0, 1]."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.mel = MelEncoder(hidden)
        self.inp = nn.Linear(hidden + N_PROSODY + N_PHONE_FEATURES, hidden)
        self.enc = nn.Sequential(*[TemporalBlock(hidden, d) for d in (1, 2, 4)])
        # q(z | audio, target): two layers, so it can compare the target with what the
        # audio predicts (a gain is a ratio; one linear layer could not read it)
        self.post = nn.Sequential(nn.Conv1d(hidden + N_MOUTH, hidden, 5, padding=2),
                                  nn.GELU(), nn.Conv1d(hidden, 2 * LATENT_DIM, 5, padding=2))
        self.dec_in = nn.Conv1d(hidden + LATENT_DIM, hidden, 1)
        self.dec = nn.Sequential(*[TemporalBlock(hidden, d) for d in (1, 2)])
        self.out = nn.Conv1d(hidden, N_MOUTH, 1)
        self.style = nn.Linear(LATENT_DIM, 2)  # z -> JALI jaw and lip activation

    def encode_audio(self, mel: torch.Tensor, prosody: torch.Tensor, phones: torch.Tensor
                     ) -> torch.Tensor:
        """[B, T, W, 80], [B, T, 4], [B, T, 29] -> audio features [B, hidden, T]."""
        b, t = mel.shape[:2]
        m = self.mel(mel.reshape(b * t, *mel.shape[2:])).reshape(b, t, -1)
        h = self.inp(torch.cat([m, prosody, phones], dim=-1)).transpose(1, 2)
        return self.enc(h)

    def posterior(self, h: torch.Tensor, target: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block posteriors (mean, logvar) [B, K, D] from audio features and the target."""
        stats = self.post(torch.cat([h, target.transpose(1, 2)], dim=1))  # [B, 2D, T]
        b, _, t = stats.shape
        k = -(-t // LATENT_FRAMES)
        stats = F.pad(stats, (0, k * LATENT_FRAMES - t), mode="replicate")
        stats = stats.reshape(b, 2 * LATENT_DIM, k, LATENT_FRAMES).mean(-1).transpose(1, 2)
        mean, logvar = stats.chunk(2, dim=-1)
        return mean, logvar.clamp(-8, 4)

    def decode_logits(self, h: torch.Tensor, z_frames: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid mouth channels [B, T, 27]."""
        x = self.dec_in(torch.cat([h, z_frames.transpose(1, 2)], dim=1))
        return self.out(self.dec(x)).transpose(1, 2)

    def style_gains(self, z_frames: torch.Tensor) -> torch.Tensor:
        """Per-frame (jaw, lip) activation [B, T, 2] from the style latent (1 at z = 0
        only approximately: the deterministic take uses the prior mean)."""
        return torch.exp(STYLE_LOG_RANGE * torch.tanh(self.style(z_frames)))

    def apply_style(self, mouth: torch.Tensor, z_frames: torch.Tensor) -> torch.Tensor:
        g = self.style_gains(z_frames)
        scale = g[..., 1:2].expand_as(mouth).clone()
        scale[..., list(JAW_CHANNELS)] = g[..., :1]
        scale[..., MOUTH_CLOSE] = 1.0
        return (mouth * scale).clamp(0.0, 1.0)

    def decode(self, h: torch.Tensor, z_frames: torch.Tensor) -> torch.Tensor:
        return self.apply_style(torch.sigmoid(self.decode_logits(h, z_frames)), z_frames)

    def forward(self, mel: torch.Tensor, prosody: torch.Tensor, phones: torch.Tensor,
                target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (prediction [B, T, 27], KL per latent dimension [D] averaged
        over blocks, logit excess).

        The excess (mean squared logit beyond +-``LOGIT_RANGE``) must be penalised: with
        many closed-mouth targets the logits drift far negative, the sigmoid saturates,
        its gradient vanishes and the mouth never opens again (seen in an 80-epoch run).
        """
        h = self.encode_audio(mel, prosody, phones)
        mean, logvar = self.posterior(h, target)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        z_frames = expand_latent(z, h.shape[-1])
        logits = self.decode_logits(h, z_frames)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean(dim=(0, 1))
        excess = F.relu(logits.abs() - LOGIT_RANGE).pow(2).mean()
        return self.apply_style(torch.sigmoid(logits), z_frames), kl, excess
