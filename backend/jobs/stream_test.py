"""``stream_test``: stream N synthetic frames under credit — for tests and the bench.

``pattern="index"`` fills frame i with ``i % 251`` so a client can check every frame
arrived intact and in order; ``pattern="static"`` reuses one prepared buffer so the
benchmark measures the protocol, not numpy.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from shared.errors import InputError

from . import registry
from .base import Job, JobContext

MAX_FRAMES = 100_000
MAX_FRAME_BYTES = 64 * 1024 * 1024
DTYPES = ("uint8", "float16", "float32")


@registry.register
class StreamTestJob(Job):
    kind = "stream_test"
    description = "Stream synthetic frames (protocol tests and benchmarks)"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        n = _int(p.get("n_frames", 10), "n_frames", 0, MAX_FRAMES)
        shape = p.get("shape", [4, 4, 4])
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
                or not all(isinstance(s, int) and 0 < s <= 8192 for s in shape)):
            raise InputError(f"shape {shape!r} is invalid", "give 1-4 positive integers")
        dtype = p.get("dtype", "uint8")
        if dtype not in DTYPES:
            raise InputError(f"dtype {dtype!r} is not offered", f"use one of {DTYPES}")
        if math.prod(shape) * np.dtype(dtype).itemsize > MAX_FRAME_BYTES:
            raise InputError("frames would be too large", f"keep them under {MAX_FRAME_BYTES} B")
        delay = float(p.get("delay_s", 0.0))
        if not 0.0 <= delay <= 1.0:
            raise InputError(f"delay_s {delay} is out of range", "use 0..1 seconds")
        fail_at = p.get("fail_at")
        static = np.zeros(shape, dtype) if p.get("pattern") == "static" else None
        for i in range(n):
            if fail_at is not None and i == fail_at:
                raise InputError(f"stream_test was asked to fail at frame {i}",
                                 "this is a deliberate test failure")
            if delay:
                time.sleep(delay)
            ctx.check_cancelled()
            frame = static if static is not None else np.full(shape, i % 251, dtype)
            ctx.frame({"index": i}, [frame])
            if i % 16 == 0:
                ctx.progress((i + 1) / n)
        return {"frames": n}


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InputError(f"{name}={value!r} is out of range", f"use an integer {lo}..{hi}")
    return value
