"""The Facecast panel's workflows in real Blender (PyPI bpy) against a real backend.

Each test runs ``blender_scripts/facecast_flow.py`` in its own process with a throw-away
Blender user dir, installs the built cp311 zip, builds a scene (the demo face with ARKit
shape keys and/or a bone-driven face rig built by code, a sound strip of real speech
from ../shared/data/speech/eng.wav), starts a backend through the add-on's own Start
Backend operator, and drives ``job_session.step()`` in a loop as Blender's timer would.

Two backends: the real one (``facecast serve``: the motion model, the NeRF), and a
test-owned one (``tests/job_doubles.py``: the same server with deterministic animate
and render jobs, whose animate declares the dialogue-text feature) — so exact numbers
can be checked and the product carries no test hook.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.depth_exr import SKY_DEPTH, decode_depth_exr
from shared.emotion_profiles import EMOTION_PROFILES
from shared.render_request import RenderJobRequest
from tests.conftest import data_path
from tests.job_doubles import double_depth, double_weights
from tests.png_decode import decode_png

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "blender_scripts" / "facecast_flow.py"
TEXT = "Grüße — naïve café, 日本語! Line two."
TEXT2 = "A second take, from a Text datablock."
UNSUPPORTED = "this backend aligns audio only; update it for dialogue text"


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


def _doubles_executable(folder: Path, doubles_args: str) -> Path:
    """A "backend executable" for the add-on's Start Backend that runs the test-owned
    server (the add-on calls it as ``EXE serve --address ... --ready-file ...``)."""
    exe = folder / "facecast-doubles"
    exe.write_text(f"#!/bin/sh\nshift\ncd '{ROOT}' && exec '{sys.executable}' -m "
                   f"tests.job_doubles {doubles_args} \"$@\"\n")
    exe.chmod(0o755)
    return exe


def run_flow(zip_path: Path, scenario: str, tmp_path: Path, timeout_s: float = 2.0,
             python: str = sys.executable, doubles_args: str = "",
             extra: dict | None = None) -> dict:
    """Run one scenario in a fresh bpy process; return its JSON result."""
    wav = data_path("speech", "eng.wav")
    from shared.protocol.keys import ensure_key_file

    key, _ = ensure_key_file(tmp_path / "keys" / "hmac.key")
    home = tmp_path / "home"
    cfg = {"wav": str(wav), "python": sys.executable, "key_file": str(key),
           "doubles": str(_doubles_executable(tmp_path, doubles_args)),
           "address": f"tcp://127.0.0.1:{_free_port()}", "timeout": timeout_s,
           **(extra or {})}
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


def test_panel_properties_mapping_and_dialogue(cp311_zip: Path, tmp_path: Path,
                                               blender_python: str) -> None:
    r = run_flow(cp311_zip, "ui", tmp_path, python=blender_python)
    assert r["panel_spaces"] == ["SEQUENCE_EDITOR", "VIEW_3D"]
    assert {"animate", "render_to_sequencer", "cancel", "key_emotion", "check_mapping",
            "bake_takes", "start_backend", "stop_backend", "connect"} <= set(r["operators"])
    assert "generate" not in r["operators"]  # one name: the job and the button: animate
    assert r["panel_draw_ok"]
    # One animatable slider per emotion plus intensity, keyed with "Key Emotion Here".
    assert len(r["emotion_props"]) == 8
    assert len(r["animatable"]) == 9
    # The sliders' tooltips are the emotion table's descriptions (one table, no copy).
    assert r["emotion_tooltips"] == [p.description for p in EMOTION_PROFILES]
    assert r["happy_curve"][:3] == [0.0, 1.0, 1.0] and 0.0 < r["happy_curve"][3] < 1.0
    assert r["angry_curve"][2] == pytest.approx(0.8, abs=1e-6)
    # 29.97 fps: the strip's frames (Blender's own length) = the sampled frames; the
    # 60 s line spans 60 * 30000/1001 = 1798.2 frames.
    assert r["fps"] == pytest.approx(30000 / 1001)
    assert r["pcm_samples"] == 960000
    first, count = r["span"]
    assert first == 1 and abs(count - 60 * 30000 / 1001) <= 1
    if r.get("no_audaspace"):  # a file: every frame the sound touches, ceil(1798.2)
        assert count == 1799
    else:  # a sound strip: Blender's own length of the strip
        assert r["strip_frames"] == [1, 1 + count]
    assert r["weights_shape"] == [count, 8] and r["intensity_shape"] == [count]
    assert r["sampled_happy_30"] == pytest.approx(1.0) and r["sampled_neutral"] == 1.0
    assert r["frame_after_sampling"] == 1, "sampling must not move the playhead"
    # Dialogue: the field as typed (UTF-8), or a Text datablock (it wins), trimmed.
    assert r["dialogue"] == TEXT and r["dialogue_block"] == TEXT2
    # Missing shape keys: a report, not a crash; a bad override is a clear error.
    assert r["check_mapping"] == ["FINISHED"]
    assert r["mapping_report"].startswith("49/52 ARKit channels drive 49 shape keys")
    assert "jawOpen" in r["mapping_report"] and "mouthSmileLeft" in r["mapping_report"]
    assert "does-not-exist" in r["bad_override_error"]
    # A bone rig: its pose actions, by name, by a declared group; what is missing/unused.
    assert r["rig_check"] == ["FINISHED"]
    report = r["rig_report"]
    assert report.startswith("6/52 ARKit channels drive 5 pose actions"), report
    for part in ("jawOpen -> jawOpen", "mouthClose -> mouthClose",
                 "mouthSmileLeft+mouthSmileRight -> Smile", "browInnerUp -> FC_browInnerUp",
                 "cheekPuff -> cheekPuff", "unused pose actions: Wave"):
        assert part in report, (part, report)
    assert "missing: " in report and "tongueOut" in report
    assert "AnimatorHead" not in report  # the rig's own active action is no pose
    assert 'did you mean "mouthSmileRight"' in r["bad_group_error"]
    assert "jawOpen+mouthFunnel -> Wave" in r["group_override_report"]
    assert "no Facecast takes" in r["bake_without_takes_error"]
    assert "bone rig" in r["rig_render_error"] and "Last Take" in r["rig_render_error"]
    # Online access off (PyPI bpy's default) -> a remote backend is refused, clearly.
    if not r["online_access"]:
        assert "online access is disabled" in r["remote_error"]
    assert r["busy_after_refusal"] is False


def test_takes_on_the_nla_for_shape_keys_and_bone_rig(cp311_zip: Path, tmp_path: Path,
                                                      blender_python: str) -> None:
    r = run_flow(cp311_zip, "takes", tmp_path, python=blender_python)
    assert r["backend_state"] == "connected" and "text" in r["backend_features"]["animate"]
    # Take 1 on the shape-key face: the request, the dialogue text as sent (UTF-8).
    assert r["take1_error"] == "", r["take1_error"]
    assert "Take 1" in r["take1_status"] and "dialogue text aligned" in r["take1_status"]
    p = r["take1_params"]
    assert p["text"] == TEXT and r["take1_text_sent"]
    assert p["fps"] == "24" and p["first_frame"] == 1 and p["n_frames"] == 48
    assert p["sample_rate"] == 16000 and p["start_offset"] == "0"
    assert r["take1_arrays"][1:] == [["float32", [48, 8]], ["float32", [48]]]
    # What plays: the take's weights on the shape keys, the animator's keys on top.
    from shared.blendshapes import ARKIT_BLENDSHAPES

    want = double_weights(48)
    got = np.array(r["take1_values"])
    assert np.allclose(got[:, 0], want[:, ARKIT_BLENDSHAPES.index("jawOpen")], atol=1e-5)
    assert np.allclose(got[:, 1], want[:, ARKIT_BLENDSHAPES.index("mouthSmileLeft")],
                       atol=1e-5)
    assert np.allclose(got[:, 2], 0.77), "the animator's own keys must play on top"
    ((number, track, _action, muted, start, end),) = r["after_take1"]["takes"]
    assert (number, track, muted, start, end) == (1, "Facecast Take 1", False, 1.0, 48.0)
    assert r["after_take1"]["active"] == "AnimatorWork"
    # Take 2: a new track on top, take 1 kept (muted), the animator's action untouched.
    assert r["take2_error"] == "" and "Take 2" in r["take2_status"]
    assert r["take2_text"] == TEXT2 and r["take2_seed"] == 1
    takes = r["after_take2"]["takes"]
    assert [(t[0], t[1], t[3]) for t in takes] == [(1, "Facecast Take 1", True),
                                                  (2, "Facecast Take 2", False)]
    assert takes[0][2] != takes[1][2]
    assert r["after_take2"]["active"] == "AnimatorWork" and r["own_untouched"]
    assert [(t[0], t[3]) for t in r["after_undo"]["takes"]] == [(1, False)], "undo"
    assert r["after_undo"]["active"] == "AnimatorWork"
    assert r["after_redo"] == r["after_take2"], "redo"

    # The bone rig: poses blended into a new action, a take on the rig's NLA.
    assert r["rig_error"] == "", r["rig_error"]
    # takes are numbered per face: the rig's first take is its Take 1
    assert "Take 1" in r["rig_status"] and "5 pose actions" in r["rig_status"]
    assert r["rig_targets"] == ["FC_browInnerUp", "Smile", "cheekPuff", "jawOpen",
                                "mouthClose"]
    ((number, track, _a, muted, start, end),) = r["rig_takes"]["takes"]
    assert (number, muted, start, end) == (1, False, 1.0, 48.0)
    assert r["rig_takes"]["active"] == "AnimatorHead"
    # Every bone channel = rest + weighted offsets (mathutils' own rotation maths).
    assert r["rig_max_error"] < 1e-4, r["rig_max_error"]
    jaw, weight = np.array(r["jaw_angles"]), np.array(r["jaw_weights"])
    assert jaw[weight == 0].max() < 1e-4 and jaw[weight == 1].min() == pytest.approx(0.32,
                                                                                  abs=1e-4)
    # The mesh is deformed by the bones: its chin drops as the jaw opens.
    low = np.array(r["mesh_low_z"])
    levels = np.unique(weight)
    by_level = [low[weight == w] for w in levels]
    assert all(np.ptp(z) < 1e-6 for z in by_level), "the chin follows the jaw weight only"
    assert np.all(np.diff([z[0] for z in by_level]) < 0) and np.ptp(low) > 0.01
    assert r["poses_untouched"] and r["animator_head_untouched"]
    assert r["head_layer_on_top"] == pytest.approx([0.0, 0.05], abs=1e-6)
    # Bake: one new active action playing exactly what played; nothing lost.
    assert r["bake"] == ["FINISHED"] and "baked 48 frames" in r["bake_status"]
    assert r["after_bake"]["active"].startswith("Facecast Baked")
    assert all(t[3] for t in r["after_bake"]["takes"])
    assert r["baked_props"] == {"facecast_baked": "Take 1",
                                "facecast_replaced_action": "AnimatorHead"}
    assert r["replaced_kept"] and r["bake_max_change"] < 1e-4


def test_render_writes_frames_and_metre_depth(cp311_zip: Path, tmp_path: Path,
                                                  blender_python: str) -> None:
    r = run_flow(cp311_zip, "render", tmp_path, python=blender_python,
                 doubles_args="--no-text")
    assert r["animate_error"] == "" and r["render_error"] == "", r["render_error"]
    # An animate job without the text feature: the text is not sent, and the panel says so.
    assert "text" not in r["backend_features"]["animate"]
    assert UNSUPPORTED in " ".join(r["panel_lines"])
    assert f"dialogue text not used: {UNSUPPORTED}" in r["animate_status"]
    assert "text" not in r["animate_received"] and r["animate_received"]["n_frames"] == 48
    names = [f"{f:06d}.png" for f in range(1, 49)]
    assert r["files"] == names and r["tmp_files"] == []
    assert r["depth_files"] == [n.replace(".png", ".exr") for n in names]
    folder = Path(r["folder"])
    assert folder.parent.name == "facecast_frames" and str(tmp_path / "tmp") in r["folder"]
    # Depth: the EXR holds the backend's millimetres as metres (no surface: 1e10 m).
    for i, name in enumerate(names):
        sent = double_depth(i, 48, 64)
        want = np.where(sent > 0, sent / 1000.0, SKY_DEPTH).astype(np.float32)
        got = decode_depth_exr((folder / "depth" / name.replace(".png", ".exr")).read_bytes())
        assert np.array_equal(got, want), name
    loaded = np.array(r["depth_loaded_m"], np.float32)
    sent = double_depth(2, 48, 64)
    assert np.allclose(loaded, np.where(sent > 0, sent / 1000.0, SKY_DEPTH), rtol=1e-6), \
        "Blender must read the depth EXR back as metres"
    rgba = decode_png(folder / names[5])
    assert rgba.shape == (48, 64, 4) and (rgba[..., 0] == 5).all()
    ((_, channel, start, end, blend, n),) = r["image_strips"]
    assert (start, end, n, blend) == (1, 49, 48, "ALPHA_OVER")
    assert channel > r["sound_channel"]
    assert r["png_size"] == [64, 48] and r["png_channels"] == 4
    # The conditioning sent = the shape keys as they play (the take on the NLA).
    received = r["received"]
    assert received["params"]["array_names"] == ["blendshapes", "head_pose"]
    assert received["params"]["signed_png"] is True  # frames keep their C2PA credentials
    # Only what the render job reads is sent: the request type's own params.
    assert received["param_names"] == sorted(RenderJobRequest(
        "s", {}, {}, head_pose_frame="world").to_wire()[0])
    assert received["shapes"] == [[48, 52], [48, 4, 4]]
    assert received["sums"]["blendshapes"] == pytest.approx(float(double_weights(48).sum()),
                                                            rel=1e-4)
    # Same conditioning again: nothing re-rendered, files untouched, strip refreshed.
    assert not r["rerender_submitted"] and r["rerender_same_folder"]
    assert r["rerender_untouched"] and "48 reused" in r["rerender_status"]
    assert r["strips_after_rerender"] == 1
    # The animator's own key on top of the take changes the conditioning: a new folder.
    assert r["edited_new_folder"] and r["edited_error"] == ""
    assert r["backend_after_shutdown"] == "stopped"


def test_backend_killed_mid_render_keeps_frames(cp311_zip: Path, tmp_path: Path,
                                                blender_python: str) -> None:
    r = run_flow(cp311_zip, "kill", tmp_path, timeout_s=2.0, python=blender_python,
                 doubles_args="--frame-delay 0.05")
    state, status, error, kept, progress = r["cancelled"]
    assert r["cancel_poll"] and state == "cancelled" and error == ""
    assert kept >= 5 and f"cancelled; kept {kept} frames" in status
    assert progress == pytest.approx(kept / 60, abs=1e-6)
    assert r["cancelled_queued"][:2] == ["cancelled", False]
    assert r["reused_after_cancel"] == kept
    assert r["state"] == "error"
    assert "stopped answering" in r["last_error"] and "kept" in r["last_error"]
    assert r["error_after_s"] < 10
    assert r["files"] == r["written"] >= 10
    ((_, start, end, n),) = r["strip"]
    assert start == 1 and n == r["written"] and end == 1 + n
    assert r["backend_status"][0] == "error" and "exited" in r["backend_status"][1]


def test_animate_starts_the_local_backend_when_none_answers(cp311_zip: Path, tmp_path: Path,
                                                           blender_python: str) -> None:
    # The backend takes longer to come up (3 s) than the connect timeout (2 s): the job
    # must wait for it, not report "no backend answered".
    r = run_flow(cp311_zip, "autostart", tmp_path, python=blender_python,
                 doubles_args="--start-delay 3")
    assert r["default_pref"] is True and r["state_before"] == "stopped"
    # No backend at the (loopback) address: Animate starts one, and the panel says so.
    assert r["started"] == [True, "starting"]
    assert "starting a backend on this machine" in r["status_at_start"]
    assert any("starting a backend" in line for line in r["panel_at_start"])
    assert "starting a backend on this machine" in r["status_while_starting"]
    state, status, error = r["take1"]
    assert (state, error) == ("done", "") and "Take 1" in status, (status, error)
    assert r["take1_frames"] == 48 and r["backend_after"] == "connected"
    # The next Animate uses the running backend: nothing more is started.
    started, state, status, error, same_process = r["take2"]
    assert not started and state == "done" and "Take 2" in status and same_process, error
    assert r["takes"] == ["Facecast Take 1", "Facecast Take 2"]
    # The preference off: the existing clear error, and no process was started.
    started, submitted, state, status, error, no_process = r["off"]
    assert not started and not submitted and state == "error" and no_process
    assert "no backend answered at tcp://127.0.0.1:" in error, error
    # A local backend that dies while starting: the job ends with its reason.
    started, submitted, state, error = r["broken"]
    assert started and not submitted and state == "error"
    assert "The local backend did not start" in error and "exited (code 3)" in error
    assert "broken install" in error and "Backend Executable" in error


def test_stalled_job_is_reported_and_cancellable(cp311_zip: Path, tmp_path: Path,
                                                 blender_python: str) -> None:
    release = tmp_path / "release"
    r = run_flow(cp311_zip, "stall", tmp_path, python=blender_python,
                 doubles_args=f"--hold-after 3 --hold-file '{release}'",
                 extra={"hold_file": str(release)})
    assert r["started"] is True  # Render to sequencer started the local backend too
    # Hung after 3 frames, heartbeats still arriving: stalled, but running and connected.
    state, busy, written, link, idle_s, cancel_poll = r["stalled"]
    assert (state, busy, written, link, cancel_poll) == ("running", True, 3, "ready", True)
    assert idle_s >= 1.0  # never before Job Timeout (1 s here)
    assert r["stalled_note"].startswith("No progress for ") and \
        "the backend may be stuck; Cancel or wait" in r["stalled_note"]
    assert "the backend may be stuck; Cancel or wait" in " ".join(r["stalled_panel"])
    # Frames again: the line goes, the job finishes with every frame.
    assert r["resumed"][:2] == ["", False]
    state, written, status, error, note = r["finished"]
    assert (state, written, error, note) == ("done", 8, "", "") and "8 frames" in status
    # Stuck again; Cancel ends it and keeps the 3 frames received.
    assert r["second_started"] is False and r["second_stalled"] == ["running", 3]
    state, written, status, error, note, busy = r["cancelled"]
    assert (state, written, error, note, busy) == ("cancelled", 3, "", "", False)
    assert "cancelled; kept 3 frames" in status


def _speech_levels(n_frames: int, fps: int = 24) -> np.ndarray:
    """Loudness (dB) of each frame of eng.wav, from the file itself."""
    import soundfile

    x, rate = soundfile.read(str(data_path("speech", "eng.wav")), dtype="float32")
    hop = rate // fps
    frames = x[:n_frames * hop].reshape(n_frames, hop)
    return 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)


def test_animate_with_real_motion_model_on_both_rigs(cp311_zip: Path, tmp_path: Path,
                                                    blender_python: str) -> None:
    r = run_flow(cp311_zip, "animate_real", tmp_path, timeout_s=10.0, python=blender_python)
    assert r["face_error"] == "", r["face_error"]
    if "text" in r["backend_features"].get("animate", []):  # a backend that aligns text
        assert r["text_sent"] and "dialogue text aligned" in r["face_status"]
        assert UNSUPPORTED not in " ".join(r["panel_lines"])
    else:  # the backend aligns audio only: the panel says so, nothing is sent
        assert UNSUPPORTED in " ".join(r["panel_lines"])
        assert f"dialogue text not used: {UNSUPPORTED}" in r["face_status"]
        assert r["text_sent"] is False and "text" not in r["sent_params"]
    level = _speech_levels(288)
    silent, voiced = level < -45, level > -25
    assert silent.sum() > 40 and voiced.sum() > 80  # frames 1-73 are room tone
    # Shape keys: the jaw opens while she speaks and rests in silence; happy smiles.
    jaw = np.array(r["face_jaw"])
    assert jaw[voiced].mean() > max(4 * jaw[silent].mean(), jaw[silent].mean() + 0.05), \
        (jaw[voiced].mean(), jaw[silent].mean())
    smile = np.array(r["face_smile"])
    assert smile[19:40].mean() > smile[69:200].mean() + 0.05
    # The bone rig: the same through its poses (jawOpen pose = 0.32 rad).
    assert r["rig_error"] == "", r["rig_error"]
    angle = np.array(r["rig_jaw_angle"])
    assert angle[silent].mean() < 0.05 * 0.32, angle[silent].mean()
    assert angle[voiced].mean() > max(4 * angle[silent].mean(),
                                      angle[silent].mean() + 0.05 * 0.32)
    # Same seed and keys: one performance, on two rigs (the pose is jawOpen's exp map).
    assert np.corrcoef(angle, jaw)[0, 1] > 0.999
    smile_z = np.array(r["rig_smile_z"])  # lip corner up by 8 mm at a full smile
    assert smile_z[19:40].mean() > smile_z[69:200].mean() + 0.0005
    # A different emotion: a second take on top; the first stays, muted.
    assert r["rig_take2_error"] == "", r["rig_take2_error"]
    if "transcript" in r["backend_features"].get("animate", []):  # no text: words heard
        status = r["rig_take2_status"]
        assert "automatic transcript" in status, status
        assert (r["heard_text"] != "") == ("Dialogue field" in status), status
    takes = r["rig_takes"]["takes"]
    assert [(t[1], t[3]) for t in takes] == [("Facecast Take 1", True),
                                            ("Facecast Take 2", False)]
    assert r["rig_takes"]["active"] == "AnimatorHead"
    smile2 = np.array(r["rig_take2_smile_z"])
    assert smile2[19:40].mean() < smile_z[19:40].mean() - 0.0005


def test_render_to_sequencer_with_real_render_job(cp311_zip: Path, tmp_path: Path,
                                                  blender_python: str) -> None:
    r = run_flow(cp311_zip, "render_real", tmp_path, timeout_s=10.0, python=blender_python)
    assert r["last_error"] == "", r["last_error"]
    names = [f"{f:06d}.png" for f in range(1, 5)]
    assert r["files"] == names
    ((channel, start, end, blend, n),) = r["strip"]
    assert (start, end, n, blend) == (1, 5, 4, "ALPHA_OVER")
    assert channel > r["sound_channel"]
    assert r["png_size"] == [64, 48] and r["png_channels"] == 4
    assert r["alpha_max"] > 0.5, "the subject is not in the frame"
    assert r["alpha_mean"] < 0.95, "alpha must let the plate through around the head"
    # The panel says what the subject's footage covers (the backend's subject listing).
    assert any(line.startswith("footage covers ") for line in r["panel_lines"]), \
        r["panel_lines"]
    # Depth: the EXR of each frame is exactly the millimetres the backend sent, in metres.
    assert r["depth_dtype"] == "uint16" and sorted(r["backend_depth"]) == ["1", "2", "3", "4"]
    for frame, sent in r["backend_depth"].items():
        sent = np.array(sent, np.uint16)
        got = decode_depth_exr((Path(r["folder"]) / "depth" / f"{int(frame):06d}.exr")
                               .read_bytes())
        assert np.array_equal(got, np.where(sent > 0, sent / 1000.0, SKY_DEPTH)
                              .astype(np.float32)), frame
        surface = got[sent > 0]
        assert surface.size > 50 and surface.min() > 0.2 and surface.max() < 2.0
