"""The running Facecast job and the step function that moves it along.

Why a step function: network I/O must never block Blender's UI, and bpy may only be
touched on the main thread. So nothing here waits: operators *start* work (validate
the scene's inputs, queue a job) and return; :func:`step` — called every 50 ms by a
``bpy.app.timers`` timer in Blender, and in a plain loop by tests (the PyPI ``bpy``
module never fires timers) — polls the backend, submits the queued job once the
backend has said what it supports, writes frames as they arrive, applies finished
results to the scene, and updates the panel's progress/status/error.

One job runs at a time per Blender session (:attr:`Session.run`); its scene and
objects are remembered by *name*, since the user may undo or delete things while the
job runs, and a stale pointer would crash Blender.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import scene_inputs
from .core.animate_job import (
    ANIMATE_KIND,
    TEXT_FEATURE,
    TEXT_UNSUPPORTED,
    AnimateTask,
    animate_request,
    audio_span,
    scene_fps,
    submission,
)
from .core.audio_io import load_pcm
from .core.backend_session import BackendSession, BackendSettings
from .core.frame_writer import frames_on_disk
from .core.job_stall import StallWatch
from .core.render_job import (
    HEAD_POSE_FRAME,
    RENDER_KIND,
    RenderTask,
    conditioning_hash,
    frames_root,
)
from .scene_inputs import LastAnimation
from .shared.audio import SAMPLE_RATE
from .shared.emotions import EmotionArrays
from .shared.errors import FacecastError, InputError
from .shared.landmarks import pose_to_blender_axes, to_blender_axes
from .shared.render_request import RenderJobRequest
from .writers import sequencer_writer
from .writers.take_writer import face_id, write_face_take, write_head_take, write_landmark_empties
from .writers.takes import next_take_number

STEP_INTERVAL_S = 0.05
STRIP_REFRESH_S = 1.0
ANIMATE_CREDIT = 64
RENDER_CREDIT = 4


@dataclass
class AnimateRun:
    """An Animate in flight: its task, what it writes to (by name), and whether the
    result has been applied."""

    task: AnimateTask
    scene: str
    target: str
    head: str
    empties: bool
    overrides: dict[str, str]
    submitted: bool = False
    text_sent: bool = False
    text_note: str = ""  # why the dialogue text was not used, if it was not
    applied: bool = False
    started_backend: bool = False  # this job started the local backend
    stall: StallWatch | None = None  # from submission on

    def submission(self, backend: BackendSession) -> tuple[str, dict, list[np.ndarray], int]:
        """Kind, params, arrays, credit — decided now that the backend's features are
        known: the dialogue text goes only to a backend that declared it."""
        request = self.task.request
        self.text_sent = bool(request.text) and backend.supports(ANIMATE_KIND, TEXT_FEATURE)
        if request.text and not self.text_sent:
            self.text_note = TEXT_UNSUPPORTED
        params, arrays = submission(request, self.text_sent)
        return ANIMATE_KIND, params, arrays, ANIMATE_CREDIT


@dataclass
class RenderRun:
    """A Render to Sequencer in flight; ``frames`` are all the strip's scene frames."""

    task: RenderTask
    scene: str
    target: str
    strip: str
    frames: list[int]
    params: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    submitted: bool = False
    applied: bool = False
    strip_refreshed_at: float = 0.0
    strip_frames: int = 0
    started_backend: bool = False  # this job started the local backend
    stall: StallWatch | None = None  # from submission on

    def submission(self, backend: BackendSession) -> tuple[str, dict, list[np.ndarray], int]:
        return RENDER_KIND, self.params, self.arrays, RENDER_CREDIT


@dataclass
class Session:
    """Everything that lives as long as Blender does (not saved in the .blend)."""

    backend: BackendSession = field(default_factory=BackendSession)
    run: AnimateRun | RenderRun | None = None
    last: dict[str, LastAnimation] = field(default_factory=dict)  # face name -> result
    timer_on: bool = False
    #: what the UI last handed down from the preferences (address, timeouts, ...)
    settings: BackendSettings = field(default_factory=BackendSettings)

    @property
    def busy(self) -> bool:
        return self.run is not None and self.run.task.state == "running"


SESSION = Session()


# --------------------------------------------------------------------------------------
# The backend (operators call these with the preferences' BackendSettings; this module
# never reads the preferences itself: the UI hands its typed settings down)


def start_local_backend(settings: BackendSettings) -> None:
    SESSION.settings = settings
    SESSION.backend.start_local(settings)
    ensure_timer()


def stop_local_backend() -> None:
    SESSION.backend.stop_local()


def connect(settings: BackendSettings) -> None:
    SESSION.settings = settings
    SESSION.backend.connect(settings)
    ensure_timer()


def backend_status() -> tuple[str, str]:
    return SESSION.backend.status()


def reach_backend(settings: BackendSettings) -> bool:
    """Connect for a job (no waiting). When nothing answers at a loopback address and
    the preference "Start a Local Backend" is on, start one first, as the Start Backend
    button does; the job is sent once it is ready. Returns whether one was started."""
    SESSION.settings = settings
    start = SESSION.backend.should_start_local(settings)
    if start:
        SESSION.backend.start_local(settings)
    SESSION.backend.connect(settings)
    ensure_timer()
    return start


STARTING_LOCAL = "starting a backend on this machine (none was running); the job is " \
    "sent once it is ready"


def stall_note() -> str:
    """The panel's line when the running job has made no progress for Job Timeout."""
    run = SESSION.run
    if not SESSION.busy or run is None or run.stall is None:
        return ""
    return run.stall.note(time.monotonic())


# --------------------------------------------------------------------------------------
# Starting jobs


def _check_idle() -> None:
    if SESSION.busy:
        raise FacecastError("Another Facecast job is running", "wait for it or press Cancel")


def _options(settings: Any) -> dict:
    """The request's motion fields from the panel's settings."""
    return {"seed": int(settings.seed), "variation": float(settings.variation),
            "head_motion": float(settings.head_motion),
            "articulation": float(settings.articulation), "blinks": bool(settings.blinks),
            "landmarks": bool(settings.landmark_empties)
            or settings.render_source == "LAST_TAKE"}


def start_animate(scene: bpy.types.Scene, connection: BackendSettings) -> AnimateTask:
    """Validate inputs, sample emotions, queue ``animate``; :func:`step` submits it and
    writes the result as a new take."""
    _check_idle()
    settings = scene.facecast
    obj = scene_inputs.face_object(settings)
    overrides = scene_inputs.mapping_overrides(settings)
    mapping = scene_inputs.face_mapping(obj, overrides)
    settings.mapping_report = mapping.report()
    if not mapping.drives:
        raise InputError(f"Nothing on '{obj.name}' matches an ARKit channel",
                         "name shape keys / pose actions after ARKit channels (jawOpen, "
                         "mouthSmileLeft...) or add overrides")
    text = scene_inputs.dialogue(settings)
    fps = scene_fps(scene.render.fps, scene.render.fps_base)
    audio = scene_inputs.audio_input(scene)
    pcm = load_pcm(audio.path, SAMPLE_RATE)
    scene_range = (scene.frame_start, scene.frame_end) if settings.scene_range_only else None
    span = audio_span(audio.start_frame, pcm.size / SAMPLE_RATE, fps, audio.visible,
                      scene_range)
    # The sliders' samples, checked once here (the request and the job trust them).
    emotion = EmotionArrays.checked(*scene_inputs.sample_emotions(scene, span.frames()),
                                    span.count)
    request = animate_request(pcm, SAMPLE_RATE, fps, span, emotion, text,
                              **_options(settings))
    task = AnimateTask(request, span)
    started = reach_backend(connection)  # no waiting: step() submits once the backend has answered
    SESSION.run = AnimateRun(task, scene.name, obj.name,
                             settings.head_target.name if settings.head_target else "",
                             bool(settings.landmark_empties), overrides,
                             started_backend=started)
    what = f"animating {span.count} frames ({span.first}-{span.last}) at {float(fps):.3f} fps"
    _show(scene, "animate", 0.0, STARTING_LOCAL if started else what, "")
    return task


def frames_folder(scene: bpy.types.Scene, digest: str) -> Path:
    return frames_root(bpy.data.filepath, tempfile.gettempdir()) / digest


def start_render(scene: bpy.types.Scene, connection: BackendSettings) -> RenderTask | None:
    """Queue ``render`` for the frames not on disk yet; None if all were reused."""
    _check_idle()
    inputs = scene_inputs.render_inputs(scene, SESSION.last.get(
        getattr(scene.facecast.target, "name", "")))
    if not inputs.subject:
        raise InputError("No subject is chosen",
                         "connect to the backend and pick a captured person as Subject")
    frames = inputs.frames
    digest = conditioning_hash(inputs.subject, inputs.camera, inputs.arrays, int(frames[0]))
    folder = frames_folder(scene, digest)
    have = set(frames_on_disk(folder, frames))
    missing_idx = np.array([i for i, f in enumerate(frames) if int(f) not in have], np.int64)
    task = RenderTask(folder, int(frames[0]), len(frames))
    task.written |= have
    run = RenderRun(task, scene.name, inputs.target, f"Facecast {inputs.subject}",
                    [int(f) for f in frames])
    if missing_idx.size == 0:
        SESSION.run = run
        task.state, task.progress, task.message = "done", 1.0, "done"
        _finish_render(scene, run, reused=len(have))
        return None
    missing = frames[missing_idx]
    cam = dict(inputs.camera)
    if not inputs.static_camera:
        cam["matrix_world"] = np.asarray(cam["matrix_world"])[missing_idx].tolist()
    request = RenderJobRequest(  # frames arrive watermarked and C2PA-signed
        inputs.subject, cam, {n: a[missing_idx] for n, a in inputs.arrays.items()},
        head_pose_frame=HEAD_POSE_FRAME, signed_png=True)
    # Only what the render job reads: the scene frames of the rows stay here (a FRAME
    # names its row ``index``; ``task.requested`` maps it back to the scene frame).
    run.params, run.arrays = request.to_wire()
    task.requested = [int(f) for f in missing]
    run.strip_refreshed_at, run.strip_frames = time.monotonic(), len(have)
    run.started_backend = reach_backend(connection)  # no waiting: step() submits when it answers
    SESSION.run = run
    what = f"rendering {missing.size} frames ({len(have)} reused)"
    _show(scene, "render", len(have) / len(frames),
          STARTING_LOCAL if run.started_backend else what, "")
    return task


def cancel() -> None:
    """Stop the running job: a queued one at once, a submitted one through the backend
    (CANCELLED then arrives through :func:`step`)."""
    run = SESSION.run
    if run is None or run.task.state != "running":
        return
    scene = bpy.data.scenes.get(run.scene)
    if not run.submitted:
        run.task.state, run.task.message = "cancelled", "cancelled"
    elif run.task.job:
        SESSION.backend.link.cancel(run.task.job)
        if scene is not None:
            scene.facecast.status = "cancelling..."


# --------------------------------------------------------------------------------------
# The step


def _show(scene: bpy.types.Scene | None, kind: str | None, progress: float | None,
          status: str | None, error: str | None) -> None:
    if scene is None:
        return
    s = scene.facecast
    if kind is not None and s.job_kind != kind:
        s.job_kind = kind
    if progress is not None and abs(s.progress - progress) > 1e-4:
        s.progress = min(1.0, max(0.0, progress))
    if status is not None and s.status != status:
        s.status = status
    if error is not None and s.last_error != error:
        s.last_error = error


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR", "PREFERENCES", "NLA_EDITOR"):
                area.tag_redraw()


def step() -> float | None:
    """One non-blocking tick: poll, submit what waits, write what arrived, apply what
    finished.

    Returns the delay until the next call (a ``bpy.app.timers`` convention), or None
    when there is nothing left to watch (the timer then stops).
    """
    backend = SESSION.backend
    backend.poll()
    run = SESSION.run
    if run is not None:
        scene = bpy.data.scenes.get(run.scene)
        if not run.submitted and run.task.state == "running":
            _submit_when_ready(run, scene)
        if run.stall is not None and run.task.state == "running":
            run.stall.observe(run.task.progress, run.task.message, time.monotonic())
        if isinstance(run, RenderRun):
            _step_render(scene, run)
        else:
            _step_animate(scene, run)
    _redraw()
    if not (SESSION.busy or backend.watching):
        SESSION.timer_on = False
        return None
    return STEP_INTERVAL_S


def _submit_when_ready(run: AnimateRun | RenderRun, scene: bpy.types.Scene | None) -> None:
    backend = SESSION.backend
    if backend.ready:
        kind, params, arrays, credit = run.submission(backend)
        run.task.kind = kind
        run.task.job = backend.link.submit(kind, params, arrays, run.task, credit=credit)
        run.submitted = True
        run.task.message = "sent to the backend"
        run.stall = StallWatch(SESSION.settings.job_timeout_s, time.monotonic())
    elif run.started_backend and backend.local.state == "error":
        run.task.state = "error"
        run.task.error = f"The local backend did not start: {backend.local.message} — " \
            "check Backend Executable in the add-on preferences"
    elif backend.link.state in ("lost", "closed") and backend.local.state != "starting":
        run.task.state = "error"
        run.task.error = backend.link.message or "the backend is not answering — start it " \
            "(Start Backend) or check the address in the preferences"
    elif backend.local.state == "starting":
        _show(scene, None, None, STARTING_LOCAL if run.started_backend else
              "waiting for the local backend to start...", None)
    else:
        _show(scene, None, None, "waiting for the backend...", None)


def _step_animate(scene: bpy.types.Scene | None, run: AnimateRun) -> None:
    task = run.task
    link = SESSION.backend.link
    if task.state == "error" and task.job in link.handlers:
        link.cancel(task.job)  # an answer this add-on cannot read: stop the backend too
    if task.state == "running":
        if run.submitted:
            _show(scene, None, task.progress, task.message, None)
        return
    if run.applied:
        return
    run.applied = True
    if task.state == "done":
        try:
            text = apply_animate(scene, run)
        except FacecastError as exc:
            _show(scene, None, 1.0, "failed", exc.message)
            return
        except Exception as exc:  # never let a bug kill the timer silently
            _show(scene, None, 1.0, "failed", f"Could not write the animation: {exc!r}")
            return
        _show(scene, None, 1.0, text, "")
    elif task.state == "cancelled":
        _show(scene, None, task.progress, "cancelled; nothing was changed", "")
    else:
        _show(scene, None, task.progress, "failed", task.error)


def apply_animate(scene: bpy.types.Scene | None, run: AnimateRun) -> str:
    """Write the finished animation as a new take (new actions on the NLA), then an
    undo step."""
    task = run.task
    obj = bpy.data.objects.get(run.target)
    if scene is None or obj is None:
        raise InputError("The scene or face object was deleted while animating",
                         "animate again")
    mapping = scene_inputs.face_mapping(obj, run.overrides)
    blendshapes = task.blendshapes()
    frames = task.span.frames().astype(np.float32)
    head = bpy.data.objects.get(run.head) if run.head else None
    number = next_take_number([face_id(obj), head])
    request = task.request
    notes = (f"frames {task.span.first}-{task.span.last}; seed {request.seed}; dialogue text "
             f"{'aligned' if run.text_sent else 'not used'}")
    take = write_face_take(obj, mapping, blendshapes, frames, number, notes)
    parts = [f"Take {number}: {len(mapping.drives)} {mapping.noun}s animated on "
             f"'{obj.name}' (NLA track '{take.track}')"]
    outputs = task.outputs()
    pose = outputs.get("head_pose")
    if head is not None and pose is not None and len(pose) == len(frames):
        # The motion model's poses and landmarks are in the head frame (+Y up): turn
        # them into Blender's Z-up axes before they touch objects.
        write_head_take(head, pose_to_blender_axes(pose), frames, number, notes)
        parts.append(f"head motion on '{head.name}'")
    landmarks = outputs.get("landmarks")
    landmarks = landmarks if landmarks is not None and len(landmarks) == len(frames) else None
    if run.empties and landmarks is not None:
        write_landmark_empties(scene, obj, to_blender_axes(landmarks).astype(np.float32),
                               frames)
        parts.append(f"{landmarks.shape[1]} landmark empties")
    SESSION.last[obj.name] = LastAnimation(task.span.frames(), blendshapes, landmarks,
                                           number)
    if mapping.missing:
        parts.append(f"{len(mapping.missing)} ARKit channels drive nothing (see mapping "
                     "report)")
    if run.text_sent:
        parts.append("dialogue text aligned")
    elif run.text_note:
        parts.append(f"dialogue text not used: {run.text_note}")
    heard, report = task.transcript()
    settings = scene.facecast
    if heard and not request.text and settings.dialogue_text_block is None \
            and not settings.dialogue_text.strip():  # never over what the animator typed
        settings.dialogue_text = heard
        parts.append("the words heard are in the Dialogue field: correct them and "
                     "Animate again to re-align")
    if report:
        parts.append(report)
    _undo_push("Facecast: Animate")
    return "; ".join(parts)


def _undo_push(message: str) -> None:
    try:  # an undo step *after* the write: Ctrl+Z goes back to before it
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass  # no undo stack (background mode); nothing to restore to anyway


def _step_render(scene: bpy.types.Scene | None, run: RenderRun) -> None:
    task = run.task
    link = SESSION.backend.link
    if task.state == "error" and task.write_failed and task.job in link.handlers:
        link.cancel(task.job)  # disk trouble: stop the backend too
    total = len(run.frames) or task.n_frames
    if task.state == "running":
        if not run.submitted:
            return
        _show(scene, None, len(task.written) / max(1, total), task.message, None)
        now = time.monotonic()
        if scene is not None and len(task.written) > run.strip_frames and \
                now - run.strip_refreshed_at > STRIP_REFRESH_S:
            _place_strip(scene, run)
        return
    if run.applied:
        return
    run.applied = True
    if scene is not None:
        _finish_render(scene, run, reused=len(task.written) - task.new_frames)


def _place_strip(scene: bpy.types.Scene, run: RenderRun) -> Any:
    run.strip_refreshed_at, run.strip_frames = time.monotonic(), len(run.task.written)
    return sequencer_writer.place_image_strip(scene, run.strip, run.task.folder,
                                              sorted(run.task.written),
                                              above=scene_inputs.sound_strip(scene))


def _finish_render(scene: bpy.types.Scene, run: RenderRun, reused: int) -> None:
    task = run.task
    run.applied = True
    try:
        strip = _place_strip(scene, run)
    except FacecastError as exc:
        _show(scene, "render", task.progress, "failed", exc.message)
        return
    n = len(task.written)
    if n:
        scene.facecast.nerf_frames = str(task.folder)  # what Composite with Scene reads
    where = f"strip '{strip.name}' on channel {strip.channel}" if strip is not None else \
        "no strip (no frames)"
    total = len(run.frames) or task.n_frames
    if task.state == "done":
        _show(scene, "render", 1.0, f"{n} frames ({reused} reused) in {where}", "")
    elif task.state == "cancelled":
        _show(scene, "render", n / max(1, total), f"cancelled; kept {n} frames in {where}", "")
    else:
        _show(scene, "render", n / max(1, total), f"failed; kept {n} frames in {where}",
              f"{task.error} (the {n} frames already received are kept)")
    _undo_push("Facecast: Render to sequencer")


# --------------------------------------------------------------------------------------
# Timer


def ensure_timer() -> None:
    """Run :func:`step` from a Blender timer (never fires in the PyPI module: tests call
    :func:`step` themselves)."""
    if SESSION.timer_on:
        return
    if not bpy.app.timers.is_registered(step):
        bpy.app.timers.register(step, first_interval=STEP_INTERVAL_S, persistent=True)
    SESSION.timer_on = True


def shutdown() -> None:
    """On unregister: stop the timer, close the socket, stop the backend we started."""
    if bpy.app.timers.is_registered(step):
        bpy.app.timers.unregister(step)
    SESSION.timer_on = False
    SESSION.backend.close()
    SESSION.run = None


def drive(timeout_s: float, until: Any = None) -> None:
    """Call :func:`step` until the job ends (or ``until()`` is true) — for scripts and
    tests only; Blender's UI uses the timer instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        step()
        if until is not None and until():
            return
        run = SESSION.run
        if until is None and (run is None or (not SESSION.busy and run.applied)):
            return
        time.sleep(0.02)
    raise TimeoutError(f"Facecast step loop did not finish in {timeout_s} s")
