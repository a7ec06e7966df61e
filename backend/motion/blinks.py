"""Blinks: a seeded renewal process in continuous time, sampled at the frame times.

Why continuous time: a blink is ~150 ms, i.e. 3-4 frames at 24 fps and 9 at 60 fps; events
placed in seconds and sampled at frame centres look the same at every frame rate. The
generator keeps its state between chunks, so a long file animated in blocks gets exactly
the blinks one pass would give.

Statistics (human averages): ~16 blinks/min at rest, each 100-200 ms (closing faster than
opening), never closer than a 0.6 s refractory period. Emotion scales the rate: arousal
and anxiety raise it (fear, anger), surprise suppresses it (eyes held wide).
"""

from __future__ import annotations

import numpy as np

from shared.emotion_profiles import EMOTION_PROFILES
from shared.emotions import EMOTIONS

BASE_RATE_PER_MIN = 16.0
REFRACTORY_S = 0.6
DURATION_S = (0.10, 0.20)
# each profile's ``blink_rate`` in the one emotion table (shared.emotion_profiles)
RATE_FACTOR: dict[str, float] = {p.name: p.blink_rate for p in EMOTION_PROFILES}
_FACTORS = np.array([RATE_FACTOR[e] for e in EMOTIONS])


def rate_multiplier(weights: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Per-frame blink-rate multiplier from emotion weights [T, 8] and intensity [T]."""
    return np.maximum(1.0 + (weights * intensity[:, None]) @ (_FACTORS - 1.0), 0.2)


def blink_shape(u: np.ndarray) -> np.ndarray:
    """Lid closure over a blink, u in [0, 1]: closes in the first 40 %, reopens after."""
    close = np.sin(0.5 * np.pi * np.clip(u / 0.4, 0, 1))
    reopen = np.cos(0.5 * np.pi * np.clip((u - 0.4) / 0.6, 0, 1))
    return np.where(u < 0.4, close, reopen) * ((u >= 0) & (u <= 1))


class BlinkGenerator:
    """Call ``sample(times, multiplier)`` on consecutive chunks of frame-centre times."""

    def __init__(self, seed: int, rate_per_min: float = BASE_RATE_PER_MIN) -> None:
        self.rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xB11])
        self.rate = rate_per_min
        self.events: list[tuple[float, float]] = []  # (start, duration), future or ongoing
        self.next_time: float | None = None

    def _interval(self, multiplier: float) -> float:
        mean = 60.0 / (self.rate * multiplier)
        extra = max(mean - REFRACTORY_S, 0.05)
        return REFRACTORY_S + self.rng.gamma(2.0, extra / 2.0)

    def sample(self, times: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
        out = np.zeros(len(times), np.float32)
        if len(times) == 0:
            return out
        if self.next_time is None:
            self.next_time = float(times[0]) + self.rng.uniform(0.3, 60.0 / self.rate)
        end = float(times[-1])
        while self.next_time <= end:
            at = int(np.clip(np.searchsorted(times, self.next_time), 0, len(times) - 1))
            self.events.append((self.next_time, self.rng.uniform(*DURATION_S)))
            self.next_time += self._interval(float(multiplier[at]))
        dt = float(times[1] - times[0]) if len(times) > 1 else 0.04
        for start, dur in self.events:
            out = np.maximum(out, blink_shape((times - start) / dur))
            peak = start + 0.4 * dur  # the frame holding the peak shows a closed lid
            k = int(np.round((peak - times[0]) / dt))
            if 0 <= k < len(times) and abs(times[k] - peak) <= dt / 2 + 1e-9:
                out[k] = 1.0
        self.events = [(s, d) for s, d in self.events if s + d > end]
        return out
