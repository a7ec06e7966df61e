"""Audio augmentation for the speech VAE: the real clips are few and each is recorded one
way (one room, one mic, some with a music bed), so a model trained on them alone learns
the recording instead of the speech. Every transform keeps the length (so video frames
and phone timings stay aligned) and the output finite and within [-1, 1].

Transforms, each applied at random: gain, a short exponential-decay reverb (room-ish),
a synthetic music bed (chords of harmonic tones with note envelopes and a soft pulse,
like the beds under d12/d14) at a random level under the speech, and white/pink noise at
a random SNR.
"""

from __future__ import annotations

import numpy as np

SEMITONE = 2.0 ** (1.0 / 12.0)
CHORDS = ((0, 4, 7), (0, 3, 7), (0, 5, 9), (0, 4, 7, 11), (0, 3, 7, 10), (0, 7, 12))


def _rms(x: np.ndarray) -> float:
    """RMS over the loud half of the signal, so long pauses do not lower the speech level."""
    if x.size == 0:
        return 0.0
    p = x.astype(np.float64) ** 2
    frames = p[: len(p) // 160 * 160].reshape(-1, 160).mean(axis=1) if len(p) >= 160 else p
    return float(np.sqrt(np.mean(frames[frames >= np.median(frames)]) + 1e-12))


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Convolve with decaying noise (RT60 0.1-0.6 s), mixed wet 15-50 %."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.1, 0.6)
    n = max(int(min(rt60, 0.5) * sr), 16)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    wet = fftconvolve(x, ir)[: len(x)]
    mix = rng.uniform(0.15, 0.5)
    return ((1 - mix) * x + mix * wet * (_rms(x) / (_rms(wet) + 1e-12))).astype(np.float32)


def music_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A chord progression of harmonic tones with attack/decay envelopes and a soft
    low pulse: not music, but music-shaped energy across the speech bands."""
    out = np.zeros(n, np.float64)
    t_all = np.arange(n) / sr
    root = 110.0 * SEMITONE ** rng.integers(-5, 8)
    pos = 0
    while pos < n:
        dur = int(rng.uniform(0.3, 1.2) * sr)
        seg = slice(pos, min(n, pos + dur))
        t = t_all[seg] - t_all[pos]
        env = np.minimum(t / 0.02, 1.0) * np.exp(-t * rng.uniform(0.5, 4.0))
        chord = CHORDS[rng.integers(len(CHORDS))]
        base = root * SEMITONE ** rng.choice([0, 2, 5, 7, 9, -3])
        for semis in chord:
            f = base * SEMITONE ** semis * rng.choice([1, 2, 4])
            for h in range(1, 4):
                if f * h < sr / 2 - 500:
                    out[seg] += env * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3)) / h
        pos += dur
    beat = rng.uniform(1.5, 2.5)  # beats per second
    phase = (t_all * beat) % 1.0
    out += 0.5 * np.exp(-phase * 12) * np.sin(2 * np.pi * 55 * t_all)
    return (out / (_rms(out) + 1e-12)).astype(np.float32)


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white or pink-ish (one-pole low-passed) noise."""
    from scipy.signal import lfilter

    w = rng.standard_normal(n)
    if rng.random() < 0.5:
        w = lfilter([1.0], [1.0, -rng.uniform(0.8, 0.98)], w)
    return (w / (np.sqrt(np.mean(w ** 2)) + 1e-12)).astype(np.float32)


def augment_audio(x: np.ndarray, sr: int, rng: np.random.Generator,
                  p_reverb: float = 0.35, p_music: float = 0.35, p_noise: float = 0.5
                  ) -> np.ndarray:
    """A randomly degraded copy of mono ``x`` (same length, finite, in [-1, 1])."""
    x = np.nan_to_num(np.asarray(x, np.float32))
    if x.size == 0:
        return x.copy()
    level = _rms(x)
    y = x.copy()
    if rng.random() < p_reverb:
        y = reverb(y, sr, rng)
    if rng.random() < p_music:
        y = y + music_bed(len(y), sr, rng) * level * 10 ** (-rng.uniform(3, 22) / 20)
    if rng.random() < p_noise:
        y = y + noise(len(y), rng) * level * 10 ** (-rng.uniform(8, 40) / 20)
    gain_db = rng.uniform(-14, 6)
    y = y * 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:  # a real recorder would have limited, not wrapped
        y = y * (0.99 / peak)
    return np.nan_to_num(y).astype(np.float32)
