"""FACS facts as data: Action Units → ARKit blendshapes, and emotion prototypes.

Why data and not a learned table: the brief requires emotions to *follow FACS*, so the
expected expression of each emotion must be written down where tests and benchmarks can
check the model against it. The per-emotion facts are rows of the one emotion table
(``shared.emotion_profiles``); this module turns them into its tables:

* ``AU_BLENDSHAPES`` — which ARKit-52 channels each Action Unit (Ekman & Friesen's FACS)
  moves, and how much at full (E) intensity.
* ``EMOTION_AUS`` — the AU set of each emotion, after the EMFACS prototypes, with FACS
  intensity letters (A trace … E maximum) and a side for unilateral AUs.
* ``FACS_SIGNATURES`` — the sign each emotion gives to five coarse, measurable features
  (brow raise, inner-brow raise, lip-corner height, eye opening, jaw opening). A 0 means
  "FACS predicts no clear direction", i.e. the feature is *not checked* for that emotion.

Left/Right follow ARKit's channel suffixes (the face's own left and right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from shared.blendshapes import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX
from shared.emotion_profiles import EMOTION_PROFILES, SIGNATURE_FEATURES
from shared.emotions import EMOTIONS, canonical_emotion, validate_emotion_arrays

Side = Literal["both", "left", "right"]

# FACS scores intensity with letters A–E. The numbers are our choice (FACS defines no
# scale); they are spaced so C ("marked") is half way and E is the channel's maximum.
FACS_INTENSITY: dict[str, float] = {"A": 0.15, "B": 0.3, "C": 0.5, "D": 0.75, "E": 1.0}


def _lr(stem: str, weight: float = 1.0) -> dict[str, float]:
    """Both sides of a bilateral ARKit channel pair."""
    return {f"{stem}Left": weight, f"{stem}Right": weight}


# ARKit channel weights each AU produces at full intensity. Secondary channels ("a bit")
# carry the visible side effects FACS describes for the AU.
AU_BLENDSHAPES: dict[int, dict[str, float]] = {
    1: {"browInnerUp": 1.0},                                  # AU1 inner brow raiser
    2: _lr("browOuterUp"),                                    # AU2 outer brow raiser
    4: _lr("browDown"),                                       # AU4 brow lowerer
    5: _lr("eyeWide"),                                        # AU5 upper lid raiser
    6: {**_lr("cheekSquint"), **_lr("eyeSquint", 0.3)},       # AU6 cheek raiser (narrows eye)
    7: _lr("eyeSquint"),                                      # AU7 lid tightener
    9: _lr("noseSneer"),                                      # AU9 nose wrinkler
    10: _lr("mouthUpperUp"),                                  # AU10 upper lip raiser
    12: _lr("mouthSmile"),                                    # AU12 lip corner puller
    14: _lr("mouthDimple"),                                   # AU14 dimpler
    15: _lr("mouthFrown"),                                    # AU15 lip corner depressor
    16: _lr("mouthLowerDown"),                                # AU16 lower lip depressor
    17: {"mouthShrugLower": 1.0, "mouthShrugUpper": 0.3},     # AU17 chin raiser
    18: {"mouthPucker": 1.0},                                 # AU18 lip pucker
    20: _lr("mouthStretch"),                                  # AU20 lip stretcher
    22: {"mouthFunnel": 1.0},                                 # AU22 lip funneler
    23: {**_lr("mouthPress"), "mouthRollLower": 0.15,         # AU23 lip tightener
         "mouthRollUpper": 0.15},
    24: {**_lr("mouthPress"), "mouthRollLower": 0.3,          # AU24 lip pressor
         "mouthRollUpper": 0.3},
    25: _lr("mouthLowerDown", 0.3),                           # AU25 lips part
    26: {"jawOpen": 0.6},                                     # AU26 jaw drop (relaxed)
    27: {"jawOpen": 1.0, **_lr("mouthStretch", 0.3)},         # AU27 mouth stretch (wide)
    28: {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},       # AU28 lip suck
    29: {"jawForward": 1.0},                                  # AU29 jaw thrust
    34: {"cheekPuff": 1.0},                                   # AU34 cheek puff
    43: _lr("eyeBlink"),                                      # AU43 eyes closed
    45: _lr("eyeBlink"),                                      # AU45 blink
    46: _lr("eyeBlink"),                                      # AU46 wink (use a side)
    61: {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0},      # AU61 eyes turn left
    62: {"eyeLookInLeft": 1.0, "eyeLookOutRight": 1.0},      # AU62 eyes turn right
    63: _lr("eyeLookUp"),                                     # AU63 eyes up
    64: _lr("eyeLookDown"),                                   # AU64 eyes down
}


@dataclass(frozen=True)
class AUActivation:
    """One AU in an expression: its number, FACS intensity letter and side."""

    au: int
    level: str = "C"
    side: Side = "both"

    @property
    def intensity(self) -> float:
        return FACS_INTENSITY[self.level]


# The per-emotion tables, derived from the one emotion table (shared.emotion_profiles):
# the EMFACS prototype of each emotion, and the expected sign of each signature feature.
EMOTION_AUS: dict[str, tuple[AUActivation, ...]] = {
    p.name: tuple(AUActivation(*spec) for spec in p.aus) for p in EMOTION_PROFILES}
FACS_SIGNATURES: dict[str, dict[str, int]] = {
    p.name: dict(zip(SIGNATURE_FEATURES, p.signature, strict=True)) for p in EMOTION_PROFILES}


def _one_side(activations: tuple[AUActivation, ...]) -> Side | None:
    sides = {a.side for a in activations}
    return sides.pop() if len(sides) == 1 and "both" not in sides else None


# Emotions whose FACS prototype is one-sided, and the side (benchmarks check asymmetry).
UNILATERAL_EMOTIONS: dict[str, Side] = {
    name: side for name, aus in EMOTION_AUS.items() if (side := _one_side(aus)) is not None}


def au_blendshapes(activations: tuple[AUActivation, ...] | list[AUActivation]) -> np.ndarray:
    """ARKit-52 weights (float32[52], clipped to [0, 1]) for a set of active AUs.

    A one-sided AU drives only that side's channels, and its unsided channels (e.g.
    jawOpen) at half weight, since half the muscle pair acts.
    """
    out = np.zeros(len(ARKIT_BLENDSHAPES), dtype=np.float64)
    for act in activations:
        if act.au not in AU_BLENDSHAPES:
            raise KeyError(f"AU{act.au} has no ARKit mapping in AU_BLENDSHAPES")
        for shape, weight in AU_BLENDSHAPES[act.au].items():
            out[BLENDSHAPE_INDEX[shape]] += weight * act.intensity * _side_gain(shape, act.side)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _side_gain(shape: str, side: Side) -> float:
    if side == "both":
        return 1.0
    if shape.endswith(("Left", "Right")):
        return 1.0 if shape.endswith(side.capitalize()) else 0.0
    return 0.5


def emotion_prototype(name: str) -> np.ndarray:
    """The full-weight, full-intensity ARKit-52 face of one emotion (float32[52])."""
    return _PROTOTYPES[EMOTIONS.index(canonical_emotion(name))].copy()


_PROTOTYPES: np.ndarray = np.stack([au_blendshapes(EMOTION_AUS[e]) for e in EMOTIONS])


def emotion_blendshapes(weights: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Per-frame expression ``float32[T, 52]`` from emotion weights ``[T, 8]`` and
    intensity ``[T]``: the weighted sum of prototypes times intensity, clipped to [0, 1].

    A sum (not a normalised average) so a 0.3 happy is a faint smile rather than a full
    one, and mixes like happy+surprised show both faces.
    """
    w, s = validate_emotion_arrays(weights, intensity)
    mixed = (w.astype(np.float64) * s[:, None]) @ _PROTOTYPES.astype(np.float64)
    return np.clip(mixed, 0.0, 1.0).astype(np.float32)


def _mean(shapes: np.ndarray, *names: str) -> np.ndarray:
    return shapes[..., [BLENDSHAPE_INDEX[n] for n in names]].mean(axis=-1)


def signature_features(blendshapes: np.ndarray) -> np.ndarray:
    """The five ``SIGNATURE_FEATURES`` read off ARKit-52 weights ``[..., 52]``.

    Proxies for the geometric features, so blendshape output can be checked against
    ``FACS_SIGNATURES`` without a mesh: raisers count up, their antagonists down.
    """
    b = np.asarray(blendshapes, dtype=np.float64)
    if b.shape[-1] != len(ARKIT_BLENDSHAPES):
        raise ValueError(f"expected [..., 52] blendshapes, got shape {b.shape}")
    brow_down = _mean(b, "browDownLeft", "browDownRight")
    features = (
        _mean(b, "browOuterUpLeft", "browOuterUpRight") - brow_down,
        b[..., BLENDSHAPE_INDEX["browInnerUp"]] - brow_down,
        _mean(b, "mouthSmileLeft", "mouthSmileRight")
        - _mean(b, "mouthFrownLeft", "mouthFrownRight"),
        _mean(b, "eyeWideLeft", "eyeWideRight") - _mean(b, "eyeSquintLeft", "eyeSquintRight")
        - _mean(b, "eyeBlinkLeft", "eyeBlinkRight"),
        b[..., BLENDSHAPE_INDEX["jawOpen"]],
    )
    return np.stack(features, axis=-1)
