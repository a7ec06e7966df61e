"""espeak-ng phones -> per-frame targets on the 27 jaw/mouth ARKit channels.

Why: real paired footage is ~2 minutes, too little to learn *when* lips close and jaws
open from audio without memorising the speakers. espeak-ng gives unlimited speech with
exact phone timings, and a phone says a lot about the mouth: bilabials close the lips,
open vowels drop the jaw, rounded vowels funnel. This module turns phone timings into
plausible mouth curves (a hand-written viseme table + coarticulation) that the speech VAE
can be trained on next to the real clips.

Coarticulation (a light Cohen-Massaro dominance model): on a 100 Hz grid every phone
holds its target with a dominance weight (closures and labiodentals dominate because the
lips *must* meet; /h/ and schwa barely matter and take their neighbours' shape), both are
smoothed with a Gaussian of ``SMOOTH_MS`` FWHM, and the target is the dominance-weighted
mean. The curve is then shifted ``ANTICIPATE_MS`` earlier: lips move towards a phone
before its sound starts.

Scale: values follow the real clips' solved weights (jawOpen median ~0.2, 95th pct
~0.65), so real and synthetic targets mean the same thing to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..speech.viseme_classes import CLASSES, DIPHTHONGS, normalise_phone, viseme_class
from .face_basis import MOUTH_CHANNELS

N_MOUTH = len(MOUTH_CHANNELS)
SMOOTH_MS = 70.0  # FWHM of the coarticulation kernel
ANTICIPATE_MS = 25.0  # targets lead the sound by this much
GRID_HZ = 100.0
_CH = {n: i for i, n in enumerate(MOUTH_CHANNELS)}


def _pose(**w: float) -> np.ndarray:
    """A 27-vector from channel weights; ``X_`` sets XLeft and XRight together."""
    v = np.zeros(N_MOUTH, np.float32)
    for name, val in w.items():
        if name.endswith("_"):
            v[_CH[name[:-1] + "Left"]] = v[_CH[name[:-1] + "Right"]] = val
        else:
            v[_CH[name]] = val
    return v


# viseme class (``speech.viseme_classes.CLASSES``) -> (target pose, dominance)
VISEMES: dict[str, tuple[np.ndarray, float]] = {
    "rest": (_pose(), 1.0),
    "bilabial": (_pose(jawOpen=0.04, mouthClose=0.3, mouthPress_=0.45), 6.0),
    "labiodental": (_pose(jawOpen=0.08, mouthRollLower=0.6, mouthUpperUp_=0.2,
                          mouthClose=0.1), 4.0),
    "dental": (_pose(jawOpen=0.14, mouthStretch_=0.1, mouthLowerDown_=0.1), 1.5),
    "alveolar": (_pose(jawOpen=0.12, mouthStretch_=0.12), 1.0),
    "sibilant": (_pose(jawOpen=0.06, mouthStretch_=0.2, mouthSmile_=0.1), 2.0),
    "postalveolar": (_pose(jawOpen=0.1, mouthFunnel=0.45, mouthPucker=0.25,
                           mouthUpperUp_=0.2), 2.5),
    "velar": (_pose(jawOpen=0.2), 0.7),
    "glottal": (_pose(jawOpen=0.2), 0.15),
    "r": (_pose(jawOpen=0.12, mouthPucker=0.3, mouthFunnel=0.2), 1.5),
    "w": (_pose(jawOpen=0.08, mouthPucker=0.65, mouthFunnel=0.3), 3.0),
    "j": (_pose(jawOpen=0.1, mouthStretch_=0.2, mouthSmile_=0.1), 1.0),
    "open": (_pose(jawOpen=0.6, mouthLowerDown_=0.3, mouthUpperUp_=0.15), 1.2),
    "open_mid": (_pose(jawOpen=0.42, mouthLowerDown_=0.2, mouthStretch_=0.1), 1.0),
    "mid": (_pose(jawOpen=0.3, mouthLowerDown_=0.1), 0.8),
    "schwa": (_pose(jawOpen=0.22), 0.4),
    "front_close": (_pose(jawOpen=0.14, mouthStretch_=0.3, mouthSmile_=0.15), 1.0),
    "rounded_open": (_pose(jawOpen=0.4, mouthFunnel=0.45, mouthPucker=0.2), 1.2),
    "rounded_mid": (_pose(jawOpen=0.28, mouthFunnel=0.4, mouthPucker=0.35), 1.2),
    "rounded_close": (_pose(jawOpen=0.12, mouthFunnel=0.4, mouthPucker=0.6), 1.5),
    "rhotic_vowel": (_pose(jawOpen=0.25, mouthFunnel=0.25, mouthPucker=0.15), 0.9),
}

def viseme_target(phone: str) -> np.ndarray:
    """The 27-channel target pose of one (non-diphthong) phone."""
    return VISEMES[viseme_class(phone)][0].copy()


def _segments(phones: Sequence[tuple[str, float]], end: float
              ) -> list[tuple[str, float, float]]:
    """(phone, start, stop) with diphthongs split in halves; the last phone ends at
    ``end`` (at most 0.25 s later, after which the mouth rests)."""
    out = []
    for i, (ph, t0) in enumerate(phones):
        t1 = phones[i + 1][1] if i + 1 < len(phones) else min(end, t0 + 0.25)
        if t1 <= t0:
            continue
        core = normalise_phone(ph)
        if core in DIPHTHONGS:
            a, b = DIPHTHONGS[core]
            mid = t0 + 0.5 * (t1 - t0)
            out += [(a, t0, mid), (b, mid, t1)]
        else:
            out.append((ph, t0, t1))
    return out


def _gauss_smooth(x: np.ndarray, fwhm_s: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    sigma = fwhm_s * GRID_HZ / 2.355
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest")


_POSES = np.stack([VISEMES[c][0] for c in CLASSES])  # [C, 27]
_DOMINANCE = np.array([VISEMES[c][1] for c in CLASSES], np.float32)  # [C]


def class_grid(phones: Sequence[tuple[str, float]], duration: float) -> np.ndarray:
    """float32[n, C] one-hot viseme class on a ``GRID_HZ`` grid (row ``i`` = time
    ``i / GRID_HZ``; diphthongs split in halves; rest before, between and after)."""
    n = int(np.ceil(duration * GRID_HZ)) + 1
    out = np.zeros((n, len(CLASSES)), np.float32)
    idx = np.zeros(n, np.int64)  # 0 = rest
    for ph, t0, t1 in _segments(phones, duration):
        i0 = round(t0 * GRID_HZ)
        idx[i0:max(round(t1 * GRID_HZ), i0 + 1)] = CLASSES.index(viseme_class(ph))
    out[np.arange(n), idx] = 1.0
    return out


def coarticulate(class_probs: np.ndarray, smooth_ms: float = SMOOTH_MS) -> np.ndarray:
    """Viseme class probabilities float32[n, C] on the grid -> the coarticulated mouth
    targets float32[n, 27]: each class's pose weighted by probability x dominance,
    smoothed, normalised (a one-hot input is the dominance model of the module doc; a
    distribution from the acoustic model blends the poses it finds likely)."""
    w = np.asarray(class_probs, np.float32) * _DOMINANCE[None, :]
    num = _gauss_smooth(w @ _POSES, smooth_ms / 1000)
    den = _gauss_smooth(w.sum(axis=1, keepdims=True), smooth_ms / 1000)
    return (num / np.maximum(den, 1e-6)).astype(np.float32)


def viseme_grid(phones: Sequence[tuple[str, float]], duration: float,
                smooth_ms: float = SMOOTH_MS) -> np.ndarray:
    """The coarticulated mouth targets float32[n, 27] on a ``GRID_HZ`` grid: row ``i``
    holds the target for time ``i / GRID_HZ - ANTICIPATE_MS`` (lips lead the sound)."""
    return coarticulate(class_grid(phones, duration), smooth_ms)


def viseme_track(phones: Sequence[tuple[str, float]], duration: float,
                 frame_times: np.ndarray, smooth_ms: float = SMOOTH_MS,
                 anticipate_ms: float = ANTICIPATE_MS) -> np.ndarray:
    """Per-frame mouth targets float32[T, 27] for phones ``(mnemonic, start seconds)``.

    ``frame_times`` are the audio times of the frame centres; before the first phone and
    after the last the mouth rests.
    """
    track = viseme_grid(phones, duration, smooth_ms)
    grid_t = np.arange(len(track)) / GRID_HZ - anticipate_ms / 1000
    t = np.clip(np.asarray(frame_times, np.float64), grid_t[0], grid_t[-1])
    out = np.stack([np.interp(t, grid_t, track[:, j]) for j in range(N_MOUTH)], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
