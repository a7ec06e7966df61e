"""The Facecast panel's workflows in real Blender (PyPI bpy) against a real backend.

Each test runs ``blender_scripts/facecast_flow.py`` in its own process with a throw-away
Blender user dir, installs the built cp311 zip, builds a scene with the demo rig and a
sound strip of real speech (../shared/data/speech/eng.wav), starts the backend through
the add-on's own Start Backend operator, and drives ``runtime.step()`` in a loop as
Blender's timer would. Plumbing tests let ``stream_test`` stand in for the render job
(and for animate's output arrays); the real-job test runs the real ``animate``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import data_path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "blender_scripts" / "facecast_flow.py"


pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed"),
]


@pytest.fixture
def cp311_zip(addon_zips: dict[str, Path]) -> Path:
    return addon_zips["cp311"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_flow(zip_path: Path, scenario: str, tmp_path: Path, timeout_s: float = 2.0,
             python: str = sys.executable) -> dict:
    """Run one scenario in a fresh bpy process; return its JSON result."""
    wav = data_path("speech", "eng.wav")
    from shared.protocol.keys import ensure_key_file

    key, _ = ensure_key_file(tmp_path / "keys" / "hmac.key")
    home = tmp_path / "home"
    cfg = {"wav": str(wav), "python": sys.executable, "key_file": str(key),
           "address": f"tcp://127.0.0.1:{_free_port()}", "timeout": timeout_s}
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ)
    env.update(BLENDER_USER_RESOURCES=str(home), BLENDER_USER_CONFIG=str(home / "config"),
               BLENDER_USER_SCRIPTS=str(home / "scripts"),
               BLENDER_USER_EXTENSIONS=str(home / "extensions"),
               TMPDIR=str(tmp_path / "tmp"))  # unsaved .blend: frames go under TMPDIR
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "result.json"
    proc = subprocess.run([python, str(SCRIPT), str(zip_path), scenario,
                           str(cfg_path), str(out)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert out.exists(), f"{scenario} produced no result (rc={proc.returncode}):\n" \
                         f"{proc.stderr[-3000:]}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert "error" not in result, result["error"]
    return result


def test_panel_properties_and_emotion_sampling(cp311_zip: Path, tmp_path: Path,
        blender_python: str) -> None:
    r = run_flow(cp311_zip, "ui", tmp_path, python=blender_python)
    assert r["panel_spaces"] == ["SEQUENCE_EDITOR", "VIEW_3D"]
    assert {"generate", "render_to_sequencer", "cancel", "key_emotion", "check_mapping",
            "start_backend", "stop_backend", "connect"} <= set(r["operators"])
    assert r["panel_draw_ok"]
    # One animatable slider per emotion plus intensity, keyed with "Key Emotion Here".
    assert len(r["emotion_props"]) == 8
    assert len(r["animatable"]) == 9
    assert r["happy_curve"][:3] == [0.0, 1.0, 1.0] and 0.0 < r["happy_curve"][3] < 1.0
    assert r["angry_curve"][2] == pytest.approx(0.8, abs=1e-6)
    # 29.97 fps: the strip's frames (Blender's own length) = the sampled frames; the
    # 60 s line spans 60 * 30000/1001 = 1798.2 frames.
    assert r["fps"] == pytest.approx(30000 / 1001)
    assert r["pcm_samples"] == 960000
    first, count = r["span"]
    assert first == r["strip_frames"][0] == 1
    assert count == r["strip_frames"][1] - r["strip_frames"][0]
    assert abs(count - 60 * 30000 / 1001) <= 1
    assert r["weights_shape"] == [count, 8] and r["intensity_shape"] == [count]
    assert r["sampled_happy_30"] == pytest.approx(1.0) and r["sampled_neutral"] == 1.0
    assert r["frame_after_sampling"] == 1, "sampling must not move the playhead"
    # Missing shape keys: a report, not a crash; a bad override is a clear error.
    assert r["check_mapping"] == ["FINISHED"]
    assert r["mapping_report"].startswith("49/52")
    assert "jawOpen" in r["mapping_report"] and "mouthSmileLeft" in r["mapping_report"]
    assert "does-not-exist" in r["bad_override_error"]
    # Online access off (PyPI bpy's default) -> a remote backend is refused, clearly.
    if not r["online_access"]:
        assert "online access is disabled" in r["remote_error"]


def test_generate_and_render_plumbing(cp311_zip: Path, tmp_path: Path,
        blender_python: str) -> None:
    r = run_flow(cp311_zip, "plumbing", tmp_path, python=blender_python)
    assert r["backend_state"] == "connected"
    # Generate: the request the animate job gets, then 52 curves in a NEW action.
    p = r["animate_params"]
    assert p["fps"] == "24/1" and p["first_frame"] == 1 and p["n_frames"] == 48
    assert p["sample_rate"] == 16000 and p["start_offset"] == 0.0
    assert r["animate_arrays"][1:] == [["float32", [48, 8]], ["float32", [48]]]
    assert r["animate_arrays"][0][0] == "float32" and r["animate_arrays"][0][1][0] >= 32000
    assert r["generate_error"] == "" and "52 shape keys" in r["generate_status"]
    assert r["action"].startswith("Facecast") and r["old_kept"]
    assert r["n_curves"] == 52 and r["n_keys"] == [48]
    assert r["jaw_values"] == [0.0, 1.0, 1.0, 1.0]  # stream_test frame i is filled with i
    # Render: one PNG per frame, an image strip at frames 1-48 above the sound strip.
    assert r["render_error"] == ""
    assert r["render_params"][0]["frames"] == list(range(1, 49))
    assert r["render_arrays"][0] == [[48, 52], [48, 4, 4]]
    assert r["render_params"][0]["array_names"] == ["blendshapes", "head_pose"]
    assert r["files"] == [f"{f:06d}.png" for f in range(1, 49)] and r["tmp_files"] == []
    assert Path(r["folder"]).parent.name == "facecast_frames"
    assert str(tmp_path / "tmp") in r["folder"]
    ((_, channel, start, end, blend, n),) = r["image_strips"]
    assert (start, end, n, blend) == (1, 49, 48, "ALPHA_OVER")
    assert channel > r["sound_channel"]
    assert r["png_size"] == [64, 48] and r["png_channels"] == 4
    # Same conditioning again: nothing re-rendered, files untouched, strip refreshed.
    assert r["rerender_calls"] == 0 and r["rerender_same_folder"] and r["rerender_untouched"]
    assert "48 reused" in r["rerender_status"] and r["strips_after_rerender"] == 1
    # An animator's edit changes the conditioning: a new cache folder.
    assert r["edited_new_folder"]
    assert r["backend_after_shutdown"] == "stopped"


def test_backend_killed_mid_render_keeps_frames(cp311_zip: Path, tmp_path: Path,
        blender_python: str) -> None:
    r = run_flow(cp311_zip, "kill", tmp_path, timeout_s=2.0, python=blender_python)
    assert r["state"] == "error"
    assert "stopped answering" in r["last_error"] and "kept" in r["last_error"]
    assert r["error_after_s"] < 10
    assert r["files"] == r["written"] >= 10
    ((_, start, end, n),) = r["strip"]
    assert start == 1 and n == r["written"] and end == 1 + n
    assert r["backend_status"][0] == "error" and "exited" in r["backend_status"][1]


def test_generate_with_real_animate_job(cp311_zip: Path, tmp_path: Path,
        blender_python: str) -> None:
    r = run_flow(cp311_zip, "generate_real", tmp_path, timeout_s=10.0, python=blender_python)
    assert r["last_error"] == "", r["last_error"]
    frames = r["frames"]
    assert frames[0] == 1 and frames[1] >= 1400  # 60 s at 24 fps
    jaw = r["jawOpen"]
    assert jaw is not None and max(jaw) > 0.2, "the jaw never opens during speech"
    # Happy is keyed at 1.0 over frames 20-40 and 0 after 50 (see key_two_emotions).
    smile = [(a + b) / 2 for a, b in zip(r["mouthSmileLeft"], r["mouthSmileRight"],
                                         strict=True)]
    happy = sum(smile[20:40]) / 20
    later = sum(smile[70:200]) / 130
    assert happy > later + 0.05, (happy, later)


def test_render_to_sequencer_with_real_render_job(cp311_zip: Path, tmp_path: Path,
        blender_python: str) -> None:
    r = run_flow(cp311_zip, "render_real", tmp_path, timeout_s=10.0, python=blender_python)
    assert r["last_error"] == "", r["last_error"]
    assert [f for f in r["files"] if not f.startswith("depth")] == \
        [f"{f:06d}.png" for f in range(1, 5)]
    ((channel, start, end, blend, n),) = r["strip"]
    assert (start, end, n, blend) == (1, 5, 4, "ALPHA_OVER")
    assert channel > r["sound_channel"]
    assert r["png_size"] == [64, 48] and r["png_channels"] == 4
    assert r["alpha_max"] > 0.5, "the subject is not in the frame"
    assert r["alpha_mean"] < 0.95, "alpha must let the plate through around the head"
