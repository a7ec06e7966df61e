"""Frame rates and seconds as exact fractions: how fps and audio offsets cross the wire.

A frame rate travels as text, ``"30000/1001"`` (``fps_text``), and is read back with
``parse_fps`` into a ``Fraction`` that the backend keeps end to end: a float would drift
by a frame over a long line at NTSC rates. Decimal NTSC rates typed by a person (29.97)
snap to their exact N*1000/1001 values, which is what cameras, editors and Blender
(fps_base 1.001) really use. ``parse_seconds`` reads an audio offset the same way.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .errors import InputError

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


def fps_text(fps: Fraction) -> str:
    """The wire's form of a frame rate: ``"30000/1001"``, or ``"24"`` for a whole rate."""
    return f"{fps.numerator}/{fps.denominator}" if fps.denominator != 1 else str(fps.numerator)
