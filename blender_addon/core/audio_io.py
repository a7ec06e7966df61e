"""Read the dialogue audio as mono float32 PCM at the sample rate the backend wants.

Why not soundfile: Blender's Python has no soundfile. Blender does ship ``aud``
(audaspace, the engine behind its sound strips), which decodes every format a sound
strip plays (WAV, FLAC, MP3, OGG, ...) through FFmpeg, resamples and downmixes, and
works in the headless PyPI ``bpy`` module too. When ``aud`` is missing (plain Python,
e.g. unit tests) the standard library ``wave`` module reads PCM WAV files.
"""

from __future__ import annotations

import math
import os
import wave

import numpy as np

from ..shared.audio import SAMPLE_RATE
from ..shared.errors import InputError

MAX_SECONDS = 30 * 60  # a dialogue line, not a feature film: refuse before eating RAM


def load_pcm(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 samples in [-1, 1] at ``sample_rate``."""
    if not path or not os.path.isfile(path):
        raise InputError(f"Audio file {path!r} does not exist",
                         "pick a sound strip whose file exists, or choose an audio file")
    if os.path.getsize(path) == 0:
        raise InputError(f"Audio file {os.path.basename(path)} is empty",
                         "choose a recording with sound in it")
    try:
        import aud  # Blender's audaspace; only present inside Blender
    except ImportError:
        pcm = _load_wave(path, sample_rate)
    else:
        pcm = _load_aud(aud, path, sample_rate)
    if pcm.size == 0:
        raise InputError(f"Audio file {os.path.basename(path)} has no samples",
                         "choose a recording with sound in it")
    if pcm.size > MAX_SECONDS * sample_rate:
        raise InputError(f"Audio file {os.path.basename(path)} is longer than "
                         f"{MAX_SECONDS // 60} minutes", "split the dialogue into shorter lines")
    if not np.all(np.isfinite(pcm)):
        raise InputError(f"Audio file {os.path.basename(path)} decodes to NaN/inf samples",
                         "re-export the audio as 16-bit PCM WAV")
    return pcm


def _load_aud(aud: object, path: str, sample_rate: int) -> np.ndarray:
    try:
        sound = aud.Sound(path)  # type: ignore[attr-defined]
        sound = sound.resample(sample_rate, False).rechannel(1)
        data = np.asarray(sound.data(), dtype=np.float32)
    except Exception as exc:  # aud raises plain errors for unreadable files
        raise InputError(f"Blender cannot decode {os.path.basename(path)} ({exc})",
                         "convert it to WAV or FLAC") from exc
    return np.ascontiguousarray(data.reshape(-1))


def _load_wave(path: str, sample_rate: int) -> np.ndarray:
    try:
        with wave.open(path, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InputError(f"{os.path.basename(path)} is not a PCM WAV file ({exc})",
                         "inside Blender any format works; outside, convert to WAV") from exc
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise InputError(f"{os.path.basename(path)} uses {8 * width}-bit samples",
                         "convert it to 16-bit PCM WAV")
    data = data.reshape(-1, channels).mean(axis=1)
    return resample_linear(data, rate, sample_rate)


def resample_linear(data: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (fallback path only; aud uses a proper filter)."""
    if rate == target or data.size == 0:
        return np.ascontiguousarray(data, dtype=np.float32)
    n_out = math.floor(data.size * target / rate)
    positions = np.arange(n_out, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(data.size), data).astype(np.float32)
