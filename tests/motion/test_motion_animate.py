"""animate(): timing at every fps, determinism, emotion control, bad input, chunking."""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import numpy as np
import pytest

from backend.audio import Audio
from backend.motion.model import load_model
from backend.motion.performance import animate
from shared.blendshapes import BLENDSHAPE_INDEX
from shared.emotions import EMOTIONS
from shared.errors import InputError
from shared.landmarks import inner_brow_height, inter_ocular, lip_corner_height, mouth_opening

SR = 16000


@pytest.fixture(scope="module")
def model():
    return load_model()


@functools.lru_cache(maxsize=1)
def _spoken() -> np.ndarray:
    """Two sentences from the bundled espeak-ng with a pause, at 16 kHz (made once per
    process: espeak's output depends on what it said before)."""
    from backend.audio.loading import resample
    from backend.speech.espeak import synthesize

    clip = synthesize("Bob made a big map. Then we ate apples by the open window.",
                      "en-us", 170)
    x = resample(clip.samples, clip.sample_rate, SR)
    return np.concatenate([np.zeros(SR // 4, np.float32), x, np.zeros(SR // 2, np.float32)])


def speechlike(seconds: float = 3.0, seed: int = 0) -> Audio:
    """Real-sounding speech (espeak-ng) with pauses, repeated or cut to ``seconds``: the
    trained voice-activity detector hears it as speech, so the mouth moves."""
    x = _spoken()
    x = np.tile(x, int(np.ceil(seconds * SR / len(x))))[: int(seconds * SR)]
    noise = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    return Audio(np.ascontiguousarray(x + 1e-4 * noise), SR)


def run(model, emotion=None, **kw):
    kw.setdefault("blinks", False)
    kw.setdefault("head_motion_amount", 0.0)
    return animate(speechlike(), 25, emotion, model=model, **kw)


@pytest.mark.parametrize("fps", ["23.976", "24", "25", "29.97", "30", "50", "60"])
def test_frame_timing_at_every_fps(model, fps: str) -> None:
    audio = speechlike(2.0)
    anim = animate(audio, fps, None, model=model, first_frame=10, start_offset="0.25")
    exact = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001)}.get(
        fps, Fraction(fps))
    assert anim.fps == exact
    expected = -(-(Fraction(2) - Fraction(1, 4)) * exact // 1)  # ceil
    assert anim.n_frames == expected
    assert anim.frame_numbers[0] == 10 and anim.frame_numbers[-1] == 10 + expected - 1
    k = np.arange(anim.n_frames)
    np.testing.assert_allclose(anim.frame_times, 0.25 + (k + 0.5) / float(exact), atol=1e-9)
    assert anim.blendshapes.shape == (expected, 52)
    assert anim.landmarks.shape == (expected, 478, 3)
    assert anim.head_pose.shape == (expected, 4, 4)
    assert np.all(np.isfinite(anim.landmarks))


def test_same_seed_same_result_and_variation_changes_it(model) -> None:
    a = run(model, "0:happy@0.5", seed=7, variation=1.0, blinks=True, head_motion_amount=1.0)
    b = run(model, "0:happy@0.5", seed=7, variation=1.0, blinks=True, head_motion_amount=1.0)
    c = run(model, "0:happy@0.5", seed=8, variation=1.0, blinks=True, head_motion_amount=1.0)
    for name in ("blendshapes", "landmarks", "head_pose", "blink"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.blendshapes, c.blendshapes)
    mean0 = run(model, seed=1, variation=0.0).blendshapes
    mean1 = run(model, seed=2, variation=0.0).blendshapes
    np.testing.assert_array_equal(mean0, mean1)  # variation 0 is the deterministic mean


def test_chunking_does_not_change_the_result(model) -> None:
    kw = {"seed": 3, "variation": 0.7, "blinks": True, "head_motion_amount": 1.0}
    whole = animate(speechlike(6.0), 30, "0:neutral,60:angry,120:sad@0.5", model=model,
                    chunk_frames=4096, **kw)
    parts = animate(speechlike(6.0), 30, "0:neutral,60:angry,120:sad@0.5", model=model,
                    chunk_frames=37, **kw)
    np.testing.assert_allclose(whole.blendshapes, parts.blendshapes, atol=1e-4)
    np.testing.assert_allclose(whole.blink, parts.blink, atol=1e-9)
    np.testing.assert_allclose(whole.head_pose, parts.head_pose, atol=1e-6)


def test_more_happy_raises_lip_corners_monotonically(model) -> None:
    heights = [float(lip_corner_height(run(model, f"0:happy@{s}").landmarks).mean())
               for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(b > a for a, b in itertools.pairwise(heights)), heights


def test_intensity_zero_is_neutral_and_scales_sadness(model) -> None:
    neutral = run(model, "0:neutral")
    np.testing.assert_allclose(run(model, "0:sad@0").blendshapes, neutral.blendshapes,
                               atol=1e-6)
    brows = [float(inner_brow_height(run(model, f"0:sad@{s}").landmarks).mean())
             for s in (0.0, 0.5, 1.0)]
    assert brows[0] < brows[1] < brows[2]


def test_mixing_shows_both_emotions(model) -> None:
    neutral = run(model, "0:neutral").landmarks
    mix = run(model, "0:happy+surprised").landmarks
    assert lip_corner_height(mix).mean() > lip_corner_height(neutral).mean() + 0.005
    assert inner_brow_height(mix).mean() > inner_brow_height(neutral).mean() + 0.005
    assert mouth_opening(mix).mean() > mouth_opening(neutral).mean()


def test_per_frame_arrays_equal_the_same_track(model) -> None:
    n = run(model).n_frames
    w = np.zeros((n, 8), np.float32)
    w[:, EMOTIONS.index("angry")] = 1.0
    s = np.full(n, 0.7, np.float32)
    by_arrays = run(model, (w, s))
    by_string = run(model, "0:angry@0.7")
    np.testing.assert_allclose(by_arrays.blendshapes, by_string.blendshapes, atol=1e-5)
    np.testing.assert_array_equal(by_arrays.emotion_weights, w)


def test_emotion_keeps_identity(model) -> None:
    neutral = run(model, "0:neutral").landmarks
    for emo in EMOTIONS[1:]:
        lm = run(model, f"0:{emo}").landmarks
        assert abs(inter_ocular(lm).mean() / inter_ocular(neutral).mean() - 1) < 0.02, emo


def test_articulation_scales_the_speaking_mouth(model) -> None:
    openings = [mouth_opening(run(model, articulation=a).landmarks) for a in (0.0, 1.0, 2.0)]
    closed, normal, wide = openings
    assert np.allclose(closed, closed[0], atol=1e-6)  # 0: speech no longer moves the mouth
    assert normal.max() > closed.max() + 0.01
    rest = closed[0]  # openings above the closed mouth: about proportional to the dial
    assert (wide - rest).mean() > 1.5 * (normal - rest).mean() > 0.0
    for bad in (-0.5, 4.0, float("nan"), "wide"):
        with pytest.raises(InputError, match="articulation"):
            run(model, articulation=bad)


def test_blinks_can_be_switched_off(model) -> None:
    anim = animate(speechlike(8.0), 30, None, model=model, blinks=False)
    assert np.all(anim.blink == 0)
    on = animate(speechlike(8.0), 30, None, model=model, blinks=True, seed=4)
    assert on.blink.max() == 1.0
    assert np.all(on.blendshapes[:, BLENDSHAPE_INDEX["eyeBlinkLeft"]] >= on.blink - 1e-6)


def test_auto_mode_gives_a_valid_track(model) -> None:
    anim = run(model, "auto")
    assert anim.emotion_weights.shape == (anim.n_frames, 8)
    assert np.all((anim.emotion_intensity >= 0) & (anim.emotion_intensity <= 0.6))


@pytest.mark.parametrize("emotion, message", [
    ("0:angy", "Unknown emotion"),
    ("0:happy@1.5", r"outside \[0, 1\]"),
])
def test_bad_emotion_strings(model, emotion: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        run(model, emotion)


def test_bad_arrays_fps_and_audio(model) -> None:
    n = run(model).n_frames
    w = np.zeros((n, 8), np.float32)
    w[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run(model, (w, np.ones(n, np.float32)))
    with pytest.raises(InputError, match="cover"):
        run(model, (np.zeros((n + 2, 8), np.float32), np.ones(n + 2, np.float32)))
    for fps in (0, -24, "abc"):
        with pytest.raises(InputError, match="Frame rate"):
            animate(speechlike(1.0), fps, None, model=model)
    with pytest.raises(InputError):
        run(model, variation=float("nan"))
    from backend.audio import load_audio

    with pytest.raises(InputError):
        load_audio((np.zeros(SR, np.float32), SR))  # silent-only audio is refused


def test_options_type_is_the_keywords(model) -> None:
    """``options=AnimationOptions(...)`` and the same fields as keywords perform alike;
    a bad option is refused by name before any work."""
    from backend.motion.performance import AnimationOptions

    kw = {"seed": 3, "variation": 0.5, "chunk_frames": 16, "blinks": True}
    by_keywords = animate(speechlike(1.0), 30, "0:happy", model=model, **kw)
    by_options = animate(speechlike(1.0), 30, "0:happy", model=model,
                         options=AnimationOptions(**kw))
    np.testing.assert_array_equal(by_keywords.blendshapes, by_options.blendshapes)
    np.testing.assert_array_equal(by_keywords.head_pose, by_options.head_pose)
    assert by_options.meta["seed"] == 3 and by_options.meta["chunks"] == by_keywords.meta[
        "chunks"] > 1
    with pytest.raises(InputError, match="chunk_frames"):
        AnimationOptions(chunk_frames=0).checked()
