"""Per-hop audio features: log-mel, energy, pitch/voicing and speech activity.

Speech activity comes from a trained voice-activity detector (Silero, ``vad``), not from
loudness: music and a quiet talker are told apart by what the sound is, not how loud.

Pure numpy/scipy so the backend needs no torchaudio/librosa and gives identical numbers
on every platform. The hop grid is fixed: hop ``i`` is centred on sample ``i * HOP``
(time ``i / 100`` s), which makes mapping video-frame times to hops exact integer maths.
Long audio is processed in chunks of hops so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shared.audio import SAMPLE_RATE
from shared.errors import InputError

from .loading import Audio
from .vad import voice_activity

N_MELS = 80
WIN = 400  # 25 ms analysis window
HOP = 160  # 10 ms hop -> 100 hops per second
N_FFT = 1024  # zero-padded so the narrow low mel bands each span >= 3 FFT bins
FMIN = 55.0  # below: mains hum and rumble, no speech information
FMAX = 7600.0  # just under Nyquist, away from the anti-alias roll-off

#: Floor for every dB value: digital silence is -100 dB, never -inf.
DB_FLOOR = -100.0
#: Fixed mel normalisation: ``(mel_db - MEL_DB_CENTER) / MEL_DB_SCALE``. Spectra are scaled
#: so a full-scale sine peaks near 0 dB; conversational speech at typical recording levels
#: then lands roughly in [-2, 2]. Fixed (not per-clip) so a model trained on one clip sees the
#: same scale on any other, and silence always maps to the same value ``MEL_SILENCE``.
MEL_DB_CENTER = -60.0
MEL_DB_SCALE = 20.0
MEL_SILENCE = (DB_FLOOR - MEL_DB_CENTER) / MEL_DB_SCALE

F0_MIN = 60.0
F0_MAX = 400.0
PITCH_WIN = 400  # YIN integration window (25 ms)
YIN_THRESHOLD = 0.15  # first dip of the normalised difference below this is the period
VOICED_MAX_DIP = 0.3  # dips above this are not periodic enough to call voiced
VOICED_MIN_DB = -55.0  # quieter than this is never voiced (noise is aperiodic anyway)

CHUNK_HOPS = 1000  # 10 s per chunk: ~35 MB of temporaries, and no slower than bigger chunks


@dataclass(frozen=True, eq=False)
class AudioFeatures:
    """Features on the 100 Hz hop grid; ``mel`` already normalised with the fixed constants."""

    mel: np.ndarray  # [H, 80] float32
    energy_db: np.ndarray  # [H] float32, RMS dBFS, floored at DB_FLOOR
    f0: np.ndarray  # [H] float32, Hz, 0 where unvoiced
    voiced: np.ndarray  # [H] bool
    vad: np.ndarray  # [H] bool, speech (trained VAD, ``backend.audio.vad``)
    vad_prob: np.ndarray  # [H] float32, the VAD's speech probability
    sample_rate: int = SAMPLE_RATE
    hop: int = HOP

    @property
    def n_hops(self) -> int:
        return int(self.energy_db.shape[0])


def n_hops_for(n_samples: int) -> int:
    """Hops whose centre lies inside the audio: centres 0, HOP, 2*HOP, ... <= n - 1."""
    return 0 if n_samples <= 0 else (n_samples - 1) // HOP + 1


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Unit-peak triangular HTK-mel filters [n_mels, n_fft//2+1]; cached and read-only.

    Unit peak keeps the "full-scale sine is about 0 dB" calibration in every band.
    """
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(fmin)), _hz_to_mel(np.array(fmax)),
                                   n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lo) / (mid - lo)
    falling = (hi - freqs[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=4)
def _window(n: int) -> np.ndarray:
    w = np.hanning(n + 1)[:-1].astype(np.float32)  # periodic Hann
    w.setflags(write=False)
    return w


def _frames(samples: np.ndarray, start_hop: int, n_hops: int, length: int) -> np.ndarray:
    """[n_hops, length] frames centred on samples (start_hop + j) * HOP, zero outside audio."""
    half = length // 2
    first = start_hop * HOP - half
    last = (start_hop + n_hops - 1) * HOP - half + length
    lo, hi = max(first, 0), min(last, samples.shape[0])
    seg = np.zeros(last - first, dtype=np.float32)
    if hi > lo:
        seg[lo - first:hi - first] = samples[lo:hi]
    return np.lib.stride_tricks.sliding_window_view(seg, length)[::HOP]


def _mel_and_energy(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    win = _window(WIN)
    energy = np.mean(frames * frames, axis=1)
    spec = np.fft.rfft(frames * win, n=N_FFT, axis=1)
    # Scale so a full-scale sine peaks near 0 dB regardless of window/FFT size.
    power = (spec.real ** 2 + spec.imag ** 2) * (2.0 / win.sum()) ** 2
    mel = power.astype(np.float32) @ mel_filterbank().T
    mel_db = 10.0 * np.log10(np.maximum(mel, 10.0 ** (DB_FLOOR / 10.0)))
    energy_db = 10.0 * np.log10(np.maximum(energy, 10.0 ** (DB_FLOOR / 10.0)))
    mel_norm = (mel_db - MEL_DB_CENTER) / MEL_DB_SCALE
    return mel_norm.astype(np.float32), energy_db.astype(np.float32)


def _yin(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised YIN: f0 [n] in Hz and the depth of the chosen dip (lower = more periodic)."""
    tau_min = int(sample_rate // F0_MAX)
    tau_max = int(np.ceil(sample_rate / F0_MIN))
    n = frames.shape[0]
    size = 1 << int(np.ceil(np.log2(frames.shape[1])))
    head = frames[:, :PITCH_WIN]
    # acf[t] = sum_j x[j] x[j+t] for j < PITCH_WIN; no wrap-around since size >= frame length.
    acf = np.fft.irfft(np.conj(np.fft.rfft(head, size, axis=1)) * np.fft.rfft(frames, size, axis=1),
                       size, axis=1)[:, :tau_max + 2]
    sq = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(frames * frames, axis=1)], axis=1)
    taus = np.arange(tau_max + 2)
    energy_shift = sq[:, taus + PITCH_WIN] - sq[:, taus]
    diff = np.maximum(energy_shift[:, :1] + energy_shift - 2.0 * acf, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    band = cmnd[:, tau_min:tau_max + 1]
    # First dip below the threshold, then walk down to its local minimum; else global minimum.
    below = band < YIN_THRESHOLD
    rising = np.empty_like(below)
    rising[:, :-1] = band[:, 1:] > band[:, :-1]
    rising[:, -1] = True
    has_dip = below.any(axis=1)
    first = np.argmax(below, axis=1)
    after = np.arange(band.shape[1])[None, :] >= first[:, None]
    local_min = np.argmax(after & rising, axis=1)
    best = np.where(has_dip, local_min, np.argmin(band, axis=1))
    rows = np.arange(n)
    tau = best + tau_min
    # Parabolic interpolation on the normalised difference for sub-sample period precision.
    left = cmnd[rows, np.maximum(tau - 1, 1)]
    mid = cmnd[rows, tau]
    right = cmnd[rows, tau + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom),
                     0.0)
    period = tau + np.clip(shift, -1.0, 1.0)
    return (sample_rate / period).astype(np.float32), band[rows, best].astype(np.float32)


def _pitch(samples: np.ndarray, start_hop: int, n_hops: int) -> tuple[np.ndarray, np.ndarray]:
    tau_max = int(np.ceil(SAMPLE_RATE / F0_MIN))
    frames = _frames(samples, start_hop, n_hops, PITCH_WIN + tau_max + 2)
    return _yin(frames, SAMPLE_RATE)


def compute_audio_features(audio: Audio, chunk_hops: int = CHUNK_HOPS) -> AudioFeatures:
    """All per-hop features of ``audio`` (must be 16 kHz), computed chunk by chunk."""
    if audio.sample_rate != SAMPLE_RATE:
        raise InputError(f"Features need {SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz",
                         f"load it with load_audio(..., sample_rate={SAMPLE_RATE})")
    samples = audio.samples
    total = n_hops_for(samples.shape[0])
    mel = np.empty((total, N_MELS), np.float32)
    energy = np.empty(total, np.float32)
    f0 = np.empty(total, np.float32)
    dip = np.empty(total, np.float32)
    for start in range(0, total, max(1, chunk_hops)):
        count = min(chunk_hops, total - start)
        mel[start:start + count], energy[start:start + count] = _mel_and_energy(
            _frames(samples, start, count, WIN))
        f0[start:start + count], dip[start:start + count] = _pitch(samples, start, count)
    voiced = (dip < VOICED_MAX_DIP) & (energy > VOICED_MIN_DB)
    f0 = np.where(voiced, f0, 0.0).astype(np.float32)
    prob, active = voice_activity(samples, total)
    return AudioFeatures(mel=mel, energy_db=energy, f0=f0, voiced=voiced, vad=active,
                         vad_prob=prob)
