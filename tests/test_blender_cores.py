"""The add-on's bpy-free cores (frame timing, PNG writing, cache keys, addresses), in plain
Python, imported from the staged package exactly as the zip lays it out."""

from __future__ import annotations

import importlib
import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def pkg(staged_addon: ModuleType) -> ModuleType:
    for sub in ("generate_job", "render_job", "backend_link", "audio_io"):
        importlib.import_module(f"{staged_addon.__name__}.{sub}")
    return staged_addon


def test_audio_span_ntsc_and_clipping(pkg: ModuleType) -> None:
    g = pkg.generate_job
    fps = g.scene_fps(30, 1.001)
    assert g.fps_fraction(30, 1.001) == g.Fraction(30000, 1001)
    assert g.fps_fraction(24, 1.0) == 24
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


def test_request_slices_audio_with_exact_remainder(pkg: ModuleType) -> None:
    g = pkg.generate_job
    pcm = np.arange(16000 * 10, dtype=np.float32)
    span = g.audio_span(-23, 10.0, 24.0, scene_range=(1, 48))  # starts 1 s into the file
    req = g.GenerateRequest(pcm, 16000, 24.0, span, np.zeros((48, 8), np.float32),
                            np.ones(48, np.float32), fps_text="24/1")
    audio, _weights, _intensity = req.arrays()
    assert audio[0] == 16000 and audio.size >= 2 * 16000
    assert req.params()["start_offset"] == pytest.approx(0.0)
    assert req.params()["n_frames"] == 48 and req.params()["first_frame"] == 1


def _decode_png(data: bytes) -> tuple[int, int, int, np.ndarray]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth = header[:3]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, -1)
    assert (raw[:, 0] == 0).all()  # filter "None" on every row
    return w, h, depth, raw[:, 1:]


def test_png_round_trip_and_atomic_write(pkg: ModuleType, tmp_path: Path) -> None:
    r = pkg.render_job
    rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    w, h, depth, rows = _decode_png(r.encode_png(rgba))
    assert (w, h, depth) == (7, 5, 8) and np.array_equal(rows.reshape(5, 7, 4), rgba)
    floats = r.to_rgba8(np.full((2, 2, 3), 0.5, np.float32))
    assert floats.shape == (2, 2, 4) and (floats[..., 3] == 255).all()
    mm = np.array([[0, 1000], [65535, 7]], np.uint16)
    w, h, depth, rows = _decode_png(r.encode_png(mm))
    assert depth == 16 and np.array_equal(rows.view(">u2").reshape(2, 2), mm)
    path = tmp_path / "f" / "000001.png"
    r.write_atomic(path, b"x")
    assert path.read_bytes() == b"x" and not list(path.parent.glob("*.tmp"))
    with pytest.raises(pkg.shared.errors.InputError):
        r.to_rgba8(np.zeros((4, 4), np.uint8))


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
    assert b.is_local_address("tcp://127.0.0.1:5557")
    assert b.is_local_address("tcp://localhost:5557") and b.is_local_address("tcp://[::1]:5")
    assert b.is_local_address("ipc:///tmp/facecast")
    assert not b.is_local_address("tcp://192.168.1.20:5557")
    assert not b.is_local_address("tcp://render-box:5557")
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
