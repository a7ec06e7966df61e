"""Per-video-frame model inputs: a mel context window and prosody at each frame centre.

The motion model predicts one pose per video frame, so it needs the audio around that
frame, not the 100 Hz hop grid. Frames are taken with exact timing (see ``timing``);
frames that fall before or after the audio get silence features rather than an error,
because Blender frame ranges routinely extend past the dialogue. Long clips are served in
chunks so 10 minutes at 60 fps never materialises every window at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from shared.errors import InputError

from .features import (
    DB_FLOOR,
    HOP,
    MEL_SILENCE,
    N_MELS,
    AudioFeatures,
    compute_audio_features,
    n_hops_for,
)
from .loading import Audio
from .timing import FpsLike, FrameClock

DEFAULT_CONTEXT_HOPS = 16  # ±160 ms: covers coarticulation around a viseme
MAX_CONTEXT_HOPS = 500
DEFAULT_CHUNK_FRAMES = 1024


@dataclass(frozen=True, eq=False)
class FrameFeatures:
    """Model inputs for video frames ``frame_numbers``.

    ``mel`` is normalised with the fixed constants in ``features`` (silence = MEL_SILENCE);
    ``energy_db`` is RMS dBFS (floor -100), ``f0`` in Hz (0 when unvoiced).
    """

    mel: np.ndarray  # [T, 2*context_hops+1, 80] float32
    energy_db: np.ndarray  # [T] float32
    f0: np.ndarray  # [T] float32
    voiced: np.ndarray  # [T] bool
    vad: np.ndarray  # [T] bool
    vad_prob: np.ndarray  # [T] float32
    frame_numbers: np.ndarray  # [T] int64
    frame_times: np.ndarray  # [T] float64, audio seconds at each frame centre
    fps: Fraction
    context_hops: int

    @property
    def n_frames(self) -> int:
        return int(self.frame_numbers.shape[0])


def _check_count(value: object, what: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{what} must be a whole number, got {value!r}",
                         f"pass an integer >= {minimum}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise InputError(f"{what} is {value}, out of range",
                         f"pass an integer >= {minimum}{upper}")
    return int(value)


def _frame_span(clock: FrameClock, n_samples: int, n_frames: int | None,
                last_frame: int | None) -> int:
    """Number of frames to produce: explicit count, inclusive last frame, or to audio end."""
    if n_frames is not None and last_frame is not None:
        raise InputError("Both n_frames and last_frame were given",
                         "pass only one of them to choose the frame range")
    if last_frame is not None:
        last = _check_count(last_frame, "last_frame", -(1 << 62))
        if last < clock.first_frame - 1:
            raise InputError(f"Frame range {clock.first_frame}..{last} runs backwards",
                             "make last_frame >= first_frame (the range is inclusive)")
        return last - clock.first_frame + 1
    if n_frames is not None:
        return _check_count(n_frames, "n_frames", 0)
    return clock.n_frames_for(n_samples)


def _slice(feats: AudioFeatures, clock: FrameClock, first: int, count: int,
           context_hops: int) -> FrameFeatures:
    """Features for frames ``first .. first+count-1``; hops outside the audio read as silence."""
    centres = clock.centre_hops(first, count, HOP)
    inside = (centres >= 0) & (centres < feats.n_hops)
    at = np.clip(centres, 0, max(feats.n_hops - 1, 0))
    offsets = np.arange(-context_hops, context_hops + 1, dtype=np.int64)
    idx = centres[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < feats.n_hops)
    mel = np.full((count, offsets.size, N_MELS), MEL_SILENCE, dtype=np.float32)
    if feats.n_hops:
        mel[valid] = feats.mel[idx[valid]]
        energy = np.where(inside, feats.energy_db[at], DB_FLOOR).astype(np.float32)
        f0 = np.where(inside, feats.f0[at], 0.0).astype(np.float32)
        voiced = inside & feats.voiced[at]
        vad = inside & feats.vad[at]
        vad_prob = np.where(inside, feats.vad_prob[at], 0.0).astype(np.float32)
    else:
        energy = np.full(count, DB_FLOOR, np.float32)
        f0 = np.zeros(count, np.float32)
        voiced = vad = np.zeros(count, bool)
        vad_prob = np.zeros(count, np.float32)
    return FrameFeatures(
        mel=mel, energy_db=energy, f0=f0, voiced=voiced, vad=vad, vad_prob=vad_prob,
        frame_numbers=np.arange(first, first + count, dtype=np.int64),
        frame_times=clock.centre_times(first, count), fps=clock.fps,
        context_hops=context_hops)


def _prepare(audio: Audio, fps: FpsLike, first_frame: int, n_frames: int | None,
             last_frame: int | None, start_offset: object, context_hops: int,
             features: AudioFeatures | None) -> tuple[FrameClock, int, AudioFeatures]:
    clock = FrameClock.create(fps, audio.sample_rate, first_frame, start_offset)
    _check_count(context_hops, "context_hops", 0, MAX_CONTEXT_HOPS)
    total = _frame_span(clock, audio.n_samples, n_frames, last_frame)
    feats = features if features is not None else compute_audio_features(audio)
    if feats.n_hops != n_hops_for(audio.n_samples):
        raise InputError(
            f"Precomputed features cover {feats.n_hops} hops but the audio needs "
            f"{n_hops_for(audio.n_samples)}",
            "pass features=compute_audio_features(audio) for this same audio, or omit it")
    return clock, total, feats


def iter_frame_feature_chunks(
        audio: Audio, fps: FpsLike, first_frame: int = 0, n_frames: int | None = None,
        start_offset: object = 0, context_hops: int = DEFAULT_CONTEXT_HOPS,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES, *, last_frame: int | None = None,
        features: AudioFeatures | None = None) -> Iterator[FrameFeatures]:
    """Yield ``FrameFeatures`` for consecutive blocks of at most ``chunk_frames`` frames.

    Per-hop features are computed once (about 32 KB per second of audio); only one chunk
    of context windows exists at a time.
    """
    chunk = _check_count(chunk_frames, "chunk_frames", 1)
    clock, total, feats = _prepare(audio, fps, first_frame, n_frames, last_frame,
                                   start_offset, context_hops, features)
    for start in range(0, total, chunk):
        yield _slice(feats, clock, clock.first_frame + start, min(chunk, total - start),
                     int(context_hops))


def compute_frame_features(
        audio: Audio, fps: FpsLike, first_frame: int = 0, n_frames: int | None = None,
        start_offset: object = 0, context_hops: int = DEFAULT_CONTEXT_HOPS, *,
        last_frame: int | None = None, features: AudioFeatures | None = None) -> FrameFeatures:
    """All frames at once; see ``iter_frame_feature_chunks`` for long audio.

    Frames run from ``first_frame`` for ``n_frames`` (or through ``last_frame`` inclusive,
    or by default until the audio ends); ``start_offset`` is the audio time in seconds at
    the start of ``first_frame`` (a Fraction keeps it exact; see ``offset_for_strip``).
    """
    clock, total, feats = _prepare(audio, fps, first_frame, n_frames, last_frame,
                                   start_offset, context_hops, features)
    return _slice(feats, clock, clock.first_frame, total, int(context_hops))
