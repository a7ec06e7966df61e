"""Exact video-frame ↔ audio-sample timing at any frame rate (rates and offsets are read
by ``shared.frame_rate``).

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
from shared.frame_rate import FpsLike, parse_fps, parse_seconds


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
