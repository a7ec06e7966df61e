"""CI smoke run of the README's main command: `facecast demo --quick -o demo`, from a
scratch working directory with a relative ``-o`` as a user would type it, then check that
what it wrote is sane — the MP4's duration matches its speech, the NeRF half of the
frames is not blank and changes over time, the report exists, the .blend exists
whenever the ``bpy`` module is installed, and `facecast verify` finds valid C2PA
credentials on the MP4 and every frame and the watermark in every frame PNG and in the
MP4 (which the demo writes at least 256 px tall so that the mark survives H.264)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    from backend.media.decode import read_audio_track, read_video

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
    problems += _provenance(out)
    print(json.dumps(report["steps_seconds"]), flush=True)
    for p in problems:
        print("demo smoke:", p, file=sys.stderr)
    print("demo smoke:", "FAILED" if problems else "ok", flush=True)
    return 1 if problems else 0


def _provenance(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "backend.cli", "verify", "--json", str(out / "frames"),
           str(out / "facecast_demo.mp4")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    files = json.loads(done.stdout)["files"]
    frames = [f for f in files if f["kind"] == "image"]
    problems = [f"{Path(f['path']).name}: C2PA {f['c2pa'] and f['c2pa']['state']}"
                for f in files if not (f["c2pa"] and f["c2pa"]["state"] in ("valid", "trusted"))]
    unmarked = [f for f in frames if not f["watermark"]["found"]]
    if not frames or unmarked:
        problems.append(f"{len(unmarked)} of {len(frames)} frame PNGs carry no watermark")
    problems += [f"{Path(f['path']).name}: no watermark found" for f in files
                 if f["kind"] == "video" and not f["watermark"]["found"]]
    print(f"demo smoke: verify: {len(frames) - len(unmarked)}/{len(frames)} frames marked, "
          f"{len(files) - len(problems)} files with valid C2PA", flush=True)
    return problems


if __name__ == "__main__":
    sys.exit(main())
