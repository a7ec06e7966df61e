"""load_audio: real files, exact resampling, downmixing and every bad-input message."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from backend.audio import Audio, load_audio
from shared.errors import InputError

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"


def speech_file(name: str) -> Path:
    path = SPEECH / name
    if not path.exists():
        pytest.skip(f"real speech {path} is absent (../shared/data is only on dev/CI machines)")
    return path


def test_eng_wav_loads_as_mono_float32_16k() -> None:
    audio = load_audio(speech_file("eng.wav"))
    info = sf.info(str(speech_file("eng.wav")))
    assert isinstance(audio, Audio)
    assert audio.sample_rate == 16000
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.n_samples == info.frames
    assert audio.duration == pytest.approx(info.frames / info.samplerate)
    assert audio.source.endswith("eng.wav")
    with pytest.raises(ValueError):
        audio.samples[0] = 1.0  # read-only: features computed from it cannot go stale


def test_resampling_44k1_to_16k_preserves_duration_to_the_sample() -> None:
    path = speech_file("sun.wav")
    raw, rate = sf.read(str(path), dtype="float32")
    assert rate == 44100
    audio = load_audio(path)
    assert audio.n_samples == math.ceil(len(raw) * 16000 / 44100)
    assert abs(audio.n_samples / 16000 - len(raw) / 44100) < 1 / 16000
    # Speech energy survives (it lies below the new 8 kHz Nyquist almost entirely).
    rms_in = float(np.sqrt(np.mean(raw.astype(np.float64) ** 2)))
    rms_out = float(np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)))
    assert rms_out == pytest.approx(rms_in, rel=0.05)


def test_resampling_keeps_frequency_and_alignment() -> None:
    rate = 44100
    t = np.arange(rate * 3) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    audio = load_audio((tone, rate))
    assert audio.n_samples == math.ceil(len(tone) * 16000 / rate)
    expected = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(audio.n_samples) / 16000)
    middle = slice(1000, audio.n_samples - 1000)  # filter edges aside
    assert np.max(np.abs(audio.samples[middle] - expected[middle])) < 0.01


def test_stereo_file_is_downmixed_to_the_channel_mean(tmp_path: Path) -> None:
    mono = load_audio(speech_file("eng.wav")).samples[: 16000 * 5]
    stereo = np.stack([mono, -0.5 * mono], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), stereo, 16000, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.n_samples == len(mono)
    np.testing.assert_allclose(audio.samples, 0.25 * mono, atol=1e-6)


def test_channels_first_and_int16_arrays_are_accepted() -> None:
    mono = load_audio(speech_file("eng.wav")).samples[:16000]
    pcm = np.round(mono * 32767).astype(np.int16)
    from_int = load_audio((pcm, 16000))
    np.testing.assert_allclose(from_int.samples, mono, atol=2 / 32767)
    both = load_audio((np.stack([mono, mono]), 16000))  # [channels, n], as torch writes it
    np.testing.assert_allclose(both.samples, mono, atol=1e-7)


def test_other_target_rates_work() -> None:
    audio = load_audio(speech_file("eng.wav"), sample_rate=22050)
    assert audio.sample_rate == 22050
    assert audio.n_samples == math.ceil(960000 * 22050 / 16000)


def _assert_input_error(exc: pytest.ExceptionInfo[InputError], *words: str) -> None:
    message = str(exc.value).lower()
    for word in words:
        assert word.lower() in message, f"{word!r} not in {message!r}"
    assert exc.value.fix, "every error must say what to do"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load_audio(tmp_path / "nope.wav")
    _assert_input_error(exc, "not found", "nope.wav")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load_audio(tmp_path)
    _assert_input_error(exc, "folder")


def test_corrupt_file_mentions_formats_and_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio at all" * 10)
    with pytest.raises(InputError) as exc:
        load_audio(path)
    _assert_input_error(exc, "broken.wav", "corrupt", "WAV, FLAC", "ffmpeg")


def test_empty_file_and_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError) as exc:
        load_audio(path)
    _assert_input_error(exc, "empty", "0 samples")
    with pytest.raises(InputError) as exc:
        load_audio((np.zeros(0, np.float32), 16000))
    _assert_input_error(exc, "empty")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad: float, tmp_path: Path) -> None:
    samples = load_audio(speech_file("eng.wav")).samples[:16000].copy()
    samples[8000] = bad
    with pytest.raises(InputError) as exc:
        load_audio((samples, 16000))
    _assert_input_error(exc, "NaN/infinite", "0.500 s")
    path = tmp_path / "nan.wav"
    sf.write(str(path), samples, 16000, subtype="FLOAT")
    with pytest.raises(InputError) as exc:
        load_audio(path)
    _assert_input_error(exc, "NaN/infinite", "nan.wav")


def test_silent_audio() -> None:
    with pytest.raises(InputError) as exc:
        load_audio((np.zeros(16000, np.float32), 16000))
    _assert_input_error(exc, "silent", "-inf dBFS")
    faint = load_audio(speech_file("eng.wav")).samples * np.float32(1e-4)
    with pytest.raises(InputError) as exc:
        load_audio((faint, 16000))
    _assert_input_error(exc, "silent")


def test_too_long_names_limit_and_fixes() -> None:
    with pytest.raises(InputError) as exc:
        load_audio(speech_file("eng.wav"), max_seconds=10)
    _assert_input_error(exc, "60.0 s", "limit of 10 s", "split", "max_seconds")
    with pytest.raises(InputError) as exc:
        load_audio((np.ones(32000, np.float32) * 0.1, 16000), max_seconds=1.5)
    _assert_input_error(exc, "limit of 1.5 s")


@pytest.mark.parametrize("rate", [0, -1, float("nan"), 44.1, 10**9, "16000", True])
def test_bad_sample_rates(rate: object) -> None:
    samples = np.ones(1000, np.float32) * 0.1
    with pytest.raises(InputError) as exc:
        load_audio((samples, rate))
    _assert_input_error(exc, "sample rate")
    with pytest.raises(InputError) as exc:
        load_audio((samples, 16000), sample_rate=rate)
    _assert_input_error(exc, "sample rate")


def test_bad_source_types() -> None:
    with pytest.raises(InputError) as exc:
        load_audio(12345)  # type: ignore[arg-type]
    _assert_input_error(exc, "unsupported audio source")
    with pytest.raises(InputError) as exc:
        load_audio((np.ones((2, 2, 2), np.float32), 16000))
    _assert_input_error(exc, "1-D or 2-D")
    with pytest.raises(InputError) as exc:
        load_audio((np.array(["a", "b"]), 16000))
    _assert_input_error(exc, "unsupported type")
    with pytest.raises(InputError) as exc:
        load_audio((np.ones(10), 16000), max_seconds=0)
    _assert_input_error(exc, "max_seconds")


def test_loaded_audio_does_not_alias_the_callers_array() -> None:
    original = load_audio(speech_file("eng.wav")).samples[:16000].copy()
    samples = original.copy()
    audio = load_audio((samples, 16000))
    samples[:] = 0.0  # the caller reuses its buffer
    assert samples.flags.writeable
    np.testing.assert_array_equal(audio.samples, original)


def test_audio_rejects_non_canonical_samples() -> None:
    with pytest.raises(InputError, match="1-D float32"):
        Audio(np.zeros((10, 2), np.float32), 16000)
    with pytest.raises(InputError, match="1-D float32"):
        Audio(np.zeros(10), 16000)
