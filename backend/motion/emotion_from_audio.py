"""The ``auto`` emotion: a small classifier over the voice's prosody, per frame.

Why prosody and not words: emotion in the voice is carried by pitch level, range and
movement, loudness and its dynamics, speaking rate and pauses (Murray & Arnott 1993), and
these are already on the frame grid (``features.prosody``), so ``auto`` costs almost
nothing beside the lip sync. Each frame gets features of a ~2 s window around it:

* pitch (semitones): level re the recording's median, spread, movement per second, slope;
* loudness: level re the recording's median, spread, movement per second, peak;
* timing: share of the window that is speech (pauses), share of speech that is voiced,
  loudness peaks per second of speech (syllable nuclei: a rate proxy), mean voiced-run
  length.

Every feature but the speech share is then taken relative to its median over the same
recording's speech: ``auto`` reads how the delivery departs from this speaker's own
baseline, not how it compares with espeak. Measured why (``facecast bench emotion``):
with raw features the classifier called real read English emotional (mostly disgusted
or sad) on most of its frames, because a human voice's pitch movement and loudness
envelope lie outside every espeak voice's. The cost: a recording delivered in one
emotion from start to end reads mostly as its own baseline, i.e. neutral.

The classifier is a one-hidden-layer network trained by ``facecast motion train-emotion``
(``emotion_train``) on acted espeak-ng speech (``acted_speech``): seven emotions
(contempt has no prosody rule and is never estimated). Its weights ship as a few-KB JSON
file beside this module and run in numpy.

From probabilities to a track: smoothed over the window; where no non-neutral emotion
reaches ``MIN_CONFIDENCE``, or the window holds too little speech, the frame is neutral;
otherwise the weights are the probabilities and the intensity is the top probability
times ``INTENSITY_CAP`` (a guess must not drive a full expression). Use keys for anything
that matters: the classifier has heard only synthetic acted prosody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from shared.emotions import EMOTIONS
from shared.errors import FacecastError

from .acted_speech import ACTED_EMOTIONS

AUTO_WINDOW_S = 2.0
MIN_SPEECH_SHARE = 0.15  # windows with less speech than this stay neutral
MIN_CONFIDENCE = 0.4  # a non-neutral emotion below this probability is not shown (chosen
# on training voices and sentences, a fresh seed: line accuracy 0.45, right when shown 0.82)
INTENSITY_CAP = 0.6
WEIGHTS_FILE = Path(__file__).parent / "weights" / "emotion_audio.json"
FEATURE_NAMES = ("speech_share", "voiced_share", "pitch_level", "pitch_spread",
                 "pitch_movement", "pitch_slope", "loud_level", "loud_spread",
                 "loud_movement", "loud_peak", "peaks_per_s", "voiced_run_s")


def _masked_mean(x: np.ndarray, m: np.ndarray, win: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean of x over the masked frames of each window, masked share of the window)."""
    from scipy.ndimage import uniform_filter1d

    share = uniform_filter1d(m.astype(np.float64), win, mode="constant")
    total = uniform_filter1d(np.where(m, x, 0.0), win, mode="constant")
    return total / np.maximum(share, 1e-9), share


def _track_stats(x: np.ndarray, m: np.ndarray, win: int, fps: float
                 ) -> tuple[np.ndarray, ...]:
    """Per window over the masked frames of x: level, masked share, spread, and movement
    per second (mean |step| between consecutive masked frames)."""
    level, share = _masked_mean(x, m, win)
    spread = np.sqrt(np.maximum(_masked_mean(x ** 2, m, win)[0] - level ** 2, 0.0))
    both = np.zeros(len(x), bool)
    both[1:] = m[1:] & m[:-1]
    step = np.zeros(len(x))
    step[1:] = np.abs(np.diff(x))
    return level, share, spread, _masked_mean(step, both, win)[0] * fps


def window_features(prosody: np.ndarray, fps: float, relative: bool = True) -> np.ndarray:
    """float32 [T, len(FEATURE_NAMES)] from ``features.prosody`` [T, 4] at ``fps``.

    ``relative``: every feature but the speech share minus its median over the
    recording's speech frames (the speaker's own baseline); False keeps the raw values
    (the bench's table of what the acted rules did)."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    p = np.asarray(prosody, dtype=np.float64)
    n = len(p)
    out = np.zeros((n, len(FEATURE_NAMES)), np.float32)
    if n == 0:
        return out
    win = max(3, round(AUTO_WINDOW_S * fps))
    speech = p[:, 3] > 0.5
    voiced = (p[:, 2] > 0.5) & speech
    semis = 12.0 * p[:, 1]
    loud = p[:, 0] * 20.0  # dB
    st_ref = float(np.median(semis[voiced])) if voiced.any() else 0.0
    e_ref = float(np.median(loud[speech])) if speech.any() else 0.0
    share_speech = _masked_mean(np.zeros(n), speech, win)[1]
    level, share_voiced, spread, movement = _track_stats(semis, voiced, win, fps)
    t = np.arange(n) / fps
    mean_t = _masked_mean(t, voiced, win)[0]
    cov = _masked_mean(t * semis, voiced, win)[0] - mean_t * level
    var_t = _masked_mean(t * t, voiced, win)[0] - mean_t ** 2
    slope = np.where(var_t > 0.02, cov / np.maximum(var_t, 1e-9), 0.0)
    e_level, _, e_spread, e_move = _track_stats(loud, speech, win, fps)
    e_move = e_move / 20.0
    peak = maximum_filter1d(np.where(speech, loud, -np.inf), win, mode="constant")
    onset = np.zeros(n, bool)
    onset[1:] = voiced[1:] & ~voiced[:-1]
    onsets = _masked_mean(onset.astype(float), np.ones(n, bool), win)[0] * fps
    # syllable nuclei: loudness maxima within +-0.1 s, in speech, no more than 12 dB below
    # the recording's median (voicing onsets over-count where quiet speech drops voicing)
    smooth = uniform_filter1d(loud, max(1, round(0.04 * fps)), mode="nearest")
    k = max(1, round(0.1 * fps))
    nucleus = (smooth >= maximum_filter1d(smooth, 2 * k + 1, mode="nearest")) & speech & (
        smooth > e_ref - 12.0)
    peaks = _masked_mean(nucleus.astype(float), np.ones(n, bool), win)[0] * fps
    run = share_voiced * win / fps / np.maximum(onsets * win / fps, 1.0)
    has_v = share_voiced > 0
    has_s = share_speech > 0
    cols = [share_speech, share_voiced / np.maximum(share_speech, 1e-9),
            np.where(has_v, level - st_ref, 0.0), np.where(has_v, spread, 0.0),
            np.where(has_v, movement, 0.0), np.where(has_v, slope, 0.0),
            np.where(has_s, e_level - e_ref, 0.0) / 10.0,
            np.where(has_s, e_spread, 0.0) / 10.0, np.where(has_s, e_move, 0.0),
            np.where(has_s, peak - e_ref, 0.0) / 10.0,
            peaks / np.maximum(share_speech, 0.1), run]
    out[:] = np.nan_to_num(np.stack(cols, axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    if relative and speech.any():
        out[:, 1:] -= np.median(out[speech, 1:], axis=0)
    return out


@dataclass(frozen=True)
class EmotionClassifier:
    """Standardise -> tanh hidden layer -> softmax over ``ACTED_EMOTIONS``."""

    mean: np.ndarray  # [F]
    scale: np.ndarray  # [F]
    w1: np.ndarray  # [F, H]
    b1: np.ndarray  # [H]
    w2: np.ndarray  # [H, C]
    b2: np.ndarray  # [C]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """float32 [T, C] for features [T, F]."""
        x = (np.asarray(features, np.float64) - self.mean) / self.scale
        logits = np.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_json(self) -> dict:
        return {"format": 1, "classes": list(ACTED_EMOTIONS), "features": list(FEATURE_NAMES),
                "window_s": AUTO_WINDOW_S,
                **{k: np.round(getattr(self, k), 5).tolist()
                   for k in ("mean", "scale", "w1", "b1", "w2", "b2")}}

    @classmethod
    def from_json(cls, data: dict) -> EmotionClassifier:
        if (data.get("classes") != list(ACTED_EMOTIONS)
                or data.get("features") != list(FEATURE_NAMES)):
            raise FacecastError("the emotion-from-audio weights do not match this code",
                                "retrain them: facecast motion train-emotion")
        return cls(**{k: np.asarray(data[k], np.float64)
                      for k in ("mean", "scale", "w1", "b1", "w2", "b2")})


def save_classifier(clf: EmotionClassifier, path: Path) -> None:
    from backend.atomic_file import write_atomic

    data = json.dumps(clf.to_json(), separators=(",", ":")).encode()
    write_atomic(Path(path), lambda f: f.write(data))


@lru_cache(maxsize=2)
def load_classifier(path: Path = WEIGHTS_FILE) -> EmotionClassifier:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise FacecastError(f"cannot read the emotion-from-audio weights {path}",
                            "reinstall Facecast, or retrain: facecast motion train-emotion"
                            ) from exc
    return EmotionClassifier.from_json(data)


def track_from_probabilities(probs: np.ndarray, speech_share: np.ndarray, fps: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(weights [T, 8], intensity [T]) from per-frame probabilities over ACTED_EMOTIONS."""
    from scipy.ndimage import uniform_filter1d

    n = len(probs)
    weights = np.zeros((n, len(EMOTIONS)), np.float32)
    weights[:, 0] = 1.0
    intensity = np.zeros(n, np.float32)
    if n == 0:
        return weights, intensity
    half = max(1, round(AUTO_WINDOW_S * fps / 2))
    p = uniform_filter1d(np.asarray(probs, np.float64), half, axis=0, mode="nearest")
    cols = [EMOTIONS.index(e) for e in ACTED_EMOTIONS]
    top = p[:, 1:].max(axis=1)
    shown = (top >= MIN_CONFIDENCE) & (speech_share >= MIN_SPEECH_SHARE)
    weights[shown] = 0.0
    weights[np.ix_(shown, cols)] = p[shown]
    intensity[shown] = INTENSITY_CAP * top[shown]
    intensity = uniform_filter1d(intensity, half, mode="nearest")
    return weights, np.clip(intensity, 0.0, INTENSITY_CAP).astype(np.float32)


def estimate_emotion_from_prosody(prosody: np.ndarray, fps: float
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """A per-frame emotion track guessed from the voice: (weights [T, 8], intensity [T])."""
    feats = window_features(prosody, fps)
    if len(feats) == 0:
        return track_from_probabilities(np.zeros((0, len(ACTED_EMOTIONS))), np.zeros(0), fps)
    probs = load_classifier().probabilities(feats)
    return track_from_probabilities(probs, feats[:, 0], fps)
