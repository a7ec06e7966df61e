"""Reading untrusted job parameters: every number checked for type, finiteness and
range, with a ``bad_input`` error that names the parameter and says what to send.

The server rejects non-finite numbers anywhere in ``params`` before a job starts
(:func:`non_finite_path`); jobs read their own parameters with :func:`integer` and
:func:`number`, so ``first_frame = -2**63`` or ``delay_s = [1]`` is a clear refusal,
never an ``internal`` error from deep inside the computation.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InputError

_MISSING: Any = object()
#: Deeper params are refused rather than walked (no job nests more than a few levels).
MAX_DEPTH = 32


def non_finite_path(params: Any) -> tuple[str, str] | None:
    """Where ``params`` holds NaN or ±inf (or nests too deep): ``(path, what)``, or None."""
    stack: list[tuple[str, Any, int]] = [("params", params, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, repr(value)
        if isinstance(value, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return path, f"nested deeper than {MAX_DEPTH} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(item, float | dict | list | tuple):
                    label = f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]"
                    stack.append((label[:120], item, depth + 1))
    return None


def integer(params: dict, name: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
    """``params[name]`` as a whole number in ``[lo, hi]`` (``default`` when absent)."""
    return _read(params, name, lo, hi, default, whole=True)


def number(params: dict, name: str, lo: float, hi: float, default: Any = _MISSING) -> Any:
    """``params[name]`` as a finite number in ``[lo, hi]`` (``default`` when absent)."""
    return _read(params, name, lo, hi, default, whole=False)


def _read(params: dict, name: str, lo: float, hi: float, default: Any, whole: bool) -> Any:
    kind = "a whole number" if whole else "a number"
    span = f"{lo}..{hi}" if whole else f"{lo:g}..{hi:g}"
    value = params.get(name, default)
    if value is _MISSING:
        raise InputError(f"{name} is missing", f"send {name} as {kind} {span}")
    if value is default:
        return value
    types = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, types):
        raise InputError(f"{name} must be {kind}, got {_show(value)}",
                         f"send {name} as {kind} {span}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{name}={value!r} is out of range", f"send {kind} {span}")
    return value


def _show(value: Any) -> str:
    from .messages import clip

    return f"{clip(value)} ({type(value).__name__})"
