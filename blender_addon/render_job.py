"""Render to sequencer, minus Blender: the cache key, atomic PNG writing, and a handler
that writes each streamed frame to disk the moment it arrives.

Why frames go straight to disk: a render can take minutes and the backend can die in the
middle; every frame already written stays usable (the strip shows it) and a re-render
with the same conditioning skips it. Files are written to ``name.tmp`` and renamed, so
a crash never leaves a half-written PNG that the sequencer would show as garbage.

The ``render`` job contract (backend/jobs/render.py): params ``subject``, ``camera``
(``shared/camera.py``'s dict), ``first_frame``, ``n_frames`` and ``frames`` (the scene
frames still missing on disk) and ``array_names``; arrays in that (sorted) order:
``blendshapes[T, 52]``, ``head_pose[T, 4, 4]`` (canonical head frame -> Blender world:
the face object's matrix_world times ``HEAD_TO_BLENDER``) and
``landmarks[T, N, 3]`` when the animation came from Generate. Each FRAME's body
names its ``frame`` (scene frame) or ``index`` (row of the request); its arrays are
RGBA (``uint8`` or float in [0, 1], ``[H, W, 4]``) and optionally depth ``[H, W]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .job_events import apply_lifecycle
from .shared.errors import InputError
from .shared.protocol import Event, MsgType

RENDER_KIND = "render"
FRAMES_DIRNAME = "facecast_frames"
HASH_CHARS = 16
DEPTH_SCALE = 1000.0  # depth PNGs hold millimetres in uint16 (0 = no surface)


# --------------------------------------------------------------------------------------
# Cache key and paths


def conditioning_hash(subject: str, camera: dict, arrays: dict[str, np.ndarray],
                      first_frame: int, extra: dict | None = None) -> str:
    """A stable hex digest of everything that changes the pixels.

    Same subject + camera + per-frame conditioning + frame numbers => same folder, so a
    second "Render to sequencer" reuses the files; any change => a new folder, so a stale
    frame can never be shown for new conditioning.
    """
    h = hashlib.blake2b(digest_size=16)
    meta = {"subject": subject, "camera": camera, "first_frame": int(first_frame),
            "extra": extra or {}}
    h.update(json.dumps(meta, sort_keys=True, default=float).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name], dtype=np.float32)
        # Round away float32 noise from F-curve evaluation so equal curves hash equal.
        a = np.round(a, 5) + 0.0  # + 0.0 folds -0.0 into 0.0
        h.update(name.encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:HASH_CHARS]


def frames_root(blend_path: str, temp_dir: str) -> Path:
    """``<blend dir>/facecast_frames`` for saved files, a temp folder for unsaved ones."""
    base = Path(blend_path).parent if blend_path else Path(temp_dir) / "facecast"
    return base / FRAMES_DIRNAME


def frame_file(folder: Path, frame: int) -> Path:
    return folder / f"{frame:06d}.png"


def depth_file(folder: Path, frame: int) -> Path:
    return folder / "depth" / f"{frame:06d}.png"


def frames_on_disk(folder: Path, frames: np.ndarray | list[int]) -> list[int]:
    """The requested frames whose PNG already exists (complete: tmp files never count)."""
    return [int(f) for f in frames if frame_file(folder, int(f)).is_file()]


# --------------------------------------------------------------------------------------
# PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes for ``uint8 [H, W, 1|3|4]`` or ``uint16 [H, W]`` (no PIL in Blender).

    Rows are stored top to bottom as PNG wants; the backend's frames use the same
    top-left origin (``shared/camera.py``).
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"Cannot write a frame of shape {a.shape} as PNG",
                         "the backend must send [H, W, 4] RGBA frames")
    h, w, c = a.shape
    if a.dtype == np.uint16:
        depth, raw = 16, a.astype(">u2").tobytes()
    elif a.dtype == np.uint8:
        depth, raw = 8, a.tobytes()
    else:
        raise InputError(f"Cannot write {a.dtype} pixels as PNG", "send uint8 or uint16")
    color = {1: 0, 3: 2, 4: 6}[c]
    stride = w * c * depth // 8
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)
    filtered = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(filtered, 3)) + _chunk(b"IEND", b""))


def to_rgba8(pixels: np.ndarray) -> np.ndarray:
    """Frame array -> ``uint8 [H, W, 4]`` (float frames are [0, 1]; RGB gets alpha 255)."""
    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"The backend sent a frame of shape {a.shape}",
                         "expected [H, W, 4] RGBA; update the backend")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
        a = (a * 255.0 + 0.5).astype(np.uint8)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full((*a.shape[:2], 1), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(a)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# The job handler


@dataclass
class RenderTask:
    """Writes the frames of one render job into ``folder`` as they arrive.

    ``written`` holds the scene frames on disk (reused + new). ``state`` ends as
    ``done`` | ``error`` | ``cancelled``; on error ``error`` says why and every frame
    already written stays. A disk error (full disk, permissions) cancels the job
    rather than silently dropping frames.
    """

    folder: Path
    first_frame: int
    n_frames: int
    kind: str = RENDER_KIND
    job: str = ""
    state: str = "running"
    progress: float = 0.0
    message: str = "waiting for the backend"
    error: str = ""
    written: set[int] = field(default_factory=set)
    requested: list[int] = field(default_factory=list)  # scene frame of each request row
    new_frames: int = 0
    write_failed: bool = False

    def frame_number(self, body: dict) -> int:
        """Scene frame of a FRAME: its ``frame``, else row ``index`` of the request."""
        if "frame" in body:
            return int(body["frame"])
        index = int(body.get("index", 0))
        if self.requested:
            return self.requested[index]
        return self.first_frame + index

    def on_event(self, event: Event) -> None:
        if apply_lifecycle(self, event, "rendering", track_progress=False):
            return
        if event.kind == MsgType.FRAME:
            self._write(event)
        elif event.kind == MsgType.DONE:
            self.state, self.progress, self.message = "done", 1.0, "done"

    def _write(self, event: Event) -> None:
        if self.write_failed or not event.arrays:
            return
        frame = self.frame_number(event.body)
        try:
            path = frame_file(self.folder, frame)
            write_atomic(path, encode_png(to_rgba8(event.arrays[0])))
            if len(event.arrays) > 1 and np.asarray(event.arrays[1]).ndim == 2:
                depth = np.nan_to_num(np.asarray(event.arrays[1], np.float32), nan=0.0,
                                      posinf=0.0)
                mm = np.clip(depth * DEPTH_SCALE, 0, 65535).astype(np.uint16)
                write_atomic(depth_file(self.folder, frame), encode_png(mm))
        except OSError as exc:
            self.write_failed = True
            self.state = "error"
            self.error = (f"Could not write frame {frame} to {self.folder} ({exc.strerror or exc})"
                          " — free disk space or save the .blend somewhere writable; the "
                          "frames already written are kept")
            return
        except InputError as exc:
            self.write_failed = True
            self.state, self.error = "error", exc.message
            return
        self.written.add(frame)
        self.new_frames += 1
        self.progress = len(self.written) / max(1, self.n_frames)
        self.message = f"frame {frame} ({len(self.written)}/{self.n_frames})"
