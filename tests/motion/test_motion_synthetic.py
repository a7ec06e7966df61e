"""Synthetic lip-sync data: viseme targets, generator determinism, audio augmentation."""

from __future__ import annotations

import numpy as np

from backend.motion.augment import augment_audio
from backend.motion.face_basis import MOUTH_CHANNELS, landmarks_from_blendshapes
from backend.motion.synthetic import make_sentence, make_synthetic_set
from backend.motion.visemes import viseme_target, viseme_track
from backend.speech.viseme_classes import viseme_class
from shared.landmarks import canonical_face, mouth_opening

CH = {n: i for i, n in enumerate(MOUTH_CHANNELS)}


def _opening(mouth: np.ndarray) -> np.ndarray:
    """Mouth opening (inner-lip gap / IOD) of 27-channel poses on the canonical face."""
    w = np.zeros((len(mouth), 52), np.float32)
    from backend.motion.face_basis import channel_index

    w[:, channel_index(MOUTH_CHANNELS)] = mouth
    return mouth_opening(landmarks_from_blendshapes(w, None))


def test_bilabials_close_the_mouth_and_open_vowels_open_the_jaw() -> None:
    rest = float(mouth_opening(canonical_face().vertices[None])[0])
    for ph in ("p", "b", "m", "'m"):
        assert viseme_class(ph) == "bilabial"
        t = viseme_target(ph)
        assert t[CH["mouthClose"]] > 0.2 and t[CH["jawOpen"]] < 0.1
        assert _opening(t[None])[0] < 0.5 * rest  # the lips meet
    for ph in ("a", "'A:", "aI", ",aU"):
        t = viseme_target(ph)
        assert t[CH["jawOpen"]] >= 0.5
        assert _opening(t[None])[0] > rest + 0.08
    assert viseme_target("u:")[CH["mouthPucker"]] > 0.4  # rounded
    assert viseme_target("f")[CH["mouthRollLower"]] > 0.4  # lower lip to upper teeth
    assert not viseme_target("_").any()  # pauses rest


def test_viseme_track_closes_for_a_bilabial_between_vowels() -> None:
    phones = [("_", 0.0), ("a", 0.2), ("m", 0.4), ("a", 0.5), ("_", 0.8)]
    times = np.arange(0, 1.0, 0.02)
    track = viseme_track(phones, 1.0, times)
    assert track.shape == (len(times), len(MOUTH_CHANNELS)) and np.isfinite(track).all()
    jaw = track[:, CH["jawOpen"]]
    at = lambda s: round(s / 0.02)  # noqa: E731
    assert jaw[at(0.3)] > 0.4 and jaw[at(0.65)] > 0.4  # the vowels
    assert jaw[at(0.44)] < 0.25 and track[at(0.44), CH["mouthClose"]] > 0.1  # the /m/
    assert jaw[at(0.05)] < 0.05 and jaw[at(0.98)] < 0.05  # rest in the pauses


def test_synthetic_generator_is_deterministic_for_a_seed() -> None:
    assert make_sentence(np.random.default_rng(3)) == make_sentence(np.random.default_rng(3))
    a = make_synthetic_set(2, seed=7)
    b = make_synthetic_set(2, seed=7)
    c = make_synthetic_set(2, seed=8)
    for x, y in zip(a, b, strict=True):
        assert x.text == y.text and x.voice == y.voice and x.fps == y.fps
        # espeak-ng jitters its pauses by a few samples between calls: near, not equal
        assert abs(x.n_frames - y.n_frames) <= 1
        n = min(x.n_frames, y.n_frames)
        jx, jy = x.mouth[:n, CH["jawOpen"]], y.mouth[:n, CH["jawOpen"]]
        assert np.corrcoef(jx, jy)[0, 1] > 0.98
    assert [x.text for x in a] != [x.text for x in c]
    for x in a:
        assert x.mel.shape[0] == x.prosody.shape[0] == x.n_frames > 10
        assert np.isfinite(x.mel).all() and np.isfinite(x.blendshapes).all()
        assert x.mouth[:, CH["jawOpen"]].max() > 0.3  # it speaks


def test_augmentation_keeps_length_and_stays_finite() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.3)).astype(np.float32)
    for _ in range(20):
        y = augment_audio(x, 16000, rng, p_reverb=0.7, p_music=0.7, p_noise=0.7)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert augment_audio(np.zeros(0, np.float32), 16000, rng).shape == (0,)
    silent = augment_audio(np.zeros(800, np.float32), 16000, rng)
    assert np.isfinite(silent).all()
