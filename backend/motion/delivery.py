"""How the mouth delivers the phones: JALI-style jaw and lip activation, emotion, and the
lip constraints every delivery keeps.

JALI (Edwards et al. 2016) animates speech with two independent dials: JA, how far the
jaw travels (driven by vocal effort), and LI, how strongly the lips shape each viseme.
Here:

* **Effort -> JA.** Louder than the speaker's own level nearby opens the jaw more, quieter
  less (``EFFORT_PER_10DB`` per 10 dB, about the local speech median). Fixed a priori
  from JALI's description, not fitted to any clip.
* **Emotion -> JA, LI and tempo** (``DELIVERY``, rows of the emotion table): angry and
  surprised widen articulation, sad narrows it and slows it (the mouth moves more lazily: a wider
  temporal smoothing), contempt and disgust tighten the lips; happy keeps articulation
  and the LDM keeps its smile on top. Mixed and partial emotions blend per frame by weight
  x intensity, so the delivery follows keyframes and differs with every line (not a
  constant offset).
* **Lip constraints** (``constrain``) after everything else: where a bilabial sounds, the
  lips meet (``mouthClose`` matches the jaw, as ARKit defines it, the lips press, and
  the channels that would part them yield: ``lip_openers``);
  where f/v sounds, the lower lip tucks (``mouthRollLower``) and the jaw stays nearly
  shut. Jaw and lips stay independent: a wide "angry" jaw still closes its lips on /p/.

Everything here is per frame or a short symmetric filter (under the animation's chunk
context), so chunking never changes the result.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from shared.emotion_profiles import EMOTION_PROFILES
from shared.emotions import EMOTIONS

from .face_basis import MOUTH_CHANNELS

_CH = {n: i for i, n in enumerate(MOUTH_CHANNELS)}
JAW = [_CH[n] for n in ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight",
                        "mouthUpperUpLeft", "mouthUpperUpRight")]  # = speech.JAW_CHANNELS
LIPS = [i for n, i in _CH.items() if i not in JAW and n not in ("mouthClose",)]
EFFORT_PER_10DB = 0.15
EFFORT_RANGE = (0.75, 1.3)
EFFORT_WINDOW_S = 2.0

# emotion -> (jaw activation, lip activation, slowness: extra smoothing sigma in seconds),
# each profile's ``delivery`` in the one emotion table (shared.emotion_profiles)
DELIVERY: dict[str, tuple[float, float, float]] = {p.name: p.delivery for p in EMOTION_PROFILES}
_TABLE = np.array([DELIVERY[e] for e in EMOTIONS], np.float32)  # [8, 3]
MAX_SLOWNESS_S = float(_TABLE[:, 2].max())


def effort_gain(energy_db: np.ndarray, speech: np.ndarray, hz: float) -> np.ndarray:
    """JA from vocal effort on a regular grid (``hz`` samples per second): loudness about
    the local speech median, in [EFFORT_RANGE]. Non-speech samples give 1."""
    e = np.asarray(energy_db, np.float64)
    sp = np.asarray(speech, bool)
    if not sp.any():
        return np.ones(len(e), np.float32)
    win = max(3, round(EFFORT_WINDOW_S * hz))
    level = uniform_filter1d(np.where(sp, e, 0.0), win, mode="nearest")
    share = uniform_filter1d(sp.astype(np.float64), win, mode="nearest")
    local = np.where(share > 1e-3, level / np.maximum(share, 1e-3), np.median(e[sp]))
    gain = 1.0 + EFFORT_PER_10DB * (gaussian_filter1d(e, 0.02 * hz) - local) / 10.0
    return np.where(sp, np.clip(gain, *EFFORT_RANGE), 1.0).astype(np.float32)


def emotion_delivery(weights: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Per frame (jaw activation, lip activation, slowness s) [T, 3] for emotion weights
    [T, 8] and intensity [T]: 1, 1, 0 for neutral or intensity 0."""
    w = np.asarray(weights, np.float32) * np.asarray(intensity, np.float32)[:, None]
    base = np.array([1.0, 1.0, 0.0], np.float32)
    return base + w @ (_TABLE - base)


def deliver(mouth: np.ndarray, jaw_gain: np.ndarray, lip_gain: np.ndarray,
            slowness_s: np.ndarray, fps: float) -> np.ndarray:
    """Scale jaw and lip channels [T, 27] per frame and slow where asked."""
    out = np.asarray(mouth, np.float32).copy()
    out[:, JAW] *= jaw_gain[:, None]
    out[:, LIPS] *= lip_gain[:, None]
    if np.any(slowness_s > 0):  # blend towards the laziest copy as much as each frame asks
        lazy = gaussian_filter1d(out, MAX_SLOWNESS_S * fps, axis=0, mode="nearest")
        a = np.clip(slowness_s / MAX_SLOWNESS_S, 0, 1)[:, None]
        out = out * (1 - a) + lazy * a
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=1)
def lip_openers() -> tuple[int, ...]:
    """Mouth channels that part the lips by themselves (funnel, lip raisers/lowerers,
    stretch, upper shrug), found from the face basis: half weight on top of a closed
    jaw-open pose widens the inner-lip gap by more than 1.5 % of the inter-ocular
    distance's worth of ``mouth_opening``. They must yield where the lips must meet."""
    from shared.blendshapes import BLENDSHAPE_INDEX
    from shared.landmarks import mouth_opening

    from .face_basis import landmarks_from_blendshapes

    w = np.zeros((len(MOUTH_CHANNELS) + 1, 52), np.float32)
    w[:, BLENDSHAPE_INDEX["jawOpen"]] = w[:, BLENDSHAPE_INDEX["mouthClose"]] = 0.2
    for i, name in enumerate(MOUTH_CHANNELS):
        w[i + 1, BLENDSHAPE_INDEX[name]] += 0.5
    gap = mouth_opening(landmarks_from_blendshapes(w))
    return tuple(i for i, name in enumerate(MOUTH_CHANNELS)
                 if name not in ("jawOpen", "mouthClose") and gap[i + 1] - gap[0] > 0.003)


def constrain(mouth: np.ndarray, must: np.ndarray) -> np.ndarray:
    """Lips meet on bilabials and the lower lip tucks on f/v (``must`` [T, 2], 0 or 1).

    Idempotent, so it can hold both on the speech face and again on the final face after
    an emotion added its own jaw (surprise drops the jaw; its /p/ must still close)."""
    out = np.asarray(mouth, np.float32).copy()
    c, f = must[:, 0], must[:, 1]
    out[:, list(lip_openers())] *= (1.0 - c)[:, None]
    jaw = _CH["jawOpen"]
    out[:, jaw] = np.minimum(out[:, jaw], 0.12 + (1.0 - f))
    out[:, _CH["mouthClose"]] = np.maximum(out[:, _CH["mouthClose"]],
                                           np.maximum(c, 0.6 * f) * out[:, jaw])
    for side in ("Left", "Right"):
        out[:, _CH[f"mouthPress{side}"]] = np.maximum(  # seal harder the wider the jaw
            out[:, _CH[f"mouthPress{side}"]], c * np.minimum(0.35, 3.0 * out[:, jaw]))
        out[:, _CH[f"mouthUpperUp{side}"]] = np.maximum(out[:, _CH[f"mouthUpperUp{side}"]],
                                                        0.2 * f)
    out[:, _CH["mouthRollLower"]] = np.maximum(out[:, _CH["mouthRollLower"]], 0.6 * f)
    return np.clip(out, 0.0, 1.0)
