"""The demo pipeline: speech -> backend -> animate -> render -> MP4, .blend and report.

Everything goes through the product's real paths: a real ``facecast serve`` child, the
signed protocol, the ``animate`` and ``render`` jobs, and the add-on's own code for the
.blend. Each step is timed for the report.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from backend.subject.contract import HEAD_POSE_MOTION
from shared.animate_request import AnimateJobRequest
from shared.animate_result import AnimateChunk, join_chunks
from shared.audio import SAMPLE_RATE
from shared.emotions import load_emotion_track, validate_track
from shared.errors import FacecastError, InputError
from shared.protocol import BlockingClient, MsgType, load_key
from shared.protocol.keys import ensure_key_file
from shared.render_request import RenderJobRequest
from shared.render_result import RenderDone, RenderedFrame

from ..atomic_file import check_writable, staged_folder, write_atomic
from ..audio import Audio, load_audio
from ..media.face_preview import FacePreview
from ..media.frame_files import stale_frames
from ..media.mp4 import write_mp4
from ..motion.animation_file import Animation, animation_from_job, write_animation
from ..progress import progress
from ..provenance.credentials import sign_video
from ..provenance.stamp import RenderStamp
from ..provenance.verify import confirmed_claim
from ..server.launcher import BackendProcess
from ..subject.framing import front_camera
from ..subject.store import read_manifest, resolve_subject
from .defaults import DEFAULT_LINE, QUICK_LINE, default_emotion_track

#: The demo keeps every rendered frame for its MP4 and renders a few frames a second at
#: most on a CPU: two minutes (3000 frames at 25 fps, 0.8 GB of RGBA at 256^2) is its
#: longest line.
MAX_AUDIO_SECONDS = 120.0
MAX_TEXT_CHARS = 1000
BACKGROUND = np.array([38, 40, 48], np.float32)


@dataclass
class DemoOptions:
    out: Path
    quick: bool = False
    audio: Path | None = None
    text: str | None = None
    emotion: str | None = None
    subject: str = "default"
    fps: int = 25
    size: int | None = None
    device: str = "auto"
    blend: bool = True
    seed: int = 0
    threads: int | None = None  # torch threads of the backend (None: its default)

    @property
    def render_size(self) -> int:
        return self.size or (128 if self.quick else 256)


@dataclass
class DemoReport:
    steps: dict[str, float] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.steps[name] = round(time.perf_counter() - t, 2)


def run_demo(opts: DemoOptions) -> DemoReport:
    """Everything the user gave is checked before the work (subject, audio, emotion
    track, output folder); the run writes into a staged folder that replaces the files
    of ``opts.out`` only when it succeeded, so a failure leaves no new folder behind
    and an earlier demo's outputs as they were."""
    report = DemoReport()
    t0 = time.perf_counter()
    subject_dir = resolve_subject(opts.subject)
    manifest = read_manifest(subject_dir)
    with report.step("speech"):
        audio = _speech(opts)
    n_frames = int(np.ceil(audio.duration * opts.fps))
    emotion = _emotion(opts.emotion, n_frames)
    check_writable(opts.out, "output folder", folder=True)
    report.facts.update({"audio_seconds": round(audio.duration, 2), "fps": opts.fps,
                         "frames": n_frames, "emotion_track": emotion,
                         "subject": str(subject_dir), "render_size": opts.render_size})

    with staged_folder(opts.out) as out:
        sf.write(out / "speech.wav", audio.samples, audio.sample_rate, subtype="PCM_16")
        keys_dir = out / ".facecast"
        key_file, _ = ensure_key_file(keys_dir / "hmac.key")
        started = time.perf_counter()
        threads = None if opts.threads is None else ["--threads", str(opts.threads)]
        with BackendProcess(key_file=key_file, log_file=out / "backend.log",
                            extra_args=threads) as backend:
            report.steps["backend start"] = round(time.perf_counter() - started, 2)
            with BlockingClient(backend.endpoint, key=load_key(key_file),
                                timeout_s=30) as client:
                info = client.call("info").body
                report.facts["device"] = info.get("gpu") or info.get("device")
                report.facts["torch"] = info.get("torch")
                with report.step("animate"):
                    anim = _animate(client, audio.samples, opts, emotion, n_frames)
                write_animation(out / "animation.npz", anim)
                report.outputs["animation"] = "animation.npz"
                camera = front_camera(manifest, opts.render_size)
                (out / "camera.json").write_text(json.dumps(camera, indent=1))
                with report.step("render"):
                    frames = _render(client, opts, anim.to_arrays(), camera,
                                     out / "frames")
        report.facts["render_fps"] = round(n_frames / max(report.steps["render"], 1e-6), 2)

        with report.step("video"):
            _video(out / "facecast_demo.mp4", frames, anim.landmarks, opts.fps,
                   audio.samples)
            sign_video(out / "facecast_demo.mp4", frames.stamp)
    # frames/ is the demo's own folder: an earlier, longer run's tail is not this run's.
    for path in stale_frames(opts.out / "frames", 1, n_frames):
        path.unlink(missing_ok=True)
    out = opts.out
    stamp = frames.stamp
    with report.step("verify"):  # the report claims what `facecast verify` confirms
        pngs = sorted((out / "frames").glob("*.png"))
        report.facts["provenance"] = (
            confirmed_claim(out / "facecast_demo.mp4", pngs[::max(1, len(pngs) // 10)],
                            stamp.payload)
            + f"; payload subject {stamp.payload.subject_hex} render "
              f"{stamp.payload.render_hex}; {stamp.consent_line}")
    report.outputs["video"] = "facecast_demo.mp4"
    if opts.blend:
        with report.step("blend"):
            blend = _blend(out, out / "speech.wav", opts.fps)
        if blend:
            report.outputs["blend"] = blend.name
    report.steps["total"] = round(time.perf_counter() - t0, 2)
    _write_report(out, report)
    return report


def _speech(opts: DemoOptions) -> Audio:
    """The line to animate, at 16 kHz: the user's recording or espeak-ng's speech."""
    if opts.audio is not None:
        audio = load_audio(opts.audio, sample_rate=SAMPLE_RATE)
    else:
        from ..speech import synthesize

        speech = synthesize(opts.text or (QUICK_LINE if opts.quick else DEFAULT_LINE))
        audio = load_audio((speech.samples, speech.sample_rate), sample_rate=SAMPLE_RATE)
    if audio.duration > MAX_AUDIO_SECONDS:
        raise InputError(f"{opts.audio or 'the spoken --text'} is {audio.duration:.0f} s "
                         f"long; the demo renders up to {MAX_AUDIO_SECONDS:.0f} s",
                         "cut it shorter, or use `facecast animate` and `facecast render` "
                         "for long lines")
    return audio


def _emotion(emotion: str | None, n_frames: int) -> str:
    """The emotion track to send, checked here (before the work): the user's, or the
    demo's default spread over the line."""
    if emotion is None:
        return default_emotion_track(n_frames)
    if emotion.strip().lower() != "auto":
        validate_track(load_emotion_track(emotion))
    return emotion


def _animate(client: BlockingClient, pcm: np.ndarray, opts: DemoOptions, emotion: str,
             n_frames: int) -> Animation:
    """The ``animate`` job's chunks as one :class:`Animation`: the same fields, file and
    head-pose convention as ``facecast animate`` writes, so ``facecast render`` accepts
    the demo's animation.npz."""
    params, arrays = AnimateJobRequest(np.asarray(pcm, np.float32), SAMPLE_RATE,
                                       Fraction(opts.fps), n_frames=n_frames,
                                       emotion=emotion, seed=opts.seed).to_wire()
    chunks: list[AnimateChunk] = []
    bar = progress(n_frames, "animate", "frame", leave=False)
    done = client.call("animate", params, arrays,
                       on_event=lambda e: _collect(e, chunks, bar))
    bar.close()
    if not chunks:
        raise FacecastError("the animate job returned no frames", "see backend.log")
    return animation_from_job(join_chunks(chunks), done.body.get("fps") or str(opts.fps),
                              SAMPLE_RATE,
                              first_frame=int(done.body.get("first_frame", 0)))


def _collect(event, chunks: list, bar) -> None:
    if event.kind != MsgType.RESULT:
        return
    chunks.append(AnimateChunk.from_wire(event.body, event.arrays))
    bar.update(chunks[-1].n_frames)


class RenderedFrames(list):
    """The RGBA frames of a render job, in order, and its provenance (``stamp``): what
    the demo's MP4 is signed with."""

    def __init__(self, frames: list, stamp: RenderStamp) -> None:
        super().__init__(frames)
        self.stamp = stamp


def _render(client: BlockingClient, opts: DemoOptions, anim: dict[str, np.ndarray],
            camera: dict, folder: Path) -> RenderedFrames:
    """Stream RGBA frames; each is kept in memory for the video and written as the
    signed PNG the job sends (its C2PA credentials intact)."""
    folder.mkdir(parents=True, exist_ok=True)
    params, arrays = render_request(anim, opts.subject, camera, opts.device).to_wire()
    n = len(anim["blendshapes"])
    frames: list[np.ndarray | None] = [None] * n
    bar = progress(n, "render", "frame", leave=False)

    def on_event(event) -> None:
        if event.kind == MsgType.FRAME:
            got = RenderedFrame.from_wire(event.body, event.arrays)
            if got.png is None or got.index >= n:
                raise FacecastError(f"The backend sent render row {got.index} without its "
                                    f"signed PNG or past the {n} asked for",
                                    "update the backend to this Facecast version")
            frames[got.index] = np.array(got.rgba)  # a copy: the message's buffer is not kept
            # Named by scene frame number, as the add-on names them.
            write_atomic(folder / f"{got.index + 1:06d}.png",
                         lambda f, png=got.png: f.write(png))
            bar.update(1)

    done = client.call("render", params, arrays, on_event=on_event, credit=8)
    bar.close()
    missing = [i for i, f in enumerate(frames) if f is None]
    if missing:
        raise FacecastError(f"{len(missing)} frames did not arrive", "see backend.log")
    # frames/ is the demo's own folder: an earlier, longer run's tail is not this run's.
    for path in stale_frames(folder, 1, n):
        path.unlink(missing_ok=True)
    return RenderedFrames(frames, RenderStamp.from_dict(RenderDone.from_wire(done.body)
                                                        .provenance))


def render_request(anim: dict[str, np.ndarray], subject: str, camera: dict,
                   device: str) -> RenderJobRequest:
    """The render job's request for an animation from the ``animate`` job, as it is:
    blendshapes (the backend retargets them onto the subject) and the head motion, named
    as such (``backend.subject.contract``); the head rests at the contract's default
    placement, where ``front_camera`` looks. Frames come back as signed PNGs."""
    arrays = {"blendshapes": np.ascontiguousarray(anim["blendshapes"], np.float32),
              "head_pose": np.ascontiguousarray(anim["head_pose"], np.float32)}
    return RenderJobRequest(subject, camera, arrays, head_pose_frame=HEAD_POSE_MOTION,
                            device=device, signed_png=True)


#: The demo's video is at least this many pixels tall: re-encoded at H.264 CRF 28, the
#: invisible mark of a 128-pixel video is lost, and enlarged by whole pixels it is kept
#: (docs/PROVENANCE.md).
MIN_VIDEO_SIDE = 256


def _video(path: Path, frames: list[np.ndarray], landmarks: np.ndarray, fps: int,
           pcm: np.ndarray) -> None:
    """NeRF render (over a flat background) beside the animated landmark mesh, at least
    :data:`MIN_VIDEO_SIDE` tall (smaller renders are enlarged by whole pixels)."""
    size = frames[0].shape[0]
    scale = -(-MIN_VIDEO_SIDE // size)  # ceil: 128 -> 2, 256 and up -> 1
    preview = FacePreview(size)

    def composed() -> Iterator[np.ndarray]:
        for rgba, lm in zip(frames, landmarks, strict=True):
            a = rgba[..., 3:].astype(np.float32) / 255.0
            nerf = rgba[..., :3].astype(np.float32) * a + BACKGROUND * (1 - a)
            side = np.concatenate([nerf.astype(np.uint8), preview.render(lm)], axis=1)
            yield side.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else side

    bar = progress(len(frames), "video", "frame", leave=False)

    def counted() -> Iterator[np.ndarray]:
        for frame in composed():
            bar.update(1)
            yield frame

    write_mp4(path, counted(), Fraction(fps), pcm, SAMPLE_RATE)
    bar.close()


def _blend(out: Path, audio_path: Path, fps: int) -> Path | None:
    """Build the .blend in a bpy child process; None (and a note) without bpy."""
    import importlib.util

    if importlib.util.find_spec("bpy") is None:
        print("facecast demo: bpy is not installed, so no .blend is written "
              "(bash scripts/install.sh --dev installs it, or pip install bpy==5.0.1)",
              file=sys.stderr)
        return None
    out, audio_path = out.resolve(), audio_path.resolve()  # the child runs elsewhere
    path = out / "facecast_demo.blend"
    cmd = [sys.executable, "-m", "backend.demo.blend_scene", "--animation",
           str(out / "animation.npz"), "--audio", str(audio_path), "--frames",
           str(out / "frames"), "--camera", str(out / "camera.json"), "--fps", str(fps),
           "--out", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0 or not path.is_file():
        raise FacecastError(f"building the .blend failed: {done.stderr[-1500:]}",
                            "run with --no-blend to skip it, and report the error")
    return path


def _write_report(out: Path, report: DemoReport) -> None:
    data = {"steps_seconds": report.steps, **report.facts, "outputs": report.outputs,
            "python": platform.python_version(), "machine": platform.machine()}
    (out / "report.json").write_text(json.dumps(data, indent=2))
    lines = ["# Facecast demo report", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.steps.items()]
    lines += ["", *(f"- **{k}**: {v}" for k, v in report.facts.items()), "",
              "Outputs: " + ", ".join(f"`{v}`" for v in report.outputs.values())]
    (out / "report.md").write_text("\n".join(lines) + "\n")
