"""The add-on's running state and its step function.

Why a step function: network I/O must never block Blender's UI, and bpy may only be
touched on the main thread. So nothing here waits: operators *start* work (spawn the
backend, submit a job) and return; :func:`step` — called every ~50 ms by a
``bpy.app.timers`` timer in Blender, and in a plain loop by tests (the PyPI ``bpy``
module never fires timers) — polls the socket, writes frames as they arrive, applies
finished results to the scene, and updates the panel's progress/status/error.

One job runs at a time per Blender session (:class:`Session.task`); its scene and
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

from . import compat, scene_io
from .audio_io import BACKEND_SAMPLE_RATE, load_pcm
from .backend_link import BackendLink, LinkSettings, LocalBackend, is_local_address
from .generate_job import (
    ANIMATE_KIND,
    GenerateRequest,
    GenerateTask,
    audio_span,
    fps_fraction,
    scene_fps,
)
from .render_job import (
    RENDER_KIND,
    RenderTask,
    conditioning_hash,
    frames_on_disk,
    frames_root,
)
from .shared.camera import camera_dict_from_blender
from .shared.emotions import validate_emotion_arrays
from .shared.errors import FacecastError, InputError
from .shared.landmarks import HEAD_TO_BLENDER, pose_to_blender_axes, to_blender_axes
from .shared.protocol import MsgType

STEP_INTERVAL_S = 0.05
STRIP_REFRESH_S = 1.0


@dataclass
class InfoTask:
    """Handler for the ``info`` job: the backend's self-description (subjects, jobs)."""

    job: str = ""
    state: str = "running"
    body: dict = field(default_factory=dict)
    error: str = ""

    def on_event(self, event: Any) -> None:
        if event.kind == MsgType.DONE:
            self.state, self.body = "done", dict(event.body)
        elif event.kind == MsgType.ERROR:
            self.state, self.error = "error", str(event.body.get("message", "error"))
        elif event.kind == MsgType.CANCELLED:
            self.state = "cancelled"


@dataclass
class Session:
    """Everything that lives as long as Blender does (not saved in the .blend)."""

    link: BackendLink = field(default_factory=BackendLink)
    local: LocalBackend = field(default_factory=LocalBackend)
    subjects: list[str] = field(default_factory=list)
    task: GenerateTask | RenderTask | None = None
    info: InfoTask | None = None
    ctx: dict = field(default_factory=dict)  # names of what the task works on
    generated: dict[str, dict] = field(default_factory=dict)  # object name -> last result
    timer_on: bool = False
    #: Tests map a job kind to ``fn(params, arrays) -> (kind, params, arrays)`` to drive
    #: the plumbing with ``stream_test`` before the real job exists.
    job_overrides: dict[str, Any] = field(default_factory=dict)
    _strip_refreshed_at: float = 0.0
    _strip_frames: int = 0

    @property
    def busy(self) -> bool:
        return self.task is not None and self.task.state == "running"


SESSION = Session()


# --------------------------------------------------------------------------------------
# Preferences and connection


def _prefs() -> Any:
    from .preferences import get_preferences

    return get_preferences()


def link_settings() -> LinkSettings:
    """Connection settings from the preferences; a running local backend's bound
    endpoint wins (it may have picked its own port)."""
    prefs = _prefs()
    address = prefs.backend_address if prefs else "tcp://127.0.0.1:5557"
    if SESSION.local.poll() == "running" and SESSION.local.endpoint:
        address = SESSION.local.endpoint
    key_file = bpy.path.abspath(prefs.key_file) if prefs and prefs.key_file else ""
    timeout = prefs.connect_timeout if prefs else 5.0
    return LinkSettings(address, key_file, float(timeout), bool(bpy.app.online_access))


def start_local_backend() -> None:
    """Spawn ``facecast serve`` as configured (returns at once; :func:`step` follows it)."""
    prefs = _prefs()
    address = prefs.backend_address if prefs else "tcp://127.0.0.1:5557"
    if not is_local_address(address):
        raise FacecastError(f"A local backend cannot listen on {address}",
                            "set Backend Address to tcp://127.0.0.1:PORT")
    key_file = bpy.path.abspath(prefs.key_file) if prefs and prefs.key_file else ""
    executable = bpy.path.abspath(prefs.backend_executable) if prefs and \
        prefs.backend_executable else ""
    SESSION.link.close()
    SESSION.local.start(executable, address, key_file)
    ensure_timer()


def stop_local_backend() -> None:
    SESSION.link.close()
    SESSION.local.stop()


def connect() -> None:
    """Open the connection (no waiting) and ask the backend what it offers."""
    SESSION.link.connect(link_settings())
    if SESSION.info is None or SESSION.info.state != "running":
        SESSION.info = InfoTask()
        SESSION.info.job = SESSION.link.submit("info", {}, [], SESSION.info)
    ensure_timer()


def backend_status() -> tuple[str, str]:
    """(state, text) for the panel and preferences: local process + connection."""
    local = SESSION.local.poll()
    link = SESSION.link.state
    if local == "error":
        return "error", SESSION.local.message
    if link == "ready":
        return "connected", SESSION.link.message
    if local == "starting":
        return "starting", "starting the local backend..."
    if link == "lost":
        return "error", SESSION.link.message
    if link == "connecting":
        return "connecting", SESSION.link.message
    if local == "running":
        return "running", SESSION.local.message
    return "stopped", "not connected"


# --------------------------------------------------------------------------------------
# Starting jobs


def _settings(scene: bpy.types.Scene) -> Any:
    return scene.facecast


def _overrides(settings: Any) -> dict[str, str]:
    return {o.arkit: o.shape_key for o in settings.mapping_overrides if o.arkit.strip()}


def _target(settings: Any) -> bpy.types.Object:
    obj = settings.target
    if obj is None:
        raise InputError("No face object is chosen",
                         "pick a mesh with shape keys as Face (or use Create Demo Rig)")
    return obj


def audio_input(scene: bpy.types.Scene) -> tuple[str, float, tuple[int, int] | None, Any]:
    """(file path, frame where sample 0 plays, visible strip span, sound strip or None)."""
    settings = _settings(scene)
    fps = scene_fps(scene.render.fps, scene.render.fps_base)
    if settings.audio_source == "FILE":
        if not settings.audio_file:
            raise InputError("No audio file is chosen", "pick the dialogue recording")
        return bpy.path.abspath(settings.audio_file), float(settings.audio_start_frame), \
            None, None
    strips = compat.sequencer_strips_all(scene) if scene.sequence_editor else {}
    strip = strips.get(settings.sound_strip) if settings.sound_strip else None
    if strip is None:
        sounds = [s for s in strips if s.type == "SOUND"] if scene.sequence_editor else []
        if len(sounds) == 1 and not settings.sound_strip:
            strip = sounds[0]  # the obvious choice: one sound strip in the edit
        else:
            raise InputError(f"Sound strip {settings.sound_strip!r} not found" if
                             settings.sound_strip else "No sound strip is chosen",
                             "pick the dialogue's sound strip (or switch Audio to File)")
    if strip.type != "SOUND" or strip.sound is None:
        raise InputError(f"Strip {strip.name!r} is not a sound strip", "pick a sound strip")
    path = bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)
    offset_frames = float(getattr(strip, "sound_offset", 0.0)) * fps
    visible = (int(strip.frame_final_start), int(strip.frame_final_end))
    return path, float(strip.frame_start) - offset_frames, visible, strip


def _submit(task: Any, kind: str, params: dict, arrays: list[np.ndarray], credit: int) -> None:
    override = SESSION.job_overrides.get(kind)
    if override is not None:
        kind, params, arrays = override(params, arrays)
    SESSION.link.connect(link_settings())
    task.kind = kind
    task.job = SESSION.link.submit(kind, params, arrays, task, credit=credit)


def start_generate(scene: bpy.types.Scene) -> GenerateTask:
    """Validate inputs, sample emotions, submit ``animate``; results land in :func:`step`."""
    if SESSION.busy:
        raise FacecastError("Another Facecast job is running", "wait for it or press Cancel")
    settings = _settings(scene)
    obj = _target(settings)
    mapping = scene_io.target_mapping(obj, _overrides(settings))
    settings.mapping_report = mapping.report()
    if not mapping.mapping:
        raise InputError(f"None of '{obj.name}'s shape keys match an ARKit name",
                         "rename them (jawOpen, mouthSmileLeft...) or add overrides")
    fps = scene_fps(scene.render.fps, scene.render.fps_base)
    path, audio_start, visible, _strip = audio_input(scene)
    pcm = load_pcm(path, BACKEND_SAMPLE_RATE)
    scene_range = (scene.frame_start, scene.frame_end) if settings.scene_range_only else None
    span = audio_span(audio_start, pcm.size / BACKEND_SAMPLE_RATE, fps, visible, scene_range)
    weights, intensity = scene_io.sample_emotions(scene, span.frames())
    weights, intensity = validate_emotion_arrays(weights, intensity, span.count)
    options = {"seed": int(settings.seed), "variation": float(settings.variation),
               "head_motion": float(settings.head_motion),
               "articulation": float(settings.articulation), "blinks": bool(settings.blinks),
               "landmarks": bool(settings.landmark_empties)
               or settings.render_source == "GENERATED"}
    exact = fps_fraction(scene.render.fps, scene.render.fps_base)
    request = GenerateRequest(pcm, BACKEND_SAMPLE_RATE, fps, span, weights, intensity, options,
                              fps_text=f"{exact.numerator}/{exact.denominator}")
    task = GenerateTask(request)
    _submit(task, ANIMATE_KIND, request.params(), request.arrays(), credit=64)
    SESSION.task = task
    SESSION.ctx = {"scene": scene.name, "target": obj.name, "kind": "generate",
                   "head": settings.head_target.name if settings.head_target else "",
                   "empties": bool(settings.landmark_empties),
                   "replace": bool(settings.replace_existing),
                   "overrides": _overrides(settings), "applied": False}
    _show(scene, "generate", 0.0, f"animating {span.count} frames "
          f"({span.first}-{span.last}) at {fps:.3f} fps", "")
    ensure_timer()
    return task


def render_inputs(scene: bpy.types.Scene) -> dict:
    """Per-frame conditioning, camera and head transform for a render, as arrays."""
    settings = _settings(scene)
    obj = _target(settings)
    mapping = scene_io.target_mapping(obj, _overrides(settings))
    generated = SESSION.generated.get(obj.name)
    if settings.render_source == "GENERATED" and generated is None:
        raise InputError(f"Nothing was generated for '{obj.name}' in this session",
                         "press Generate animation first, or render the Shape Keys")
    if generated is not None:
        frames = np.asarray(generated["frames"], dtype=np.int64)
    else:
        frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.int64)
    arrays: dict[str, np.ndarray] = {}
    if settings.render_source == "GENERATED":
        arrays["blendshapes"] = np.asarray(generated["blendshapes"], np.float32)
        if generated.get("landmarks") is not None:
            arrays["landmarks"] = np.asarray(generated["landmarks"], np.float32)
    else:
        arrays["blendshapes"] = scene_io.sample_shape_keys(obj, mapping, frames)
    camera = scene.camera
    if camera is None:
        raise InputError("The scene has no active camera",
                         "add a camera and make it active (Ctrl+Numpad 0)")
    cam_m, head_m = scene_io.world_matrices(scene, [camera, obj], frames)
    cam_dict = camera_dict_from_blender(camera, scene)
    static_cam = bool(np.allclose(cam_m, cam_m[:1]))
    cam_dict["matrix_world"] = (cam_m[0] if static_cam else cam_m).tolist()
    # The render job wants canonical head frame (+Y up) -> world: through the face
    # object's local Blender axes (Z up), then its world matrix.
    arrays["head_pose"] = (head_m @ HEAD_TO_BLENDER).astype(np.float32)
    return {"frames": frames, "arrays": arrays, "camera": cam_dict, "target": obj.name,
            "subject": settings.subject.strip(), "static_cam": static_cam}


def frames_folder(scene: bpy.types.Scene, digest: str) -> Path:
    return frames_root(bpy.data.filepath, tempfile.gettempdir()) / digest


def start_render(scene: bpy.types.Scene) -> RenderTask | None:
    """Submit ``render`` for the frames not on disk yet; None if all were reused."""
    if SESSION.busy:
        raise FacecastError("Another Facecast job is running", "wait for it or press Cancel")
    inputs = render_inputs(scene)
    subject = inputs["subject"]
    if not subject and RENDER_KIND not in SESSION.job_overrides:
        raise InputError("No subject is chosen",
                         "connect to the backend and pick a captured person as Subject")
    frames = inputs["frames"]
    digest = conditioning_hash(subject, inputs["camera"], inputs["arrays"], int(frames[0]))
    folder = frames_folder(scene, digest)
    have = set(frames_on_disk(folder, frames))
    missing_idx = np.array([i for i, f in enumerate(frames) if int(f) not in have], np.int64)
    strip_name = f"Facecast {subject or inputs['target']}"
    SESSION.ctx = {"scene": scene.name, "target": inputs["target"], "kind": "render",
                   "folder": str(folder), "strip": strip_name,
                   "frames": [int(f) for f in frames], "applied": False}
    task = RenderTask(folder, int(frames[0]), len(frames))
    task.written |= have
    if missing_idx.size == 0:
        SESSION.task = task
        task.state, task.progress, task.message = "done", 1.0, "done"
        _finish_render(scene, task, reused=len(have))
        return None
    missing = frames[missing_idx]
    cam = dict(inputs["camera"])
    if not inputs["static_cam"]:
        cam["matrix_world"] = np.asarray(cam["matrix_world"])[missing_idx].tolist()
    names = sorted(inputs["arrays"])
    arrays = [np.ascontiguousarray(inputs["arrays"][n][missing_idx]) for n in names]
    params = {"subject": subject, "camera": cam, "frames": [int(f) for f in missing],
              "first_frame": int(missing[0]), "n_frames": int(missing.size),
              "array_names": names, "fps": scene_fps(scene.render.fps, scene.render.fps_base)}
    task.requested = [int(f) for f in missing]
    _submit(task, RENDER_KIND, params, arrays, credit=4)
    SESSION.task = task
    SESSION._strip_refreshed_at, SESSION._strip_frames = time.monotonic(), len(have)
    _show(scene, "render", len(have) / len(frames),
          f"rendering {missing.size} frames ({len(have)} reused)", "")
    ensure_timer()
    return task


def cancel() -> None:
    """Ask the backend to stop the running job; CANCELLED arrives through :func:`step`."""
    task = SESSION.task
    if task is not None and task.state == "running" and task.job:
        SESSION.link.cancel(task.job)
        scene = bpy.data.scenes.get(SESSION.ctx.get("scene", ""))
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
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR", "PREFERENCES"):
                area.tag_redraw()


def step() -> float | None:
    """One non-blocking tick: poll, write what arrived, apply what finished.

    Returns the delay until the next call (a ``bpy.app.timers`` convention), or None
    when there is nothing left to watch (the timer then stops).
    """
    SESSION.local.poll()
    SESSION.link.poll(0)
    _step_info()
    task = SESSION.task
    scene = bpy.data.scenes.get(SESSION.ctx.get("scene", "")) if task else None
    if task is not None and SESSION.ctx.get("kind") == "render":
        _step_render(scene, task)  # type: ignore[arg-type]
    elif task is not None and SESSION.ctx.get("kind") == "generate":
        _step_generate(scene, task)  # type: ignore[arg-type]
    _redraw()
    watching = SESSION.busy or SESSION.local.state == "starting" or \
        SESSION.link.state in ("connecting", "ready") or \
        (SESSION.info is not None and SESSION.info.state == "running")
    if not watching:
        SESSION.timer_on = False
        return None
    return STEP_INTERVAL_S


def _step_info() -> None:
    info = SESSION.info
    if info is None or info.state == "running":
        return
    if info.state == "done":
        subjects = info.body.get("subjects") or []
        names = []
        for s in subjects:
            name = s.get("id") or s.get("name") if isinstance(s, dict) else s
            if name:
                names.append(str(name))
        SESSION.subjects = names
    SESSION.info = None if info.state != "done" else info
    if info.state == "done":
        SESSION.info = InfoTask(state="seen", body=info.body)


def _step_generate(scene: bpy.types.Scene | None, task: GenerateTask) -> None:
    if task.state == "running":
        _show(scene, None, task.progress, task.message, None)
        return
    if SESSION.ctx.get("applied"):
        return
    SESSION.ctx["applied"] = True
    if task.state == "done":
        try:
            text = apply_generate(scene, task)
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


def apply_generate(scene: bpy.types.Scene | None, task: GenerateTask) -> str:
    """Write the finished animation into the scene (new actions), then an undo step."""
    ctx = SESSION.ctx
    obj = bpy.data.objects.get(ctx["target"])
    if scene is None or obj is None:
        raise InputError("The scene or face object was deleted while animating",
                         "generate again")
    mapping = scene_io.target_mapping(obj, ctx["overrides"])
    blendshapes = task.blendshapes()
    frames = task.request.span.frames().astype(np.float32)
    action = scene_io.write_shape_key_animation(obj, blendshapes, frames, mapping,
                                                ctx["replace"])
    outputs = task.outputs()
    notes = [f"{len(mapping.mapping)} shape keys animated into '{action.name}'"]
    head = bpy.data.objects.get(ctx["head"]) if ctx["head"] else None
    pose = outputs.get("head_pose")
    if head is not None and pose is not None and len(pose) == len(frames):
        # The motion model's poses and landmarks are in the head frame (+Y up): turn
        # them into Blender's Z-up axes before they touch objects.
        scene_io.write_transform_animation(head, pose_to_blender_axes(pose), frames,
                                           ctx["replace"])
        notes.append(f"head motion on '{head.name}'")
    landmarks = outputs.get("landmarks")
    if ctx["empties"] and landmarks is not None and len(landmarks) == len(frames):
        scene_io.write_landmark_empties(obj, to_blender_axes(landmarks).astype(np.float32),
                                        frames)
        notes.append(f"{landmarks.shape[1]} landmark empties")
    SESSION.generated[obj.name] = {
        "frames": task.request.span.frames(), "blendshapes": blendshapes,
        "landmarks": landmarks if landmarks is not None and len(landmarks) == len(frames)
        else None}
    if len(mapping.missing):
        notes.append(f"{len(mapping.missing)} ARKit shapes have no key (see mapping report)")
    try:  # an undo step *after* the write: Ctrl+Z goes back to before it
        bpy.ops.ed.undo_push(message="Facecast: Generate animation")
    except RuntimeError:
        pass  # no undo stack (background mode); nothing to restore to anyway
    return "; ".join(notes)


def _step_render(scene: bpy.types.Scene | None, task: RenderTask) -> None:
    if task.state == "error" and task.write_failed and task.job in SESSION.link.handlers:
        SESSION.link.cancel(task.job)  # disk trouble: stop the backend too
    total = len(SESSION.ctx.get("frames", [])) or task.n_frames
    if task.state == "running":
        _show(scene, None, len(task.written) / max(1, total), task.message, None)
        now = time.monotonic()
        if scene is not None and len(task.written) > SESSION._strip_frames and \
                now - SESSION._strip_refreshed_at > STRIP_REFRESH_S:
            _place_strip(scene, task)
        return
    if SESSION.ctx.get("applied"):
        return
    SESSION.ctx["applied"] = True
    if scene is not None:
        _finish_render(scene, task, reused=len(task.written) - task.new_frames)


def _place_strip(scene: bpy.types.Scene, task: RenderTask) -> Any:
    SESSION._strip_refreshed_at, SESSION._strip_frames = time.monotonic(), len(task.written)
    try:
        _path, _start, _visible, sound = audio_input(scene)
    except FacecastError:
        sound = None
    return scene_io.place_image_strip(scene, SESSION.ctx["strip"], task.folder,
                                      sorted(task.written), above=sound)


def _finish_render(scene: bpy.types.Scene, task: RenderTask, reused: int) -> None:
    SESSION.ctx["applied"] = True
    try:
        strip = _place_strip(scene, task)
    except FacecastError as exc:
        _show(scene, "render", task.progress, "failed", exc.message)
        return
    n = len(task.written)
    where = f"strip '{strip.name}' on channel {strip.channel}" if strip is not None else \
        "no strip (no frames)"
    total = len(SESSION.ctx.get("frames", [])) or task.n_frames
    if task.state == "done":
        text = f"{n} frames ({reused} reused) in {where}"
        _show(scene, "render", 1.0, text, "")
    elif task.state == "cancelled":
        _show(scene, "render", n / max(1, total),
              f"cancelled; kept {n} frames in {where}", "")
    else:
        _show(scene, "render", n / max(1, total), f"failed; kept {n} frames in {where}",
              f"{task.error} (the {n} frames already received are kept)")
    try:
        bpy.ops.ed.undo_push(message="Facecast: Render to sequencer")
    except RuntimeError:
        pass


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
    SESSION.link.close()
    SESSION.local.stop()
    SESSION.task = None


def drive(timeout_s: float, until: Any = None) -> None:
    """Call :func:`step` until the task ends (or ``until()`` is true) — for scripts and
    tests only; Blender's UI uses the timer instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        step()
        if until is not None and until():
            return
        if until is None and not SESSION.busy and SESSION.ctx.get("applied", True):
            return
        time.sleep(0.02)
    raise TimeoutError(f"Facecast step loop did not finish in {timeout_s} s")

