"""Trained voice activity (Silero): our whole-recording layout equals the wheel's own
streamed model, and it tells real speech from music, tones and silence."""

from __future__ import annotations

import numpy as np
import torch

from backend.audio import Audio, compute_audio_features, load_audio
from backend.audio.vad import CHUNK, package_file, speech_probability, voice_activity
from tests.conftest import data_path


def test_whole_recording_pass_equals_the_streamed_wheel_model() -> None:
    """The wheel's TorchScript model, fed chunk by chunk as its authors do, gives the
    same probabilities as our batched encoder + one LSTM pass."""
    x = load_audio(data_path("speech", "eng.wav")).samples[: 4 * 16000]
    ours = speech_probability(x)
    ref_model = torch.jit.load(str(package_file("silero_vad.jit"))).eval()
    ref_model.reset_states()
    ref = []
    with torch.inference_mode():
        for i in range(len(x) // CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(x[i * CHUNK:(i + 1) * CHUNK]))
            ref.append(float(ref_model(chunk[None], 16000)))
    np.testing.assert_allclose(ours[: len(ref)], ref, atol=1e-4)
    assert np.ptp(ref) > 0.5  # it said both "speech" and "not speech" in these 4 s


def test_speech_is_speech_and_music_tones_silence_are_not() -> None:
    from backend.media.decode import read_audio_track

    eng = load_audio(data_path("speech", "eng.wav"))
    assert compute_audio_features(eng).vad.mean() > 0.7
    pcm, rate = read_audio_track(data_path("clips", "d14.mp4"))  # a music bed
    music = load_audio((np.ascontiguousarray(pcm, np.float32), rate))
    assert compute_audio_features(music).vad.mean() < 0.1
    t = np.arange(3 * 16000) / 16000
    for tone in (0.5 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sign(np.sin(2 * np.pi * 330 * t))):
        _, flags = voice_activity(tone.astype(np.float32), 300)
        assert flags.mean() < 0.05
    silent = Audio(np.zeros(16000, np.float32), 16000)
    assert not compute_audio_features(silent).vad.any()


def test_quiet_speech_is_still_speech() -> None:
    """A voice 30 dB down is the same voice: a trained detector must not need loudness."""
    x = load_audio(data_path("speech", "eng.wav")).samples[: 10 * 16000]
    loud = voice_activity(x, 1000)[1]
    quiet = voice_activity(x * 10 ** (-30 / 20), 1000)[1]
    assert (loud == quiet).mean() > 0.9
