"""Load any audio the user hands us into one canonical form: mono float32 at a fixed rate.

Everything downstream (features, frame timing, the motion model) assumes that form, so
every way audio can be unusable is caught here, once, with a message that names the
problem and what to do about it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.audio import SAMPLE_RATE
from shared.errors import InputError

DEFAULT_MAX_SECONDS = 1800.0
#: Peak below this (about -60 dBFS) counts as "no sound at all": lip sync would be empty.
SILENCE_PEAK = 10.0 ** (-60.0 / 20.0)
#: Plausible sample rates; anything outside is a unit mistake (kHz vs Hz) or garbage.
MIN_RATE = 4000
MAX_RATE = 768000

_SUPPORTED = ("WAV, FLAC, OGG/Vorbis, Opus, MP3 (libsndfile >= 1.1), AIFF or another "
              "libsndfile format")
_CONVERT = ("convert it to WAV, e.g. `ffmpeg -i input.ext -ac 1 -ar 16000 output.wav`, "
            "and use that file")

AudioSource = str | os.PathLike | tuple[np.ndarray, int]


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples at ``sample_rate``; read-only so features can't be corrupted."""

    samples: np.ndarray
    sample_rate: int
    source: str = "<array>"

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.dtype != np.float32:
            raise InputError(
                f"Audio samples must be 1-D float32, got {self.samples.dtype} {self.samples.shape}",
                "build Audio with load_audio(), which converts any input")
        self.samples.setflags(write=False)

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds (float; use ``n_samples``/``sample_rate`` for exact maths)."""
        return self.n_samples / self.sample_rate


def check_sample_rate(rate: object, what: str) -> int:
    """Return ``rate`` as an int, or raise: a wrong rate silently shifts every lip movement."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.integer | np.floating):
        raise InputError(f"{what} must be a number of samples per second, got {rate!r}",
                         "pass an integer such as 16000, 44100 or 48000")
    value = float(rate)
    if not math.isfinite(value) or value != int(value) or not MIN_RATE <= value <= MAX_RATE:
        raise InputError(
            f"{what} {rate!r} is not a usable sample rate",
            f"pass a whole number of Hz between {MIN_RATE} and {MAX_RATE} (e.g. 16000, 44100)")
    return int(value)


def _check_max_seconds(max_seconds: float) -> float:
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float):
        raise InputError(f"max_seconds must be a number, got {max_seconds!r}",
                         "pass a positive number of seconds, e.g. 1800")
    if not math.isfinite(max_seconds) or max_seconds <= 0:
        raise InputError(f"max_seconds must be positive and finite, got {max_seconds!r}",
                         "pass a positive number of seconds, e.g. 1800")
    return float(max_seconds)


def _too_long(name: str, seconds: float, max_seconds: float) -> InputError:
    return InputError(
        f"Audio {name} is {seconds:.1f} s long, over the limit of {max_seconds:g} s",
        "split it into shorter pieces (e.g. one per shot or line) or raise max_seconds")


def _read_file(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """Read a file as float32 [n, channels], checking its length before decoding it all."""
    if not path.exists():
        raise InputError(f"Audio file not found: {path}",
                         "check the path (or re-pick the sound strip's file) and try again")
    if path.is_dir():
        raise InputError(f"Audio path is a folder, not a file: {path}",
                         "pick an audio file inside it")
    try:
        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
            raise _too_long(path.name, info.frames / info.samplerate, max_seconds)
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"Could not read audio file {path.name}: it is corrupt or not a supported format "
            f"({exc})",
            f"use {_SUPPORTED}; or {_CONVERT}") from exc
    return data, int(rate)


def _as_float_array(samples: object) -> np.ndarray:
    """Turn user arrays (int PCM, float, channels-first or -last) into float32 [n, channels]."""
    arr = np.asarray(samples)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        scale = float(max(abs(info.min), info.max))
        arr = arr.astype(np.float32) / scale
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    else:
        raise InputError(f"Audio samples have unsupported type {arr.dtype}",
                         "pass real-valued float or integer PCM samples")
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"Audio samples must be 1-D or 2-D, got shape {arr.shape}",
                         "pass samples shaped [n] (mono) or [n, channels]")
    # Channels-first ([channels, n], as torch code produces) is transposed.
    if arr.shape[0] <= 16 < arr.shape[1]:
        arr = arr.T
    return arr


def _check_content(data: np.ndarray, rate: int, name: str, max_seconds: float) -> None:
    if data.shape[0] == 0 or data.size == 0:
        raise InputError(f"Audio {name} is empty (0 samples)",
                         "pick a file or sound strip that actually contains sound")
    if data.shape[0] / rate > max_seconds:
        raise _too_long(name, data.shape[0] / rate, max_seconds)
    finite = np.isfinite(data)
    if not finite.all():
        first = int(np.argmin(finite.all(axis=1)))
        bad = int(data.size - np.count_nonzero(finite))
        raise InputError(
            f"Audio {name} contains {bad} NaN/infinite sample(s), first at {first / rate:.3f} s",
            f"re-export the audio; or {_CONVERT}")
    peak = float(np.max(np.abs(data)))
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise InputError(
            f"Audio {name} is silent (peak {level} dBFS, below -60 dBFS): nothing to lip-sync",
            "check the right file/strip is selected, not muted, and has the dialogue on it")


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Exact rational resampling: output length is ceil(n * rate_out / rate_in)."""
    if rate_in == rate_out:
        return samples
    from scipy.signal import resample_poly  # lazy: slow to import, only when resampling

    g = math.gcd(rate_in, rate_out)
    out = resample_poly(samples, rate_out // g, rate_in // g)
    return out.astype(np.float32, copy=False)


def load_audio(source: AudioSource, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = DEFAULT_MAX_SECONDS) -> Audio:
    """Load a path or a ``(samples, rate)`` pair as mono float32 at ``sample_rate``."""
    target = check_sample_rate(sample_rate, "Target sample rate")
    limit = _check_max_seconds(max_seconds)
    if isinstance(source, tuple):
        if len(source) != 2:
            raise InputError(f"Audio tuple must be (samples, sample_rate), got {len(source)} items",
                             "pass (numpy_array, rate_in_hz)")
        data = _as_float_array(source[0])
        rate = check_sample_rate(source[1], "Input sample rate")
        name = "<array>"
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        data, rate = _read_file(path, limit)
        name = path.name
    else:
        raise InputError(f"Unsupported audio source of type {type(source).__name__}",
                         "pass a file path or a (samples, sample_rate) tuple")
    _check_content(data, rate, name, limit)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    out = resample(mono, rate, target)
    # Own the buffer: a caller's array must not change (or be frozen) under us.
    out = np.array(out, dtype=np.float32, copy=True) if np.shares_memory(out, data) else out
    return Audio(samples=out, sample_rate=target, source=str(source) if name != "<array>" else name)
