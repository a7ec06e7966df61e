"""Decode video frames and the audio track of a clip with PyAV.

Why PyAV: it ships FFmpeg inside its wheel, so every codec a user's phone or camera
produces (H.264/H.265/VP9 + AAC/Opus) decodes without a system FFmpeg, and it reports the
stream's exact rational frame rate. Frame rate correctness matters downstream: audio
features are aligned to video frames, so fps is kept as a ``Fraction`` (30000/1001, not
29.97) straight from the container.

Two entry points: ``iter_frames`` streams frames (long clips never sit in memory whole,
which is what tracking uses), and ``read_video`` collects them into one array for short
clips and tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from shared.audio import SAMPLE_RATE
from shared.errors import InputError

MAX_DECODED_BYTES = 4 << 30  # read_video refuses to hold more pixels than this at once
_READ_FIX = "check that the file exists and is a video PyAV/FFmpeg can play (e.g. H.264 .mp4)"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream, before any frame is decoded."""

    path: Path
    width: int
    height: int
    fps: Fraction
    duration: float  # seconds
    n_frames: int  # as declared by the container; 0 when unknown
    has_audio: bool


@dataclass
class Video:
    """Decoded frames plus the timing needed to align them with audio.

    ``frames`` may be downscaled (``max_side``) and subsampled (``stride``):
    ``frame_index`` keeps the source frame number of each row so that times stay exact
    (``frame_index / fps`` seconds) whatever sampling was used.
    """

    frames: np.ndarray  # uint8 [T, H, W, 3], RGB
    fps: Fraction
    duration: float  # seconds, of the whole stream
    frame_index: np.ndarray  # int64 [T], index of each frame in the source stream
    source_size: tuple[int, int]  # (width, height) before any downscaling

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def times(self) -> np.ndarray:
        """Presentation time of each kept frame in seconds (from its index and fps)."""
        return self.frame_index.astype(np.float64) / float(self.fps)


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"video file not found: {p}", "check the path; " + _READ_FIX)
    try:
        return av.open(str(p))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot read video {p.name}: {exc}", _READ_FIX) from exc


def _stream_fps(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise InputError("the video stream has no usable frame rate",
                         "re-encode the clip with a constant frame rate (e.g. ffmpeg -r 30)")
    return Fraction(rate.numerator, rate.denominator)


def _stream_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe_video(path: str | Path) -> VideoInfo:
    """Read the container header only: size, fps, duration, whether audio is present."""
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{Path(path).name} has no video stream",
                             "pass a video file, not an audio-only or image file")
        vs = container.streams.video[0]
        return VideoInfo(Path(path), int(vs.codec_context.width), int(vs.codec_context.height),
                         _stream_fps(vs), _stream_duration(container, vs), int(vs.frames or 0),
                         bool(container.streams.audio))


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    # Even sizes keep swscale's chroma handling exact and suit later encoders.
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def _check_sampling(max_frames: int | None, stride: int, max_side: int | None) -> None:
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}", "use stride=1 for every frame")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be >= 1, got {max_frames}",
                         "pass None to read every frame")
    if max_side is not None and max_side < 16:
        raise InputError(f"max_side must be >= 16 pixels, got {max_side}",
                         "pass None to keep the original size")


def iter_frames(path: str | Path, max_frames: int | None = None, stride: int = 1,
                max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(source_frame_index, rgb_uint8[H, W, 3])`` one decoded frame at a time.

    Decoding stops as soon as ``max_frames`` frames have been yielded, so sampling the
    start of a long clip costs only what it reads.
    """
    _check_sampling(max_frames, stride, max_side)
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{Path(path).name} has no video stream",
                             "pass a video file, not an audio-only or image file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading: decoding is the cheap part then
        width, height = _target_size(stream.codec_context.width, stream.codec_context.height,
                                     max_side)
        yielded = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % stride:
                    continue
                if (frame.width, frame.height) != (width, height):
                    frame = frame.reformat(width=width, height=height)
                yield index, frame.to_ndarray(format="rgb24")
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.FFmpegError as exc:
            if yielded == 0:
                raise InputError(f"cannot decode video {Path(path).name}: {exc}",
                                 _READ_FIX) from exc
            # A truncated tail (common in phone recordings) keeps the frames before it.
            return


def read_video(path: str | Path, max_frames: int | None = None, stride: int = 1,
               max_side: int | None = None) -> Video:
    """Decode a clip into memory: every ``stride``-th frame, at most ``max_frames`` of them,
    downscaled so the longer side is at most ``max_side`` pixels (aspect kept).

    Refuses (before decoding) clips whose frames would exceed ``MAX_DECODED_BYTES``: a long
    4K clip would otherwise exhaust memory halfway through; ``iter_frames`` streams instead.
    """
    _check_sampling(max_frames, stride, max_side)
    info = probe_video(path)
    width, height = _target_size(info.width, info.height, max_side)
    expected = -(-info.n_frames // stride) if info.n_frames else 0
    if max_frames is not None:
        expected = min(expected, max_frames)
    if expected * width * height * 3 > MAX_DECODED_BYTES:
        raise InputError(
            f"{Path(path).name} is too long to hold in memory ({expected} frames of "
            f"{width}x{height}, {expected * width * height * 3 / 2**30:.1f} GiB)",
            "pass max_frames, stride or max_side, or stream it with iter_frames")
    indices: list[int] = []
    frames: list[np.ndarray] = []
    for index, rgb in iter_frames(path, max_frames=max_frames, stride=stride,
                                  max_side=max_side):
        indices.append(index)
        frames.append(rgb)
    if not frames:
        raise InputError(f"{Path(path).name} contains no decodable video frames",
                         "check that the clip plays in a video player; re-export it if not")
    return Video(np.stack(frames), info.fps, info.duration,
                 np.asarray(indices, dtype=np.int64), (info.width, info.height))


def read_audio_track(path: str | Path, sample_rate: int = SAMPLE_RATE
                     ) -> tuple[np.ndarray, int] | None:
    """Decode the clip's first audio stream to float32 mono at ``sample_rate``.

    Returns None when the clip has no audio stream (a silent clip is a normal case for the
    subject builder, not an error). Resampling and downmixing use FFmpeg's swresample so
    the result matches what any player hears.
    """
    if sample_rate <= 0:
        raise InputError(f"sample_rate must be positive, got {sample_rate}",
                         f"use {SAMPLE_RATE} for speech features")
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            if not chunks:
                raise InputError(f"cannot decode the audio of {Path(path).name}: {exc}",
                                 _READ_FIX) from exc
    if not chunks:
        return None
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"the audio of {Path(path).name} decodes to non-finite samples",
                         "re-encode the clip's audio (e.g. to AAC)")
    return samples, sample_rate
