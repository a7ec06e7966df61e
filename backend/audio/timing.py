"""Exact video-frame ↔ audio-sample timing at any frame rate.

Lip sync that is one frame late after ten minutes is broken, so every frame → sample/hop
mapping here is done with ``Fraction``s or integer arithmetic, never accumulated floats.
NTSC rates typed as decimals (29.97) are snapped to their exact N*1000/1001 values,
because that is what cameras, editors and Blender (fps_base 1.001) really use.

Convention: video frame ``first_frame + k`` covers audio seconds
``[start_offset + k/fps, start_offset + (k+1)/fps)``. ``start_offset`` is thus the audio
time at the start of ``first_frame``; it is negative when the sound starts after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from shared.errors import InputError

MAX_FPS = 1000
#: NTSC rates are N*1000/1001 for these N; decimals within NTSC_TOLERANCE snap to them.
NTSC_BASES = (24, 30, 48, 60, 120)
NTSC_TOLERANCE = 0.005

FpsLike = int | float | str | Fraction | tuple
_FPS_FIX = "use a positive frame rate up to 1000, e.g. 24, 25, 29.97, 30000/1001 or 60"


def _bad_fps(value: object, why: str) -> InputError:
    return InputError(f"Frame rate {value!r} is invalid: {why}", _FPS_FIX)


def _exact(value: object) -> Fraction:
    """Exact Fraction of an int/float/str/Fraction; floats go through their shortest repr.

    Raises ValueError with a short reason, which callers turn into an InputError.
    """
    if isinstance(value, bool):
        raise ValueError("it is a boolean, not a number")
    if isinstance(value, np.integer):
        return Fraction(int(value))
    if isinstance(value, Fraction | int):
        return Fraction(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError("it is not a finite number")
        return Fraction(repr(float(value)))
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            pass
        try:
            number = float(value)
        except ValueError:
            raise ValueError("it is not a number") from None
        return _exact(number)
    raise ValueError(f"a {type(value).__name__} is not a number")


def _snap_ntsc(fps: Fraction) -> Fraction:
    for base in NTSC_BASES:
        exact = Fraction(base * 1000, 1001)
        if abs(fps - exact) < NTSC_TOLERANCE:
            return exact
    return fps


def parse_fps(value: FpsLike) -> Fraction:
    """Frame rate as an exact Fraction.

    Accepts ints, floats, strings ("24", "29.97", "30000/1001"), Fractions (kept as given)
    and Blender-style ``(fps, fps_base)`` pairs. Decimal NTSC approximations snap to
    N*1000/1001 exactly.
    """
    try:
        if isinstance(value, Fraction):
            fps = value
        elif isinstance(value, tuple) and len(value) == 2:
            base = _exact(value[1])
            if base <= 0:
                raise ValueError("fps_base must be positive")
            fps = _snap_ntsc(_exact(value[0]) / base)
        else:
            fps = _exact(value)
            if not (isinstance(value, str) and "/" in value):
                fps = _snap_ntsc(fps)
    except ValueError as exc:
        raise _bad_fps(value, str(exc)) from None
    if fps <= 0:
        raise _bad_fps(value, "it must be greater than 0")
    if fps > MAX_FPS:
        raise _bad_fps(value, f"it is above {MAX_FPS} fps, which no video uses")
    return fps


def parse_seconds(value: object, what: str = "start_offset") -> Fraction:
    """Exact seconds from a Fraction/int/float/str (floats via their shortest decimal)."""
    try:
        return _exact(value)
    except ValueError as exc:
        raise InputError(f"{what} {value!r} is invalid: {exc}",
                         "pass seconds as a number, e.g. 0.5 or '1001/30000'") from None


def offset_for_strip(strip_start_frame: float | int | Fraction, first_frame: int,
                     fps: FpsLike) -> Fraction:
    """``start_offset`` for a Blender sound strip starting at ``strip_start_frame``.

    The audio time at ``first_frame`` is how many frames after the strip start it is.
    """
    start = parse_seconds(strip_start_frame, "strip start frame")
    return (Fraction(first_frame) - start) / parse_fps(fps)


def _floor_linear(n0: int, step: int, denom: int, count: int) -> np.ndarray:
    """floor((n0 + step*k) / denom) for k in [0, count): int64 maths when it cannot overflow."""
    limit = 1 << 62
    if max(abs(n0), abs(n0 + step * count), denom) < limit:
        return (n0 + step * np.arange(count, dtype=np.int64)) // denom
    return np.array([(n0 + step * k) // denom for k in range(count)], dtype=np.int64)


@dataclass(frozen=True)
class FrameClock:
    """Maps video frame numbers to exact audio times, samples and feature hops."""

    fps: Fraction
    sample_rate: int
    first_frame: int = 0
    start_offset: Fraction = Fraction(0)

    @classmethod
    def create(cls, fps: FpsLike, sample_rate: int, first_frame: int = 0,
               start_offset: object = 0) -> FrameClock:
        """Validate and normalise user values (fps strings, float offsets) into a clock."""
        if isinstance(first_frame, bool) or not isinstance(first_frame, int | np.integer):
            raise InputError(f"first_frame must be a whole frame number, got {first_frame!r}",
                             "pass an integer frame number such as 1")
        return cls(parse_fps(fps), int(sample_rate), int(first_frame),
                   parse_seconds(start_offset))

    def start_time(self, frame: int) -> Fraction:
        """Audio time (s) where ``frame`` starts."""
        return self.start_offset + (frame - self.first_frame) / self.fps

    def centre_time(self, frame: int) -> Fraction:
        """Audio time (s) of the middle of ``frame``."""
        return self.start_offset + (Fraction(frame - self.first_frame) + Fraction(1, 2)) / self.fps

    def start_sample(self, frame: int) -> int:
        """Index of the sample whose span contains the frame start (may be <0 or past the end)."""
        return math.floor(self.start_time(frame) * self.sample_rate)

    def centre_hop(self, frame: int, hop: int) -> int:
        """Nearest feature hop (hop i centred on sample i*hop) to the frame's centre."""
        return math.floor(self.centre_time(frame) * self.sample_rate / hop + Fraction(1, 2))

    def n_frames_for(self, n_samples: int) -> int:
        """Frames from ``first_frame`` on that start before the audio ends."""
        remaining = Fraction(n_samples, self.sample_rate) - self.start_offset
        return max(0, math.ceil(remaining * self.fps))

    def _terms(self, k0: int) -> tuple[int, int, int, int, int]:
        a, b = self.start_offset.numerator, self.start_offset.denominator
        p, q = self.fps.numerator, self.fps.denominator
        return a, b, p, q, k0 - self.first_frame

    def start_samples(self, first: int, count: int) -> np.ndarray:
        """Vectorised ``start_sample`` for frames ``first .. first+count-1`` (exact)."""
        a, b, p, q, k0 = self._terms(first)
        sr = self.sample_rate
        # (a/b + k*q/p) * sr = (a*p*sr + b*k*q*sr) / (b*p)
        return _floor_linear(a * p * sr + b * k0 * q * sr, b * q * sr, b * p, count)

    def centre_hops(self, first: int, count: int, hop: int) -> np.ndarray:
        """Vectorised ``centre_hop`` for frames ``first .. first+count-1`` (exact)."""
        a, b, p, q, k0 = self._terms(first)
        sr = self.sample_rate
        # (a/b + (2k+1)q/(2p)) * sr/hop + 1/2 over the common denominator 2*b*p*hop
        n0 = 2 * a * p * sr + b * (2 * k0 + 1) * q * sr + b * p * hop
        return _floor_linear(n0, 2 * b * q * sr, 2 * b * p * hop, count)

    def centre_times(self, first: int, count: int) -> np.ndarray:
        """Frame-centre times in seconds (float64, for display and interpolation only)."""
        k = np.arange(count, dtype=np.float64) + (first - self.first_frame) + 0.5
        return float(self.start_offset) + k * (self.fps.denominator / self.fps.numerator)
