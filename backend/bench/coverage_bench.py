"""``facecast bench coverage``: which emotions each real clip's footage covers, beside what
an independent judge sees in the same footage - the table docs/CAPTURE.md reports, and the
evidence for choosing a default subject's footage.

Per clip in ``../shared/data/clips`` (or ``--data``): tracking only (no training), then

* **coverage** (``backend.subject.coverage``): per emotion, the share of what its
  full-intensity FACS prototype asks that the training frames reached, relative to the
  subject's calm face; the trivial baseline is a still photo (0 % everywhere);
* **the FER2013 judge on the footage itself** (``backend.judges.expression``): the share
  of frames (every 3rd) whose top class is each emotion, and on the *calm* frames (the
  ones the subject's neutral is taken from): what a keyed "neutral" will look like. A
  calm face the judge reads as surprise makes every render read as surprise.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.landmarks import calm_frames

from ..judges.expression import FER_CLASSES, JUDGED_EMOTIONS, ExpressionJudge, square_box
from ..media.decode import read_video
from ..subject.coverage import footage_coverage
from ..subject.prepare import track_face

FER_SHORT = {"angry": "ang", "disgust": "dis", "fear": "fear", "happy": "hap", "sad": "sad",
             "surprise": "sur", "neutral": "neu"}


def default_data() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _shares(probs: np.ndarray) -> dict[str, float]:
    top = np.bincount(probs.argmax(axis=1), minlength=len(FER_CLASSES)) / max(len(probs), 1)
    return dict(zip(FER_CLASSES, top.tolist(), strict=True))


def _fmt_shares(shares: dict[str, float]) -> str:
    best = sorted(shares.items(), key=lambda kv: -kv[1])[:3]
    return " ".join(f"{FER_SHORT[k]} {v:.0%}" for k, v in best if v >= 0.05)


def clip_row(clip: Path, judge: ExpressionJudge, res: int = 256) -> dict:
    t0 = time.perf_counter()
    face = track_face(clip, res=res)
    lm = face.face_landmarks
    cov = footage_coverage(lm[: face.n_train], float(Fraction(face.tracks.fps)))
    seconds = time.perf_counter() - t0
    video = read_video(clip, max_side=res)
    kept = np.flatnonzero(face.keep)
    pick = np.arange(0, len(kept), 3)
    pixels = face.tracks.landmarks[kept, :, :2]
    probs = np.stack([judge.judge(video.frames[kept[i]], square_box(pixels[i])).probs
                      for i in pick])
    calm = calm_frames(lm)[pick]
    return {"clip": clip.stem, "frames": len(kept), "coverage_s": seconds, "coverage": cov,
            "fer_all": _shares(probs), "fer_calm": _shares(probs[calm]),
            "mean4": float(np.mean([cov.emotions[e].fraction
                                    for e in ("happy", "sad", "angry", "surprised")]))}


def run_coverage_bench(data: Path | None = None, res: int = 256) -> list[dict]:
    clips = sorted(((data or default_data()) / "clips").glob("*.mp4"))
    if not clips:
        print(f"no clips under {(data or default_data()) / 'clips'}: nothing to measure")
        return []
    judge = ExpressionJudge()
    rows = [clip_row(c, judge, res) for c in clips]
    head = ("| clip | frames | " + " | ".join(JUDGED_EMOTIONS)
            + " | mean of happy/sad/angry/surprised | judge on all frames | judge on calm "
            "frames |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        cov = r["coverage"]
        cells = [f"{cov.emotions[e].fraction:.0%}" + ("" if cov.emotions[e].level == "covered"
                                                      else " ~" if cov.emotions[e].level ==
                                                      "partly" else " -") for e in JUDGED_EMOTIONS]
        print(f"| {r['clip']} | {r['frames']} | " + " | ".join(cells)
              + f" | {r['mean4']:.0%} | {_fmt_shares(r['fer_all'])} | "
              f"{_fmt_shares(r['fer_calm'])} |")
    print("coverage: share of what the emotion's full-intensity prototype asks that the "
          "footage reached (~ partly, - not covered; a still photo scores 0 %); judge: "
          "FER2013 top class over every 3rd frame; tracking + coverage "
          f"{sum(r['coverage_s'] for r in rows):.1f} s for all clips (cached tracks are "
          "reused)")
    return rows
