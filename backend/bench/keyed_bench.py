"""``facecast bench keyed``: is a keyed emotion visible on the photoreal render, through
the user's own path?

Per emotion (neutral, happy, sad, angry, surprised): ``facecast animate`` a speech file
with that emotion keyed at full weight and intensity (deterministic: no variation, no
head motion) -> ``facecast render SUBJECT --camera front`` -> the rendered PNGs are
re-tracked and judged by the FER2013 classifier (``backend.judges.expression``). The
number is the emotion's mean probability over the frames minus its mean probability on
the *neutral* take's frames (the lift; the trivial baseline, a renderer that ignores the
emotion, lifts 0). Also printed: each take's commonest top class and the share of
semi-transparent pixels (0 < alpha < 1) in its frames.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..cli import main
from ..judges.expression import ExpressionJudge, square_box
from ..tracking.face_tracker import track_faces
from .render_bench import RECOGNISED_LIFT

KEYED = ("neutral", "happy", "sad", "angry", "surprised")


def semi_transparent(rgba: np.ndarray) -> float:
    """Share of pixels whose alpha is neither clear nor opaque (uint8 0 < a < 255)."""
    a = rgba[..., 3]
    return float(((a > 0) & (a < 255)).mean())


def _take(subject: str, audio: Path, emotion: str, frames: int, size: int, fps: int,
          start: float, work: Path) -> list[np.ndarray]:
    anim, out = work / f"{emotion}.npz", work / emotion
    for argv in (["animate", str(audio), "--fps", str(fps), "--frames", str(frames),
                  "--emotion", f"0:{emotion}@1", "--variation", "0", "--head-motion", "0",
                  "--seed", "0", "--start-offset", str(start), "-o", str(anim)],
                 ["render", subject, "--motion", str(anim), "--camera", "front",
                  "--size", str(size), "-o", str(out)]):
        if main(argv) != 0:
            raise RuntimeError(f"facecast {' '.join(argv)} failed")
    pngs = sorted(p for p in out.glob("*.png") if "depth" not in p.name)
    return [np.asarray(Image.open(p).convert("RGBA")) for p in pngs]


def run_keyed_bench(subject: str = "default", audio: Path | None = None, frames: int = 24,
                    size: int = 256, fps: int = 25, start: float = 2.0,
                    keep: Path | None = None) -> dict:
    from .coverage_bench import default_data

    audio = audio or default_data() / "speech" / "eng.wav"
    judge = ExpressionJudge()
    scores: dict[str, dict[str, float]] = {}
    tops: dict[str, str] = {}
    semi: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        for e in KEYED:
            imgs = _take(subject, audio, e, frames, size, fps, start, work)
            tracked = track_faces(np.stack([i[..., :3] for i in imgs]), static=True,
                                  progress=False)
            verdicts = [judge.judge(img, square_box(lm[:, :2]))
                        for img, lm, ok in zip(imgs, tracked.landmarks, tracked.found,
                                               strict=True) if ok]
            scores[e] = {k: float(np.mean([v.score(k) for v in verdicts])) if verdicts
                         else float("nan") for k in KEYED}
            names = [v.top for v in verdicts]
            common = max(set(names), key=names.count) if names else ""
            tops[e] = (f"{common} {names.count(common)}/{len(imgs)}" if names
                       else f"no face found in {len(imgs)} frames")
            semi[e] = float(np.mean([semi_transparent(i) for i in imgs]))
    print(f"keyed emotion through animate -> render {subject} --camera front ({frames} "
          f"frames of {audio.name} from {start:g} s, at {size}^2) -> FER2013 judge; "
          "lift = p(emotion) on its take minus p(emotion) on the neutral take (a renderer "
          "ignoring the key: 0)")
    print("| keyed | p(keyed) | p(keyed) on neutral take | lift | verdict | top class | "
          "semi-transparent pixels |")
    print("|---|---|---|---|---|---|---|")
    recognised = 0
    for e in KEYED:
        p, base = scores[e][e], scores["neutral"][e]
        lift = p - base
        ok = e != "neutral" and lift >= RECOGNISED_LIFT
        recognised += ok
        verdict = "-" if e == "neutral" else ("recognised" if ok else "no lift")
        print(f"| {e} | {p:.2f} | {base:.2f} | {lift:+.2f} | {verdict} | {tops[e]} | "
              f"{semi[e]:.1%} |")
    print(f"recognised {recognised} of {len(KEYED) - 1} (lift >= {RECOGNISED_LIFT})")
    return {"scores": scores, "tops": tops, "semi": semi, "recognised": recognised}
