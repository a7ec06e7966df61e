"""Expression coverage of a subject's footage: which keyed emotions its field can show.

A per-person NeRF renders what its footage showed; asked for an expression the footage
never made, it shows the nearest one it saw. So before training (and whenever a subject
is described) we say, per FACS cue, how far the footage's face went, and per emotion,
how much of what that emotion asks at full intensity the footage reached.

Cues are measured on the tracked face-space landmarks of the training frames, relative
to the subject's calm neutral (``estimate_neutral``, the face every keyed expression is
retargeted onto), with the geometric metrics of ``shared.landmarks`` in eye-distance
units: the same measures the render benchmark re-tracks obedience with. A cue's *reach*
is the 95th percentile of its signed change (so a few jittery frames cannot claim it).
An emotion's *ask* of a cue is the change its FACS prototype (``backend.motion.facs``) makes on
the same neutral through the face basis; an emotion needs the cues it moves clearly
(``NEEDED``); its coverage is the smallest reach/ask over those cues, and the cue that
sets it is named, so the user knows what to film.

Why landmarks, not the per-frame solved blendshapes: the bounded solve pins many channels
at 1.0 on ordinary talking footage (noise and speech spread over the 52 channels), so
their percentiles say "covered" for everything.

Measurement rules, so that talking and blinking are not counted as expressions: each
lip-corner direction is measured against a reference that opening the jaw moves the
other way - a lift against the nose (the corners drop with the jaw), a drop against the
lip centre (which drops further with the jaw than the corners do); a one-sided lift
(contempt) is the right corner's height above the left one's; eye narrowing counts only
frames whose eyes are at least half open.
Lip press (AU23/24) is not measured: the face basis's press does not change any landmark
metric we trust (lip thickness barely moves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.motion.face_basis import landmarks_from_blendshapes
from backend.motion.facs import emotion_prototype
from shared.emotions import EMOTIONS
from shared.errors import InputError
from shared.landmarks import (
    LEFT_LIP_CORNER,
    N_LANDMARKS,
    RIGHT_LIP_CORNER,
    SUBNASALE,
    brow_height,
    estimate_neutral,
    eye_opening,
    inner_brow_height,
    inter_ocular,
    lip_corner_height,
    mouth_opening,
)

PERCENTILE = 95.0
#: An emotion needs a cue when its prototype moves the cue by at least this share of the
#: largest move any emotion asks of that cue (and by at least ``MIN_ASK``).
NEEDED = 0.3
MIN_ASK = 0.005  # eye-distance units
CORNERS = [RIGHT_LIP_CORNER, LEFT_LIP_CORNER]
#: Coverage levels: at or above COVERED the footage reached what the emotion asks.
COVERED, PARTLY = 0.8, 0.4


def _corner_above_nose(lm: np.ndarray) -> np.ndarray:
    """Mean lip-corner height above the subnasale (face-space +Y) / eye distance."""
    return (lm[..., CORNERS, 1].mean(axis=-1) - lm[..., SUBNASALE, 1]) / inter_ocular(lm)


def _right_corner_over_left(lm: np.ndarray) -> np.ndarray:
    """The subject's right lip corner's height above the left one's / eye distance."""
    return (lm[..., RIGHT_LIP_CORNER, 1] - lm[..., LEFT_LIP_CORNER, 1]) / inter_ocular(lm)


#: cue -> (metric on landmarks [..., 478, 3], sign of the cue's direction)
CUES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "jaw open": (mouth_opening, 1),
    "lip-corner lift": (_corner_above_nose, 1),
    "lip-corner drop": (lip_corner_height, -1),
    "one-sided lift": (_right_corner_over_left, 1),
    "inner-brow raise": (inner_brow_height, 1),
    "inner-brow lower": (inner_brow_height, -1),
    "brow raise": (brow_height, 1),
    "brow lower": (brow_height, -1),
    "eye widen": (eye_opening, 1),
    "eye narrow": (eye_opening, -1),
}


@dataclass(frozen=True)
class EmotionCoverage:
    fraction: float  # smallest reach/ask over the cues the emotion needs, in [0, 1]
    limiting: str  # the cue that sets it ("" for neutral)
    asks: dict[str, float]  # needed cue -> the change full intensity asks

    @property
    def level(self) -> str:
        if self.fraction >= COVERED:
            return "covered"
        return "partly" if self.fraction >= PARTLY else "not covered"


@dataclass(frozen=True)
class Coverage:
    """What a subject's training footage shows (see the module docstring)."""

    frames: int
    seconds: float
    reach: dict[str, float]  # cue -> 95th percentile of its signed change
    emotions: dict[str, EmotionCoverage]

    def covered(self, level: str = "covered") -> list[str]:
        return [e for e, c in self.emotions.items() if e != "neutral" and c.level == level]

    def summary(self) -> str:
        """One line: what renders will show (the add-on panel, ``bench coverage``)."""
        full = self.covered("covered")
        parts = [f"footage covers {', '.join(full)}" if full
                 else "footage covers no keyed emotion fully"]
        for level, word in (("partly", "partly"), ("not covered", "not")):
            names = [f"{e} {self.emotions[e].fraction:.0%}" for e in self.covered(level)]
            if names:
                parts.append(f"{word} {', '.join(names)}")
        return "; ".join(parts)

    def lines(self) -> list[str]:
        """The full report ``subject build`` / ``subject info`` print."""
        out = [f"expression coverage of the footage ({self.frames} training frames, "
               f"{self.seconds:.1f} s; reach = 95th percentile of the change from the calm "
               "face, in eye-distance units):"]
        most = {cue: max((c.asks.get(cue, 0.0) for c in self.emotions.values()),
                         default=0.0) for cue in CUES}
        for cue, r in self.reach.items():
            asker = max(self.emotions, key=lambda e: self.emotions[e].asks.get(cue, 0.0))
            rel = (f"{min(r / most[cue], 9.99):4.0%} of what {asker} asks"
                   if most[cue] > 0 else "no emotion asks it")
            out.append(f"  {cue:17s} reach {r:+.3f}  ({rel})")
        for e, c in self.emotions.items():
            if e == "neutral":
                continue
            why = "" if c.level == "covered" else f"  - film more {c.limiting}"
            out.append(f"  {e:10s} {c.level:11s} {c.fraction:4.0%}{why}")
        return out

    def to_dict(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 2),
                "percentile": PERCENTILE, "units": "eye distance (outer corners)",
                "reach": {k: round(v, 4) for k, v in self.reach.items()},
                "emotions": {e: {"fraction": round(c.fraction, 3), "level": c.level,
                                 "limiting": c.limiting,
                                 "asks": {k: round(v, 4) for k, v in c.asks.items()}}
                             for e, c in self.emotions.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> Coverage:
        return cls(int(d["frames"]), float(d["seconds"]),
                   {k: float(v) for k, v in d["reach"].items()},
                   {e: EmotionCoverage(float(c["fraction"]), str(c["limiting"]),
                                       {k: float(v) for k, v in c["asks"].items()})
                    for e, c in d["emotions"].items()})


def _changes(landmarks: np.ndarray, neutral: np.ndarray) -> dict[str, np.ndarray]:
    """Per cue, the signed change of every frame from ``neutral`` (NaN where not counted)."""
    out = {}
    for cue, (metric, sign) in CUES.items():
        d = sign * (metric(landmarks) - metric(neutral))
        if cue == "eye narrow":  # blinks are not squints
            d = np.where(eye_opening(landmarks) >= 0.5 * eye_opening(neutral), d, np.nan)
        out[cue] = d
    return out


def emotion_asks(neutral: np.ndarray) -> dict[str, dict[str, float]]:
    """emotion -> {cue: change} its full-intensity prototype makes on ``neutral``."""
    protos = np.stack([emotion_prototype(e) for e in EMOTIONS])
    faces = landmarks_from_blendshapes(protos, neutral)
    changes = _changes(faces, neutral)
    most = {cue: float(np.nanmax(v)) for cue, v in changes.items()}
    return {e: {cue: float(v[i]) for cue, v in changes.items()
                if v[i] >= max(NEEDED * most[cue], MIN_ASK)}
            for i, e in enumerate(EMOTIONS)}


def footage_coverage(face_landmarks: np.ndarray, fps: float,
                     neutral: np.ndarray | None = None) -> Coverage:
    """Coverage of training frames' face-space landmarks ``[T, 478, 3]`` (metres, head
    pose removed) around ``neutral`` (default: their calm face, as subjects use)."""
    lm = np.asarray(face_landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (N_LANDMARKS, 3):
        raise InputError(f"face landmarks must be shaped [T, 478, 3], got {lm.shape}",
                         "pass the tracked face-space landmarks of the footage")
    lm = lm[np.all(np.isfinite(lm), axis=(1, 2))]
    if len(lm) < 3:
        raise InputError("fewer than 3 tracked frames: no expression coverage to measure",
                         "use footage where the face is visible for at least a second")
    neutral = estimate_neutral(lm) if neutral is None else np.asarray(neutral, np.float64)
    reach = {cue: max(0.0, float(np.nanpercentile(d, PERCENTILE)))
             if np.isfinite(d).any() else 0.0 for cue, d in _changes(lm, neutral).items()}
    emotions = {}
    for e, asks in emotion_asks(neutral).items():
        ratios = {cue: min(1.0, reach[cue] / a) for cue, a in asks.items()}
        limiting = min(ratios, key=ratios.get) if ratios else ""
        emotions[e] = EmotionCoverage(ratios[limiting] if ratios else 1.0, limiting, asks)
    return Coverage(len(lm), len(lm) / max(fps, 1e-6), reach, emotions)


def subject_coverage(folder: Path, manifest: dict) -> tuple[Coverage, str] | None:
    """A built subject's coverage and where it came from: its manifest, else measured on
    the training frames it keeps (``cache/data.npz``, or the shipped ``training.npz``
    sample), around the neutral it retargets onto. None when it keeps no frames."""
    if isinstance(manifest.get("coverage"), dict):
        return Coverage.from_dict(manifest["coverage"]), "manifest"
    neutral = (manifest.get("conditioning") or {}).get("landmark_neutral")
    for name in ("cache/data.npz", "training.npz"):
        path = folder / name
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as d:
            lm, n, fps = d["landmarks"], int(d["n_train"]), d["fps"]
        lm = lm[:n] if n else lm  # training.npz is a sample of training frames (n_train 0)
        cov = footage_coverage(lm, float(fps[0]) / float(fps[1]),
                               None if neutral is None else np.asarray(neutral))
        return cov, f"{name} ({len(lm)} frames)"
    return None
