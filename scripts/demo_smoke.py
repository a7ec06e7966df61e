"""CI smoke run of the README's main command: `facecast demo --quick -o demo`, from a
scratch working directory with a relative ``-o`` as a user would type it, then check that
what it wrote is sane — the MP4's duration matches its speech, the NeRF half of the
frames is not blank and changes over time, the report exists, and the .blend exists
whenever the ``bpy`` module is installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    from backend.video.decode import read_audio_track, read_video

    work = Path(tempfile.mkdtemp(prefix="facecast-demo-smoke-"))
    out = work / "demo"
    cmd = [sys.executable, "-m", "backend.cli", "demo", "--quick", "-o", "demo"]
    print("$ cd", work, "&&", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=1200, cwd=work)
    report = json.loads((out / "report.json").read_text())
    video = read_video(out / "facecast_demo.mp4")
    audio, rate = read_audio_track(out / "facecast_demo.mp4")
    speech = report["audio_seconds"]
    problems = []
    mp4_seconds = len(video.frames) / float(video.fps)
    if abs(mp4_seconds - speech) > 0.1:
        problems.append(f"MP4 lasts {mp4_seconds:.2f} s, speech {speech:.2f} s")
    if abs(len(audio) / rate - speech) > 0.15:
        problems.append(f"MP4 audio lasts {len(audio) / rate:.2f} s, speech {speech:.2f} s")
    nerf = video.frames[:, :, : video.frames.shape[2] // 2].astype(np.float32)
    if nerf.std(axis=(1, 2, 3)).min() < 5:
        problems.append("a NeRF frame is blank (no contrast)")
    if np.abs(np.diff(nerf, axis=0)).mean() < 0.2:
        problems.append("the NeRF frames do not change over time")
    if importlib.util.find_spec("bpy") is not None and "blend" not in report["outputs"]:
        problems.append("bpy is installed but the demo wrote no .blend")
    if "blend" in report["outputs"] and not (out / report["outputs"]["blend"]).is_file():
        problems.append("the .blend is missing")
    print(json.dumps(report["steps_seconds"]), flush=True)
    for p in problems:
        print("demo smoke:", p, file=sys.stderr)
    print("demo smoke:", "FAILED" if problems else "ok", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
