"""Render to sequencer, minus Blender: the cache key and a handler that writes each
streamed frame to disk the moment it arrives (through :mod:`frame_writer`).

Why frames go straight to disk: a render can take minutes and the backend can die in the
middle; every frame already written stays usable (the strip shows it) and a re-render
with the same conditioning skips it.

The ``render`` job contract (``shared.render_request.RenderJobRequest``, read by
backend/jobs/render.py): params ``subject``, ``camera`` (``shared/camera.py``'s dict, one
``matrix_world`` per row when the camera moves), ``array_names`` and ``head_pose_frame``
(``HEAD_POSE_FRAME``), ``signed_png``; arrays in that (sorted) order, one row per frame
still missing on disk: ``blendshapes[T, 52]``, ``head_pose[T, 4, 4]`` (canonical head
frame -> Blender world: the face object's matrix_world times ``HEAD_TO_BLENDER``) and
``landmarks[T, N, 3]`` when the animation came from Animate. Which scene frame each row
is stays in the add-on (``RenderTask.requested``): the job never reads scene frames or
the fps. Each FRAME is read once as a ``shared.render_result.RenderedFrame`` (checked:
a wrong array fails the task with one line naming it): ``index`` (row of the request),
RGBA ``uint8 [H, W, 4]``, depth ``uint16`` millimetres ``[H, W]`` (see
:mod:`frame_writer`) and, when the request asked ``signed_png``, the frame's PNG file:
the backend watermarked and C2PA-signed it, and it is written byte for byte, because
re-encoding the pixels would break the signature (the credentials hash the file). DONE
is kept as a ``RenderDone`` (subject, consent, provenance).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..shared.errors import InputError
from ..shared.protocol import Event, MsgType
from ..shared.render_result import RenderDone, RenderedFrame
from .frame_writer import write_frame
from .job_events import apply_lifecycle

RENDER_KIND = "render"
#: The frame of the head poses the add-on sends (backend/subject/contract.py): the
#: canonical head frame -> Blender world, i.e. the face object's matrix_world @
#: HEAD_TO_BLENDER. The backend refuses a head pose whose frame is not named.
HEAD_POSE_FRAME = "world"
FRAMES_DIRNAME = "facecast_frames"
HASH_CHARS = 16


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
    done_body: dict = field(default_factory=dict)  # the backend's final reply, as sent
    done: RenderDone | None = None  # ... and as read

    def frame_number(self, index: int) -> int:
        """Scene frame of row ``index`` of the request."""
        if index >= (len(self.requested) or self.n_frames):
            raise InputError(f"The backend sent row {index} of a {self.n_frames}-frame render",
                             "update the backend and the add-on to the same Facecast version")
        if self.requested:
            return self.requested[index]
        return self.first_frame + index

    def on_event(self, event: Event) -> None:
        if apply_lifecycle(self, event, "rendering", track_progress=False):
            return
        if event.kind == MsgType.FRAME:
            self._write(event)
        elif event.kind == MsgType.DONE:
            self.done_body = dict(event.body)
            self.done = RenderDone.from_wire(event.body)
            self.state, self.progress, self.message = "done", 1.0, "done"

    def _write(self, event: Event) -> None:
        if self.write_failed:
            return
        try:
            got = RenderedFrame.from_wire(event.body, event.arrays)
            frame = self.frame_number(got.index)
            write_frame(self.folder, frame, got.rgba, got.depth, got.depth_units, got.png)
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

