"""Model inputs from ``FrameFeatures``: one normalisation shared by training and animate.

Kept in one place because a train/inference mismatch in feature scaling silently ruins
lip sync; both sides call ``model_inputs``. Levels are absolute (dBFS) and the mel is
normalised with the audio front-end's fixed constants; training augments loudness by
±10 dB so ordinary recording levels all work. (A per-recording normalisation was tried:
it generalised no better on the held-out tails and opened the mouth more at pause edges.)
"""

from __future__ import annotations

import numpy as np

from backend.audio import FrameFeatures

N_PROSODY = 4  # energy, log-pitch, voiced, speech activity


def prosody(feats: FrameFeatures) -> np.ndarray:
    """float32[T, 4]: energy (~0 at -50 dBFS, 1 per 20 dB), log2 pitch re 150 Hz (0 when
    unvoiced), voiced flag, speech probability of the trained VAD."""
    energy = (np.maximum(feats.energy_db, -90.0) + 50.0) / 20.0
    f0 = np.where(feats.voiced & (feats.f0 > 0), np.log2(np.maximum(feats.f0, 1.0) / 150.0),
                  0.0)
    return np.stack([energy, f0, feats.voiced.astype(np.float32),
                     feats.vad_prob.astype(np.float32)], axis=1).astype(np.float32)


def model_inputs(feats: FrameFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(mel windows float32[T, W, 80], prosody float32[T, 4])."""
    return np.ascontiguousarray(feats.mel, dtype=np.float32), prosody(feats)
