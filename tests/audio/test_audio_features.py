"""Per-hop features on real speech and on signals whose right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.audio import compute_audio_features, load_audio, mel_filterbank
from backend.audio.features import DB_FLOOR, MEL_SILENCE, N_MELS, n_hops_for
from shared.errors import InputError

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
SR = 16000


def speech_file(name: str) -> Path:
    path = SPEECH / name
    if not path.exists():
        pytest.skip(f"real speech {path} is absent (../shared/data is only on dev/CI machines)")
    return path


@pytest.fixture(scope="module")
def eng_plus_silence():
    """eng.wav with 1 s of digital silence appended, and its features."""
    speech = load_audio(speech_file("eng.wav")).samples
    audio = load_audio((np.concatenate([speech, np.zeros(SR, np.float32)]), SR))
    return audio, compute_audio_features(audio)


def _tone(hz: float, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_shapes_and_ranges_on_real_speech(eng_plus_silence) -> None:
    audio, feats = eng_plus_silence
    assert feats.n_hops == n_hops_for(audio.n_samples) == 6100
    assert feats.mel.shape == (6100, N_MELS) and feats.mel.dtype == np.float32
    assert np.isfinite(feats.mel).all() and np.isfinite(feats.energy_db).all()
    # Fixed normalisation keeps real speech in a small, model-friendly range.
    speech_mel = feats.mel[:6000]
    lo, hi = np.percentile(speech_mel, [1, 99])
    assert -2.5 < lo < 0 < hi < 3.5
    assert abs(float(np.median(speech_mel))) < 1.0
    np.testing.assert_allclose(feats.mel[6020:], MEL_SILENCE, atol=1e-5)
    assert np.all(feats.energy_db[6020:] == pytest.approx(DB_FLOOR))


def test_vad_finds_speech_and_the_appended_silence(eng_plus_silence) -> None:
    _, feats = eng_plus_silence
    assert feats.vad[:6000].mean() > 0.6  # eng.wav is continuous speech
    assert not feats.vad[6020:].any()  # the appended second, past a 200 ms hangover
    # Speech flags follow loudness: active hops are much louder than inactive ones.
    speech = feats.vad[:6000]
    gap = np.median(feats.energy_db[:6000][speech]) - np.median(feats.energy_db[:6000][~speech])
    assert gap > 15.0


def test_vad_detects_a_pause_inserted_into_speech() -> None:
    speech = load_audio(speech_file("eng.wav")).samples[: 20 * SR]
    noise = np.random.default_rng(0).normal(0, 1e-3, SR).astype(np.float32)  # room tone
    audio = load_audio((np.concatenate([speech[: 10 * SR], noise, speech[10 * SR:]]), SR))
    vad = compute_audio_features(audio).vad
    assert not vad[1020:1080].any()  # the inserted second, minus the hangover
    assert vad[:1000].mean() > 0.6 and vad[1100:].mean() > 0.6


@pytest.mark.parametrize("hz", [70.0, 150.0, 250.0, 390.0])
def test_pitch_of_a_pure_tone(hz: float) -> None:
    feats = compute_audio_features(load_audio((_tone(hz), SR)))
    inner = slice(5, -5)
    assert feats.voiced[inner].all()
    assert np.all(np.abs(feats.f0[inner] - hz) < 5.0)


def test_pitch_of_150hz_tone_resampled_from_44k1() -> None:
    t = np.arange(44100 * 2) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 150.0 * t)).astype(np.float32)
    feats = compute_audio_features(load_audio((tone, 44100)))
    assert abs(float(np.median(feats.f0[feats.voiced])) - 150.0) < 5.0
    assert feats.voiced[5:-5].all()


def test_noise_is_unvoiced_and_speech_pitch_is_human(eng_plus_silence) -> None:
    noise = np.random.default_rng(1).normal(0, 0.1, 2 * SR).astype(np.float32)
    assert compute_audio_features(load_audio((noise, SR))).voiced.mean() < 0.05
    _, feats = eng_plus_silence
    voiced = feats.voiced[:6000]
    assert 0.2 < voiced.mean() < 0.9
    assert 70.0 < float(np.median(feats.f0[:6000][voiced])) < 300.0
    assert np.all(feats.f0[~feats.voiced] == 0)
    assert not feats.voiced[6020:].any()


def test_mel_peak_follows_tone_frequency() -> None:
    centres = []
    for hz in (300.0, 1000.0, 3000.0):
        feats = compute_audio_features(load_audio((_tone(hz, 1.0), SR)))
        centres.append(int(np.argmax(feats.mel[50])))
    assert centres[0] < centres[1] < centres[2]
    fb = mel_filterbank()
    bin_hz = SR / 2 / (fb.shape[1] - 1)
    assert abs(np.argmax(fb[centres[1]]) * bin_hz - 1000.0) < 100.0


def test_filterbank_is_cached_and_read_only() -> None:
    fb = mel_filterbank()
    assert fb is mel_filterbank()
    assert fb.shape == (N_MELS, 513) and not fb.flags.writeable
    peaks = np.argmax(fb, axis=1)
    assert np.all(np.diff(peaks) > 0) and (fb.max(axis=1) > 0.5).all()  # no duplicate bands


def test_chunk_size_does_not_change_features(eng_plus_silence) -> None:
    audio = load_audio((eng_plus_silence[0].samples[: 7 * SR], SR))
    whole = compute_audio_features(audio, chunk_hops=100000)
    parts = compute_audio_features(audio, chunk_hops=137)
    np.testing.assert_allclose(parts.mel, whole.mel, atol=1e-5)
    np.testing.assert_allclose(parts.energy_db, whole.energy_db, atol=1e-5)
    np.testing.assert_array_equal(parts.voiced, whole.voiced)
    np.testing.assert_allclose(parts.f0, whole.f0, atol=1e-3)


def test_features_refuse_other_sample_rates() -> None:
    audio = load_audio((_tone(200.0), SR), sample_rate=22050)
    with pytest.raises(InputError) as exc:
        compute_audio_features(audio)
    assert "16000" in str(exc.value) and "22050" in str(exc.value)
    assert "load_audio" in exc.value.fix
