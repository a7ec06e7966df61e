"""``synthetic_frames``: stream N synthetic frames under credit.

A product job, not a test: any client can check a connection and the protocol end to
end with it (every frame verifiable, no model loaded), and the protocol bench uses it as
a load that measures the transport alone. (It was called ``stream_test``.)

``pattern="index"`` fills frame i with ``i % 251`` so a client can check every frame
arrived intact and in order; ``pattern="static"`` reuses one prepared buffer so the
benchmark measures the protocol, not numpy; ``pattern="echo"`` sends the first input
array back as every frame (both directions of a transport in one job).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from shared.errors import InputError
from shared.protocol.messages import clip
from shared.protocol.params import integer, number

from . import registry
from .base import Job, JobContext

MAX_FRAMES = 100_000
MAX_FRAME_BYTES = 64 * 1024 * 1024
DTYPES = ("uint8", "float16", "float32")


@registry.register
class SyntheticFramesJob(Job):
    kind = "synthetic_frames"
    description = "Stream synthetic frames (connection and protocol checks, transport load)"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.params
        n = integer(p, "n_frames", 0, MAX_FRAMES, default=10)
        shape = p.get("shape", [4, 4, 4])
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 8192
                           for s in shape)):
            raise InputError(f"shape {clip(shape)} is invalid", "give 1-4 positive integers")
        dtype = p.get("dtype", "uint8")
        if dtype not in DTYPES:
            raise InputError(f"dtype {clip(dtype)} is not offered", f"use one of {DTYPES}")
        if math.prod(shape) * np.dtype(dtype).itemsize > MAX_FRAME_BYTES:
            raise InputError("frames would be too large", f"keep them under {MAX_FRAME_BYTES} B")
        delay = number(p, "delay_s", 0.0, 1.0, default=0.0)
        fail_at = integer(p, "fail_at", 0, MAX_FRAMES, default=None)
        pattern = p.get("pattern", "index")
        if pattern not in ("index", "static", "echo"):
            raise InputError(f"pattern {clip(pattern)} is not offered",
                             "use index, static or echo")
        if pattern == "echo" and not ctx.arrays:
            raise InputError("pattern echo needs an input array", "send one array")
        static = (ctx.arrays[0] if pattern == "echo"
                  else np.zeros(shape, dtype) if pattern == "static" else None)
        for i in range(n):
            if fail_at is not None and i == fail_at:
                raise InputError(f"synthetic_frames was asked to fail at frame {i}",
                                 "this is a deliberate test failure")
            if delay:
                time.sleep(delay)
            ctx.check_cancelled()
            frame = static if static is not None else np.full(shape, i % 251, dtype)
            ctx.frame({"index": i}, [frame])
            if i % 16 == 0:
                ctx.progress((i + 1) / n)
        return {"frames": n}

