"""The add-on's bpy-free cores (frame timing, PNG and depth writing, cache keys, addresses,
rig mapping, pose blending), in plain Python, imported from the staged package exactly
as the zip lays it out."""

from __future__ import annotations

import errno
import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from tests.png_decode import decode_png


@pytest.fixture(scope="module")
def pkg(staged_addon: ModuleType) -> SimpleNamespace:
    """The core modules under test (``core/``) and the vendored ``shared``, by name."""
    return SimpleNamespace(
        shared=importlib.import_module(f"{staged_addon.__name__}.shared"),
        atomic_file=importlib.import_module(f"{staged_addon.__name__}.shared.atomic_file"), **{
        sub: importlib.import_module(f"{staged_addon.__name__}.core.{sub}")
        for sub in ("animate_job", "render_job", "frame_writer", "backend_link",
                    "audio_io",
                "rig_mapping", "pose_blend", "backend_session", "job_stall")})


def test_audio_span_ntsc_and_clipping(pkg: ModuleType) -> None:
    g = pkg.animate_job
    fps = g.scene_fps(30, 1.001)
    assert fps == g.Fraction(30000, 1001) and g.scene_fps(24, 1.0) == 24
    # Blender stores fps_base as a 32-bit float: 1.001 reads back as 1.00100004673...
    assert g.scene_fps(30, float(np.float32(1.001))) == g.Fraction(30000, 1001)
    assert g.scene_fps(30000, 1001) == g.Fraction(30000, 1001)
    span = g.audio_span(1, 60.0, fps)
    assert (span.first, span.count, span.audio_offset_s) == (1, 1799, 0.0)
    # A strip trimmed to frames 101..200 starting at frame 1: offset is exact seconds.
    span = g.audio_span(1, 60.0, fps, visible=(101, 201))
    assert (span.first, span.count) == (101, 100)
    assert span.audio_offset_s == pytest.approx(100 * 1001 / 30000)
    span = g.audio_span(1, 60.0, 24.0, scene_range=(10, 19))
    assert (span.first, span.count) == (10, 10)
    with pytest.raises(pkg.shared.errors.InputError, match="overlap"):
        g.audio_span(1, 1.0, 24.0, scene_range=(100, 120))
    with pytest.raises(pkg.shared.errors.InputError):
        g.scene_fps(0, 1.0)


def _request(pkg: SimpleNamespace, fps, span, text: str = "", **options):
    """The add-on's animate request over ``span`` of a 10 s ramp (sample i = i)."""
    emotion = pkg.shared.emotions.EmotionArrays.checked(
        np.tile(np.eye(8, dtype=np.float32)[2] * 0.5, (span.count, 1)), np.ones(span.count))
    return pkg.animate_job.animate_request(np.arange(16000 * 10, dtype=np.float32), 16000,
                                           fps, span, emotion, text, **options)


def test_request_slices_audio_with_exact_remainder(pkg: SimpleNamespace) -> None:
    g = pkg.animate_job
    span = g.audio_span(-23, 10.0, g.Fraction(24), scene_range=(1, 48))  # 1 s into the file
    params, (audio, weights, intensity) = g.submission(_request(pkg, g.Fraction(24), span),
                                                       send_text=False)
    assert audio[0] == 16000 and audio.size >= 2 * 16000
    assert params["start_offset"] == "0" and params["fps"] == "24"
    assert params["n_frames"] == 48 and params["first_frame"] == 1
    assert weights.shape == (48, 8) and intensity.shape == (48,)


def test_request_sends_what_the_addon_sent_before_the_shared_type(pkg: SimpleNamespace) -> None:
    """The params the add-on wrote itself (before ``AnimateJobRequest``), for a 29.97 fps
    span 0.8008 s into the file: the job reads the same request from the new ones."""
    g, read = pkg.animate_job, pkg.shared.animate_request.AnimateJobRequest.from_wire
    fps = g.scene_fps(30, 1.001)
    span = g.audio_span(-23, 10.0, fps, scene_range=(1, 48))
    options = {"seed": 3, "variation": 0.25, "head_motion": 1.0, "articulation": 1.2,
               "blinks": False, "landmarks": True}
    before = {"fps": "30000/1001", "sample_rate": 16000, "first_frame": 1, "n_frames": 48,
              "start_offset": 4.999999999999449e-05, **options, "text": "Hi."}
    params, arrays = g.submission(_request(pkg, fps, span, "Hi.", **options), send_text=True)
    assert set(params) == set(before) | {"transcribe"} and params["transcribe"] is True
    assert arrays[0].shape == (25628,) and (arrays[0][0], arrays[0][-1]) == (12812, 38439)
    old, new = read(before, arrays), read(params, arrays)
    for name in ("sample_rate", "fps", "first_frame", "n_frames", "seed", "variation",
                 "head_motion", "articulation", "blinks", "landmarks", "text", "transcribe"):
        assert getattr(new, name) == getattr(old, name), name
    # 0.8008 s = 12812 samples + 1/20000 s: the span's float maths used 30 / 1.001 before
    # and 30000/1001 now (one rate for the span and the wire); both are 1/20000 +- 1e-17.
    assert abs(new.start_offset - old.start_offset) < 1e-15
    assert abs(new.start_offset - g.Fraction(1, 20000)) < 1e-15
    assert new.fps == g.Fraction(30000, 1001)
    np.testing.assert_array_equal(new.emotion.weights, old.emotion.weights)


def test_task_reads_chunks_by_name_and_refuses_one_that_does_not_fit(
        pkg: SimpleNamespace) -> None:
    """The result handler on the wire's own bytes: chunks out of order join by start,
    DONE's transcript is read, and a mismatched chunk ends the task naming the array."""
    g, ar, proto = pkg.animate_job, pkg.shared.animate_result, pkg.shared.protocol
    span = g.audio_span(1, 2.0, g.Fraction(24), scene_range=(1, 8))
    task = g.AnimateTask(_request(pkg, g.Fraction(24), span), span)

    def chunk(index: int, start: int, n: int) -> proto.Event:
        t = np.arange(start, start + n, dtype=np.float32) / 10
        body, arrays = ar.AnimateChunk(index, start, np.repeat(t[:, None], 52, 1),
                                       np.zeros((n, 4, 4)), t, np.zeros((n, 8)), t).to_wire()
        return proto.Event(proto.MsgType.RESULT, "j", body, arrays)

    task.on_event(chunk(1, 5, 3))
    task.on_event(chunk(0, 0, 5))
    assert task.frames_received() == 8 and task.message == "received 8 frames"
    task.on_event(proto.Event(proto.MsgType.DONE, "j", {
        "n_frames": 8, "transcript": {"text": " Hi there. ", "report": "heard 2 words"}}))
    assert task.state == "done" and task.transcript() == ("Hi there.", "heard 2 words")
    np.testing.assert_allclose(task.blendshapes()[:, 0], np.arange(8) / 10, atol=1e-7)
    assert sorted(task.outputs()) == sorted(ar.RESULT_ARRAYS[:-1])

    bad = g.AnimateTask(task.request, span)
    event = chunk(0, 0, 8)
    event.arrays[0] = event.arrays[0][:, :51]
    bad.on_event(event)
    assert bad.state == "error" and "blendshapes of shape (8, 51)" in bad.error
    bad.on_event(proto.Event(proto.MsgType.CANCELLED, "j"))  # after the end: ignored
    assert bad.state == "error"
    short = g.AnimateTask(task.request, span)
    short.on_event(chunk(0, 0, 5))
    with pytest.raises(pkg.shared.errors.InputError, match="5 frames of blendshapes, "
                       "expected 8"):
        short.blendshapes()


def test_png_round_trip_and_atomic_write(pkg: ModuleType, tmp_path: Path) -> None:
    fw = pkg.frame_writer
    rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    assert np.array_equal(decode_png(fw.encode_png(rgba)), rgba)
    floats = fw.to_rgba8(np.full((2, 2, 3), 0.5, np.float32))
    assert floats.shape == (2, 2, 4) and (floats[..., 3] == 255).all()
    mm = np.array([[0, 1000], [65535, 7]], np.uint16)
    got = decode_png(fw.encode_png(mm))
    assert got.dtype == np.uint16 and np.array_equal(got[..., 0], mm)
    path = tmp_path / "f" / "000001.png"
    pkg.atomic_file.write_atomic(path, b"x")
    assert path.read_bytes() == b"x" and not list(path.parent.glob(".tmp-*"))
    with pytest.raises(pkg.shared.errors.InputError):
        fw.to_rgba8(np.zeros((4, 4), np.uint8))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
        pkg: ModuleType, staged_addon: ModuleType, tmp_path: Path) -> None:
    """A write that fails half-way (here a real one: the file-size limit stops it after
    4 KiB of 100 KiB, EFBIG) leaves the previous frame byte for byte and no temp file; so
    does one interrupted after the bytes are written (Ctrl-C before the rename)."""
    frame = tmp_path / "frames" / "000001.png"
    frame.parent.mkdir()
    frame.write_bytes(b"the old frame")
    root, name = Path(staged_addon.__file__).parents[1], staged_addon.__name__
    script = (
        "import importlib, resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE,"
        " (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        f"atomic = importlib.import_module({name + '.shared.atomic_file'!r})\n"
        "try:\n"
        "    atomic.write_atomic(sys.argv[1], bytes(100_000))\n"
        "except OSError as exc:\n"
        "    print('failed', exc.errno)\n")
    out = subprocess.run([sys.executable, "-c", script, str(frame)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.split() == ["failed", str(errno.EFBIG)]
    assert frame.read_bytes() == b"the old frame"
    assert sorted(p.name for p in frame.parent.iterdir()) == ["000001.png"]

    def interrupted(src, dst):  # the bytes are all in the temp file; Ctrl-C arrives
        assert Path(src).read_bytes() == b"new"
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pkg.atomic_file.write_atomic(frame, b"new")
    assert frame.read_bytes() == b"the old frame"
    assert sorted(p.name for p in frame.parent.iterdir()) == ["000001.png"]
    pkg.atomic_file.write_atomic(frame, b"new")
    assert frame.read_bytes() == b"new"
    assert sorted(p.name for p in frame.parent.iterdir()) == ["000001.png"]


def test_a_killed_writers_temp_files_are_removed(pkg: ModuleType, tmp_path: Path) -> None:
    """Temp files of a process that is gone are removed by the next write into their
    folder; a running process's (this one's) are left alone."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    folder = tmp_path / "frames"
    folder.mkdir()
    stale = folder / f".tmp-{gone}-0123456789ab.png"
    live = folder / f".tmp-{os.getpid()}-0123456789ab.png"
    for p in (stale, live):
        p.write_bytes(b"half")
    pkg.frame_writer.write_frame(folder, 5, np.zeros((2, 3, 4), np.uint8))
    assert not stale.exists() and live.exists()
    assert decode_png((folder / "000005.png").read_bytes()).shape == (2, 3, 4)


def test_depth_is_written_in_metres_as_sent(pkg: ModuleType, tmp_path: Path) -> None:
    """The backend sends uint16 mm (487-796 on the demo subject): the EXR holds the same
    distances in metres (Blender's Z-pass units), and "no surface" (0) becomes 1e10 m so
    it never occludes CG. Scaling mm by 1000 once saturated every surface pixel."""
    from shared.protocol import Event, MsgType

    rng = np.random.default_rng(1)
    task = pkg.render_job.RenderTask(tmp_path, first_frame=10, n_frames=3)
    sent = []
    for i in range(3):
        depth = rng.integers(487, 797, (6, 9)).astype(np.uint16)
        depth[0] = 0  # no surface
        sent.append(depth)
        task.on_event(Event(MsgType.FRAME, "j", {"index": i, "depth_units": "mm"},
                            [np.zeros((6, 9, 4), np.uint8), depth]))
    assert task.written == {10, 11, 12} and task.state == "running"
    exr = pkg.shared.depth_exr
    for i, depth in enumerate(sent):
        got = exr.decode_depth_exr((tmp_path / "depth" / f"{10 + i:06d}.exr").read_bytes())
        assert got.dtype == np.float32 and got.shape == (6, 9)
        assert np.allclose(got[1:], depth[1:] / 1000.0, atol=1e-7)
        assert np.all(got[0] == exr.SKY_DEPTH)
    # Float depth is metres (or mm when the body says so); junk is "no surface".
    metres = np.array([[0.4871, np.nan], [-1.0, 70.0]], np.float32)
    assert np.allclose(exr.depth_metres(metres), [[0.4871, 1e10], [1e10, 70.0]])
    assert exr.depth_metres(np.array([[512.4]], np.float32), "mm")[0, 0] == \
        pytest.approx(0.5124)
    with pytest.raises(pkg.shared.errors.InputError, match="units"):
        exr.depth_metres(np.zeros((2, 2), np.float32), "inches")


def test_a_frame_that_does_not_fit_fails_the_render_naming_it(pkg: ModuleType,
                                                              tmp_path: Path) -> None:
    """FRAME is read once as a RenderedFrame: float pixels or a row past the request stop
    the task with one line naming the array or the row; frames already written stay."""
    from shared.protocol import Event, MsgType

    def sent(index: int, rgba: np.ndarray) -> Event:
        return Event(MsgType.FRAME, "j", {"index": index, "depth_units": "mm"},
                     [rgba, np.zeros((6, 9), np.uint16)])

    task = pkg.render_job.RenderTask(tmp_path, first_frame=10, n_frames=2)
    task.on_event(sent(0, np.zeros((6, 9, 4), np.uint8)))
    task.on_event(sent(1, np.zeros((6, 9, 4), np.float32)))
    assert task.state == "error" and "rgba as float32" in task.error, task.error
    assert task.written == {10} and sorted(p.name for p in tmp_path.glob("*.png")) == \
        ["000010.png"]
    task = pkg.render_job.RenderTask(tmp_path, first_frame=10, n_frames=2)
    task.on_event(sent(2, np.zeros((6, 9, 4), np.uint8)))
    assert task.state == "error" and "row 2 of a 2-frame render" in task.error
    task = pkg.render_job.RenderTask(tmp_path, first_frame=10, n_frames=1)
    task.on_event(Event(MsgType.DONE, "j", {"frames": 1, "subject": "anna",
                                           "provenance": {"watermark": {}}}))
    assert task.done == pkg.shared.render_result.RenderDone(1, subject="anna",
                                                            provenance={"watermark": {}})


def test_conditioning_hash_is_stable_and_sensitive(pkg: ModuleType) -> None:
    r = pkg.render_job
    bs = np.linspace(0, 1, 52 * 4, dtype=np.float32).reshape(4, 52)
    cam = {"lens": 50.0, "matrix_world": np.eye(4).tolist()}
    a = r.conditioning_hash("anna", cam, {"blendshapes": bs}, 1)
    assert a == r.conditioning_hash("anna", dict(cam), {"blendshapes": bs.copy()}, 1)
    zeros = np.zeros((2, 52), np.float32)
    assert r.conditioning_hash("a", cam, {"b": zeros}, 1) == \
        r.conditioning_hash("a", cam, {"b": -zeros}, 1)
    assert a != r.conditioning_hash("anna", cam, {"blendshapes": bs * 0.9}, 1)
    assert a != r.conditioning_hash("ben", cam, {"blendshapes": bs}, 1)
    assert a != r.conditioning_hash("anna", {**cam, "lens": 35.0}, {"blendshapes": bs}, 1)
    assert a != r.conditioning_hash("anna", cam, {"blendshapes": bs}, 2)


def test_addresses_and_online_access(pkg: ModuleType) -> None:
    b = pkg.backend_link
    assert b.is_loopback is pkg.shared.net.is_loopback  # one rule, shared with the server
    b.check_online_access("tcp://127.8.0.1:5557", online_access=False)
    b.check_online_access("ipc:///tmp/facecast", online_access=False)
    b.check_online_access("tcp://127.0.0.1:5557", online_access=False)
    b.check_online_access("tcp://render-box:5557", online_access=True)
    with pytest.raises(pkg.shared.errors.FacecastError, match="online access"):
        b.check_online_access("tcp://render-box:5557", online_access=False)
    cmd = b.backend_command("/venv/bin/python3", "tcp://127.0.0.1:1", "/k", Path("/r"))
    assert cmd[:4] == ["/venv/bin/python3", "-m", "backend.cli", "serve"]
    assert b.backend_command("/usr/bin/facecast", "tcp://x:1", "", Path("/r"))[:2] == \
        ["/usr/bin/facecast", "serve"]


def test_wave_fallback_reads_real_speech(pkg: ModuleType) -> None:
    from tests.conftest import data_path

    pcm = pkg.audio_io.load_pcm(str(data_path("speech", "eng.wav")))
    assert pcm.dtype == np.float32 and pcm.size == 960000 and 0.1 < np.abs(pcm).max() <= 1.0
    with pytest.raises(pkg.shared.errors.InputError, match="does not exist"):
        pkg.audio_io.load_pcm("/nonexistent.wav")


def test_dialogue_text_is_sent_only_to_a_backend_that_declares_it(pkg: ModuleType) -> None:
    g = pkg.animate_job
    span = g.audio_span(1, 2.0, 24.0)
    text = g.dialogue_text("  Grüße — 日本語!\nLine two.  ")
    assert text == "Grüße — 日本語!\nLine two."
    req = _request(pkg, g.Fraction(24), span, text)
    assert "text" not in g.submission(req, send_text=False)[0]
    assert g.submission(req, send_text=True)[0]["text"] == text
    assert "text" not in g.submission(_request(pkg, g.Fraction(24), span), send_text=True)[0]
    assert g.dialogue_text("x" * g.MAX_TEXT_CHARS) == "x" * g.MAX_TEXT_CHARS
    with pytest.raises(pkg.shared.errors.InputError, match="characters long"):
        g.dialogue_text("x" * (g.MAX_TEXT_CHARS + 1))
    with pytest.raises(pkg.shared.errors.InputError, match="NUL"):
        g.dialogue_text("a\x00b")


def test_stall_is_reported_after_job_timeout_of_unchanged_progress(pkg: ModuleType) -> None:
    w = pkg.job_stall.StallWatch(timeout_s=120.0, changed_at=0.0)
    assert not w.observe(0.0, "sent to the backend", 0.0)
    assert not w.observe(0.25, "frame 2 (2/8)", 100.0)  # progress at t=100
    # Heartbeats repeat the last fraction and message: that is no progress.
    for t in (130.0, 200.0, 219.99):
        assert not w.observe(0.25, "frame 2 (2/8)", t) and w.note(t) == ""
    assert w.observe(0.25, "frame 2 (2/8)", 220.0) and w.stalled
    assert w.note(245.4) == "No progress for 145 s — the backend may be stuck; Cancel or wait"
    assert w.observe(0.25 + 1e-9, "frame 2 (2/8)", 300.0)  # float noise is no progress
    # A new message (same fraction) or a new fraction clears it, and the clock restarts.
    assert not w.observe(0.25, "decoding", 301.0) and w.note(301.0) == ""
    assert w.idle_s(302.0) == pytest.approx(1.0)
    assert w.observe(0.25, "decoding", 421.0)
    assert not w.observe(0.5, "decoding", 422.0)
    # A job waiting for a compute slot is not "stuck": the line says it is queued.
    q = pkg.job_stall.StallWatch(timeout_s=10.0, changed_at=0.0)
    q.observe(0.0, "queued: waiting for a compute slot", 0.0)
    assert q.observe(0.0, "queued: waiting for a compute slot", 12.0)
    assert q.note(12.0).startswith("Queued for 12 s — the backend is busy with other jobs")


def test_local_backend_is_started_only_when_nothing_answers(pkg: ModuleType) -> None:
    import socket

    b = pkg.backend_session
    session = b.BackendSession()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        busy = f"tcp://127.0.0.1:{listening.getsockname()[1]}"
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            free = f"tcp://127.0.0.1:{s.getsockname()[1]}"
            assert session.should_start_local(b.BackendSettings(address=free))
            assert session.should_start_local(b.BackendSettings(address="tcp://localhost:0"))
            # Something (e.g. `facecast serve` in a terminal) listens: use it, not a twin.
            assert not session.should_start_local(b.BackendSettings(address=busy))
            # The preference off, or a backend on another machine: never.
            assert not session.should_start_local(b.BackendSettings(address=free,
                                                                    start_local=False))
            assert not session.should_start_local(
                b.BackendSettings(address="tcp://192.0.2.1:5557"))
            # One of ours is already starting: wait for it rather than start another.
            session.local.state = "starting"
            assert not session.should_start_local(b.BackendSettings(address=free))
