"""Install the built extension into real Blender (PyPI bpy) and use it.

Each check runs in its own ``python script.py`` subprocess with a throw-away Blender
user directory: bpy keeps process-global state, and installing must never touch the
developer's real Blender configuration.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import build_addon
from shared.blendshapes import ARKIT_BLENDSHAPES

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "blender_scripts"

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed"),
]


def run_blender(script: str, *args: str, home: Path, python: str = sys.executable) -> dict:
    """Run ``script`` in a fresh bpy process with its own user dirs; return its JSON."""
    env = dict(os.environ)
    env.update(
        BLENDER_USER_RESOURCES=str(home),
        BLENDER_USER_CONFIG=str(home / "config"),
        BLENDER_USER_SCRIPTS=str(home / "scripts"),
        BLENDER_USER_EXTENSIONS=str(home / "extensions"),
    )
    out = home / "result.json"
    proc = subprocess.run(
        [python, str(SCRIPTS / script), *args, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tail = proc.stderr[-3000:]
    assert out.exists(), f"{script} produced no result (rc={proc.returncode}):\n{tail}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert "error" not in result, result["error"]
    return result


def test_install_enable_and_demo_rig(addon_zips: dict[str, Path], tmp_path: Path,
                                    blender_python: str) -> None:
    r = run_blender("install_and_rig.py", str(addon_zips["cp311"]), home=tmp_path,
                    python=blender_python)
    assert r["install"] == ["FINISHED"]
    assert r["enabled"] and r["addon_utils_loaded"]
    assert r["prefs_class"] == "FacecastPreferences"
    assert r["prefs"]["backend_address"] == "tcp://127.0.0.1:5557"
    assert r["prefs"]["connect_timeout"] > 0 and r["prefs"]["job_timeout"] > 0
    # Blender unpacked this platform's bundled wheels into the extensions' site-packages.
    assert {"zmq", "msgpack", "blake3"} <= set(r["site_packages"])
    assert r["shared_version"] == build_addon.read_version()

    assert r["create"] == ["FINISHED"]
    assert len(r["key_names"]) == 53
    assert r["key_names"] == ["Basis", *ARKIT_BLENDSHAPES]
    assert 2000 <= r["n_verts"] <= 5000
    assert r["nonzero_values"] == [], "the demo rig must rest at neutral"
    assert r["jaw_min_dz"] < -0.01  # jawOpen moves vertices down by more than a centimetre
    assert r["jaw_moved_down"] > 100
    assert r["eval_min_dz"] == pytest.approx(r["jaw_min_dz"], abs=1e-5)

    assert r["disabled"] and r["op_gone"]


def test_cp313_zip_refused_before_blender_5_1(addon_zips: dict[str, Path], tmp_path: Path,
                                              blender_python: str) -> None:
    """blender_version_min gates the 5.1+ zip: Python 3.11 could not load its wheels."""
    r = run_blender("install_and_rig.py", str(addon_zips["cp313"]), "--expect-refusal",
                    home=tmp_path, python=blender_python)
    assert r["enabled"] is False


def test_compat_fcurves_and_sequencer(addon_zips: dict[str, Path], tmp_path: Path,
                                      blender_python: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    r = run_blender("compat_check.py", str(addon_zips["cp311"]), str(work),
                    home=tmp_path / "home", python=blender_python)
    assert r["n_keys"] == 100 and r["frames_ok"] and r["values_ok"]
    assert r["interp"] == ["LINEAR"] and r["linear_mid_ok"]
    assert r["group"] == "Facecast"
    assert r["playback_ok"], "the written action does not drive the shape key"
    assert r["previous_kept"] and r["previous_fake_user"]
    assert r["refused_overwrite"] and r["replaced_n"] == 10
    if r["slotted"]:  # Blender 4.4+
        assert r["n_slots"] == 1 and r["slot_type"] == "KEY" and r["slot_assigned"]
    # NLA strips: a take plays under the active action, from every Blender version.
    assert r["nla"] == ["Facecast Take 1", "Take 1", "TakeTest", 1.0, 100.0, "FacecastTest"]
    assert r["nla_playback_ok"]
    assert r["action_fcurves"] == ['key_blocks["mouthClose"].value']
    assert r["action_fcurves_other_type"] == 0
    if r["slotted"]:
        assert r["strip_slot_type"] == "KEY"
    assert r["seq_scene_is_scene"]
    if r.get("no_audaspace"):  # the PyPI bpy 4.2 module cannot make sound strips
        assert r["strips"] == ["frames"] == r["strips_all"]
    else:
        assert r["strips"] == ["frames", "voice"] == r["strips_all"]
        assert r["strip_types"] == ["IMAGE", "SOUND"]
