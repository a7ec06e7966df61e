"""The cepstra pocketsphinx's English acoustic model was trained on, computed our own way.

Why our own: the acoustic model in the pocketsphinx wheel (``backend.speech.acoustic``)
scores Sphinx MFCC features, and pocketsphinx's Python API takes audio or cepstra, never
returning either. So we compute the same front-end, vectorised over the whole recording:
pre-emphasis 0.97, a 410-sample (25.625 ms) Hamming window zero-padded to a 512-point FFT,
25 triangular mel filters of unit area between 130 and 6800 Hz with edges rounded to FFT
bins, the natural log (+1e-4), an orthonormal DCT-II to 13 cepstra and a sine lifter of
22 (the model's ``feat.params``). ``tests/speech/test_speech_acoustic.py`` checks it equals
pocketsphinx's own front-end (its ``fe_process_utt``, called through ctypes there) to
float precision.

Two choices differ from pocketsphinx's decoder, both towards what the model was trained
with: cepstral mean normalisation is the batch mean of the whole recording (the model's
``-cmn batch``; the decoder's default is a running estimate that starts from a guess), and
the frames sit on our 100 Hz hop grid (frame ``i`` centred on sample ``160 * i``, the
grid of ``backend.audio.features``) instead of starting at sample 0. The model's spectral
noise removal (``-remove_noise``, a per-frame recursive noise tracker) is left out: it is
sequential by nature and changed little on our tests (see docs/BENCHMARKS.md's motion notes).

Features: the 13 cepstra, their deltas ``c[t+2] - c[t-2]`` and double deltas
``(c[t+3] - c[t-1]) - (c[t+1] - c[t-3])``, edges repeated: Sphinx's ``1s_c_d_dd``, split
into three 13-dimensional streams as the model's ``-svspec 0-12/13-25/26-38`` says.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from shared.audio import SAMPLE_RATE

HOP = 160  # 10 ms, the hop grid of backend.audio.features
FRAME = 410  # 25.625 ms
N_FFT = 512
N_FILTERS = 25
LOWER_HZ = 130.0
UPPER_HZ = 6800.0
N_CEP = 13
LIFTER = 22
PRE_EMPHASIS = 0.97
LOG_FLOOR = 1e-4
BLOCK_FRAMES = 2000  # frames per FFT block: bounded memory for long recordings


def _mel(hz: float) -> float:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_inverse(mel: float) -> float:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def filterbank() -> np.ndarray:
    """float32[N_FFT // 2 + 1, N_FILTERS]: Sphinx's unit-area triangles, edges on bins."""
    step = SAMPLE_RATE / N_FFT
    lo, hi = _mel(LOWER_HZ), _mel(UPPER_HZ)
    width = (hi - lo) / (N_FILTERS + 1)
    fb = np.zeros((N_FFT // 2 + 1, N_FILTERS), np.float64)
    for i in range(N_FILTERS):
        edges = [np.floor(_mel_inverse((i + j) * width + lo) / step + 0.5) * step
                 for j in range(3)]
        for j in range(N_FFT // 2):  # the Nyquist bin is never inside a filter
            hz = j * step
            if hz < edges[0]:
                continue
            if hz > edges[2]:
                break
            rise = (hz - edges[0]) / (edges[1] - edges[0])
            fall = (edges[2] - hz) / (edges[2] - edges[1])
            fb[j, i] = min(rise, fall) * 2.0 / (edges[2] - edges[0])
    out = fb.astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _dct() -> np.ndarray:
    """float32[N_FILTERS, N_CEP]: orthonormal DCT-II with the sine lifter folded in."""
    k = np.arange(N_CEP)[None, :]
    j = np.arange(N_FILTERS)[:, None]
    m = np.cos(np.pi / N_FILTERS * k * (j + 0.5)) * np.sqrt(2.0 / N_FILTERS)
    m[:, 0] = np.sqrt(1.0 / N_FILTERS)
    lifter = 1.0 + LIFTER / 2.0 * np.sin(np.arange(N_CEP) * np.pi / LIFTER)
    out = (m * lifter[None, :]).astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    w = (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(FRAME) / (FRAME - 1))).astype(np.float32)
    w.setflags(write=False)
    return w


def n_frames_for(n_samples: int) -> int:
    """Frames whose centre lies inside the audio (the hop grid's count)."""
    return 0 if n_samples <= 0 else (n_samples - 1) // HOP + 1


def cepstra(samples: np.ndarray, start: int = 0) -> np.ndarray:
    """float32[T, 13] Sphinx MFCC of 16 kHz mono float ``samples`` in [-1, 1], frame ``i``
    centred on sample ``HOP * i`` (no mean normalisation). ``start`` = 0 computes every
    frame; frames are produced in blocks so memory stays bounded."""
    x = np.asarray(samples, np.float32) * np.float32(32768.0)  # Sphinx works in int16 units
    n = n_frames_for(len(x))
    pre = np.empty(len(x), np.float32)
    if len(x):
        pre[0] = x[0]
        pre[1:] = x[1:] - np.float32(PRE_EMPHASIS) * x[:-1]
    half = FRAME // 2
    padded = np.zeros(n * HOP + FRAME, np.float32)
    padded[half:half + len(pre)] = pre
    out = np.empty((n, N_CEP), np.float32)
    fb, dct, win = filterbank(), _dct(), _window()
    view = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP][:n]
    for a in range(start, n, BLOCK_FRAMES):
        frames = view[a:a + BLOCK_FRAMES] * win
        spec = np.fft.rfft(frames, N_FFT, axis=1)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
        out[a:a + len(frames)] = np.log(power @ fb + np.float32(LOG_FLOOR)) @ dct
    return out


def features(samples: np.ndarray) -> np.ndarray:
    """float32[T, 3, 13]: mean-normalised cepstra, deltas and double deltas (the model's
    three feature streams) on the hop grid."""
    c = cepstra(samples)
    if len(c) == 0:
        return np.zeros((0, 3, N_CEP), np.float32)
    c -= c.mean(axis=0, dtype=np.float64).astype(np.float32)
    pad = np.concatenate([np.repeat(c[:1], 3, 0), c, np.repeat(c[-1:], 3, 0)])
    t = len(c)

    def at(k: int) -> np.ndarray:
        return pad[3 + k:3 + k + t]

    delta = at(2) - at(-2)
    accel = (at(3) - at(-1)) - (at(1) - at(-3))
    return np.stack([c, delta, accel], axis=1)
