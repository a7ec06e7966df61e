"""The demo's .blend step from a relative working directory, with a relative and an
absolute ``-o``: the Blender child runs from the repository, so every path it gets must
already be absolute (a relative ``facecast_demo`` once failed with "No such file or
directory: 'facecast_demo/animation.npz'")."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from backend.commands.render_cmd import write_png_atomic
from backend.demo.run import _blend
from backend.subject.framing import front_camera
from backend.subject.store import read_manifest, resolve_subject
from shared.blendshapes import ARKIT_BLENDSHAPES

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy is not installed"),
]
N_FRAMES = 12

INSPECT = """
import json, sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
face = bpy.data.objects["Facecast Demo Face"]
keys = face.data.shape_keys
strips = list(scene.sequence_editor.strips_all if hasattr(scene.sequence_editor, "strips_all")
              else scene.sequence_editor.sequences_all)
sound = [s for s in strips if s.type == "SOUND"][0]
image = [s for s in strips if s.type == "IMAGE"][0]
scene.frame_set(6)
print(json.dumps({
    "key_tracks": [t.name for t in keys.animation_data.nla_tracks],
    "head_tracks": [t.name for t in face.animation_data.nla_tracks],
    "jaw_at_6": keys.key_blocks["jawOpen"].value,
    "sound": bpy.path.abspath(sound.sound.filepath),
    "image_dir": bpy.path.abspath(image.directory),
    "image_frames": len(image.elements), "image_start": image.frame_final_start}))
"""


def _inputs(out: Path) -> Path:
    """What the demo has written when it reaches the .blend step."""
    (out / "frames").mkdir(parents=True)
    jaw = np.linspace(0.0, 1.0, N_FRAMES, dtype=np.float32)
    blendshapes = np.zeros((N_FRAMES, 52), np.float32)
    blendshapes[:, ARKIT_BLENDSHAPES.index("jawOpen")] = jaw
    head = np.broadcast_to(np.eye(4, dtype=np.float32), (N_FRAMES, 4, 4)).copy()
    np.savez_compressed(out / "animation.npz", blendshapes=blendshapes, head_pose=head)
    speech = out / "speech.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(16000 * N_FRAMES // 25, "<i2").tobytes())
    for f in range(1, N_FRAMES + 1):
        write_png_atomic(out / "frames" / f"{f:06d}.png", np.full((8, 8, 4), f, np.uint8))
    camera = front_camera(read_manifest(resolve_subject("default")), 64)
    (out / "camera.json").write_text(json.dumps(camera))
    return speech


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-o", "absolute-o"])
def test_demo_blend_from_a_relative_working_directory(tmp_path: Path, absolute: bool,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = (work / "facecast_demo") if absolute else Path("facecast_demo")
    speech = _inputs(out)
    blend = _blend(out, Path(os.path.relpath(speech, work)), fps=25)
    assert blend is not None and blend.is_absolute() and blend.is_file()
    assert blend == (work / "facecast_demo" / "facecast_demo.blend")
    done = subprocess.run([sys.executable, "-c", INSPECT, str(blend)], capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["key_tracks"] == ["Facecast Take 1"] and info["head_tracks"] == \
        ["Facecast Take 1"]
    assert info["jaw_at_6"] == pytest.approx(5 / (N_FRAMES - 1), abs=1e-5)
    assert Path(info["sound"]) == (work / "facecast_demo" / "speech.wav")
    assert Path(info["image_dir"]).resolve() == (work / "facecast_demo" / "frames")
    assert info["image_frames"] == N_FRAMES and info["image_start"] == 1
