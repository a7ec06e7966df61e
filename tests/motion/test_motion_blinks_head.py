"""Blink and head-motion generators: rate, timing, refractory, seeds, smoothness."""

from __future__ import annotations

import numpy as np

from backend.motion.blinks import REFRACTORY_S, BlinkGenerator, rate_multiplier
from backend.motion.head import head_motion
from shared.emotions import EMOTIONS


def blink_starts(track: np.ndarray, times: np.ndarray) -> np.ndarray:
    up = np.flatnonzero((track[1:] > 0.05) & (track[:-1] <= 0.05)) + 1
    return times[up]


def test_blink_rate_duration_and_refractory() -> None:
    fps = 60.0
    times = (np.arange(int(600 * fps)) + 0.5) / fps
    track = BlinkGenerator(seed=1).sample(times, np.ones(len(times)))
    starts = blink_starts(track, times)
    rate = len(starts) / 10.0
    assert 14 <= rate <= 21, rate
    assert np.diff(starts).min() >= REFRACTORY_S - 2 / fps
    closed = track > 0.05
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], closed, [0]]))))[::2] / fps
    assert 0.08 <= np.median(runs) <= 0.22


def test_every_blink_fully_closes_at_low_fps() -> None:
    times = (np.arange(24 * 120) + 0.5) / 24
    track = BlinkGenerator(seed=2).sample(times, np.ones(len(times)))
    starts = np.flatnonzero((track[1:] > 0) & (track[:-1] == 0))
    assert len(starts) > 10
    for s in starts:
        assert track[s:s + 8].max() == 1.0


def test_emotion_modulates_blink_rate() -> None:
    w = np.zeros((1, 8), np.float32)
    w[0, EMOTIONS.index("surprised")] = 1
    assert rate_multiplier(w, np.ones(1, np.float32))[0] < 1
    w[:] = 0
    w[0, EMOTIONS.index("fearful")] = 1
    assert rate_multiplier(w, np.ones(1, np.float32))[0] > 1


def test_head_motion_is_seeded_smooth_small_and_can_be_off() -> None:
    times = np.arange(3000) / 30.0
    a = head_motion(times, seed=1)
    np.testing.assert_array_equal(a, head_motion(times, seed=1))
    assert not np.allclose(a, head_motion(times, seed=2))
    rot = a[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.eye(3)[None].repeat(3000, 0),
                               atol=1e-5)
    angle = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert 0.5 < angle.std() < 10 and angle.max() < 20
    accel = np.abs(np.diff(a[:, :3, :3], n=2, axis=0)).max()
    assert accel < 1e-3  # no jitter: second differences are tiny at 30 fps
    still = head_motion(times, seed=1, amplitude=0.0)
    np.testing.assert_allclose(still, np.eye(4)[None].repeat(3000, 0), atol=1e-7)
