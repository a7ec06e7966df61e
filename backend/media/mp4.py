"""H.264 + AAC MP4 writing with PyAV (its wheel ships libx264 and aac; no system ffmpeg).

Frames arrive one at a time (a render streams them), so the writer encodes as they come
and only the finished file is moved into place: a crash never leaves a half-written MP4
where the user expects a good one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from shared.audio import SAMPLE_RATE
from shared.errors import InputError


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float | int,
              audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
              crf: int = 20) -> Path:
    """Encode RGB uint8 frames ``[H, W, 3]`` (even sizes) and optional mono audio."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.mp4")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise InputError(f"fps {fps} is not positive", "pass the scene frame rate")
    n = 0
    try:
        with av.open(str(tmp), mode="w") as container:
            video = container.add_stream("libx264", rate=rate)
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf), "preset": "veryfast"}
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate)
                sound.layout = "mono"
            for frame in frames:
                arr = np.ascontiguousarray(frame)
                if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
                    raise InputError(f"frame {n} is {arr.dtype} {arr.shape}",
                                     "pass RGB uint8 frames shaped [H, W, 3]")
                if n == 0:
                    if arr.shape[0] % 2 or arr.shape[1] % 2:
                        raise InputError(f"frame size {arr.shape[1]}x{arr.shape[0]} is odd",
                                         "H.264 needs even width and height; pad or crop")
                    video.width, video.height = arr.shape[1], arr.shape[0]
                container.mux(video.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
                n += 1
            if n == 0:
                raise InputError("no frames to write", "render at least one frame")
            container.mux(video.encode())
            if sound is not None:
                _mux_audio(container, sound, np.asarray(audio, np.float32), sample_rate)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _mux_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    pcm = np.clip(samples.reshape(-1), -1.0, 1.0)
    block = 1024
    for start in range(0, len(pcm), block):
        chunk = pcm[start:start + block]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
