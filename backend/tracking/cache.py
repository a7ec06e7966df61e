"""Track a clip once, reuse the result: ``track_clip(path) -> ClipTracks`` with an .npz cache.

Tracking is the slow step shared by the data engine, the subject builder, the tests and
the benchmarks; caching it keeps tests fast and makes benchmarks compare models, not
tracker runs. The key is the file's *content* hash (a renamed or copied clip hits the
cache, an edited one does not), the tracker version (a mediapipe upgrade re-tracks) and
the sampling options. Entries are written atomically, so an interrupted run never leaves
a half-written file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.errors import InputError

from ..atomic_file import write_atomic
from ..cache_root import cache_root
from ..media.decode import iter_frames, probe_video
from .face_tracker import Tracks, track_faces, tracker_version
from .head_pose import HeadPoses, estimate_intrinsics, fit_head_pose

_FORMAT = 1  # bump when the .npz layout changes


def default_cache_dir() -> Path:
    """``$FACECAST_CACHE/tracks`` when set, else ``~/.cache/facecast/tracks``."""
    return cache_root() / "tracks"


@dataclass
class ClipTracks:
    """A tracked clip: landmarks per kept frame plus the timing to align them with audio."""

    tracks: Tracks
    frame_index: np.ndarray  # int64 [T], source frame number of each tracked frame
    fps: Fraction
    duration: float  # seconds
    source_size: tuple[int, int]  # (width, height) of the original video
    content_hash: str
    tracker: str

    @property
    def landmarks(self) -> np.ndarray:
        return self.tracks.landmarks

    @property
    def found(self) -> np.ndarray:
        return self.tracks.found

    @property
    def times(self) -> np.ndarray:
        """Time of each tracked frame in seconds."""
        return self.frame_index.astype(np.float64) / float(self.fps)

    def head_poses(self, fov_deg: float = 40.0) -> HeadPoses:
        """Rigid head pose + face-space landmarks (cheap, so computed, not cached)."""
        k = estimate_intrinsics(*self.tracks.image_size, fov_deg=fov_deg)
        return fit_head_pose(self.tracks.landmarks, k)


def file_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (streamed; clips can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(content_hash: str, tracker: str, options: dict) -> str:
    blob = json.dumps({"file": content_hash, "tracker": tracker, "format": _FORMAT,
                       **options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _save(path: Path, clip: ClipTracks) -> None:
    write_atomic(path, lambda f: np.savez_compressed(
        f, landmarks=clip.tracks.landmarks, found=clip.tracks.found,
        image_size=np.array(clip.tracks.image_size), frame_index=clip.frame_index,
        fps=np.array([clip.fps.numerator, clip.fps.denominator]),
        duration=np.array(clip.duration), source_size=np.array(clip.source_size),
        content_hash=np.array(clip.content_hash), tracker=np.array(clip.tracker)))


def _load(path: Path) -> ClipTracks | None:
    try:
        with np.load(path, allow_pickle=False) as d:
            tracks = Tracks(d["landmarks"], d["found"].astype(bool),
                            tuple(int(v) for v in d["image_size"]))
            num, den = (int(v) for v in d["fps"])
            return ClipTracks(tracks, d["frame_index"].astype(np.int64), Fraction(num, den),
                              float(d["duration"]), tuple(int(v) for v in d["source_size"]),
                              str(d["content_hash"]), str(d["tracker"]))
    except (OSError, KeyError, ValueError, EOFError):
        return None  # unreadable entry: re-track and overwrite it


def track_clip(path: str | Path, *, stride: int = 1, max_frames: int | None = None,
               max_side: int | None = None, cache_dir: str | Path | None = None,
               refresh: bool = False, progress: bool | None = None) -> ClipTracks:
    """Track every ``stride``-th frame of a clip (at most ``max_frames``), cached on disk.

    Frames are streamed from the decoder into the tracker, so a long clip never sits in
    memory as pixels. ``refresh=True`` ignores and replaces an existing entry.
    """
    path = Path(path)
    info = probe_video(path)  # raises InputError for missing/unreadable/no video
    digest = file_hash(path)
    tracker = tracker_version()
    key = _key(digest, tracker, {"stride": stride, "max_frames": max_frames,
                                 "max_side": max_side})
    entry = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = entry / f"{path.stem}-{key}.npz"
    if not refresh and entry.is_file():
        cached = _load(entry)
        if cached is not None:
            return cached

    indices: list[int] = []

    def frames():
        for index, rgb in iter_frames(path, max_frames=max_frames, stride=stride,
                                      max_side=max_side):
            indices.append(index)
            yield rgb

    expected = info.n_frames // stride if info.n_frames else None
    if expected is not None and max_frames is not None:
        expected = min(expected, max_frames)
    try:
        tracks = track_faces(frames(), total=expected, progress=progress)
    except InputError as exc:
        if not indices and exc.problem == "no frames to track":
            raise InputError(f"{path.name} contains no decodable video frames",
                             "check that the clip plays in a video player; re-export it"
                             ) from exc
        raise
    clip = ClipTracks(tracks, np.asarray(indices, dtype=np.int64), info.fps, info.duration,
                      (info.width, info.height), digest, tracker)
    try:
        _save(entry, clip)
    except OSError:
        pass  # a read-only or full cache disk must not fail the tracking itself
    return clip
