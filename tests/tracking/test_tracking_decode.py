"""Video decoding on real clips: timing, size, audio track, and bad files."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from backend.media.decode import probe_video, read_audio_track, read_video
from shared.errors import InputError
from tests.conftest import data_path


def test_d12_frames_fps_and_size():
    video = read_video(data_path("clips", "d12.mp4"))
    assert video.fps == Fraction(25) and isinstance(video.fps, Fraction)
    assert video.frames.shape == (183, 512, 512, 3) and video.frames.dtype == np.uint8
    assert video.duration == pytest.approx(7.32, abs=0.02)
    assert np.array_equal(video.frame_index, np.arange(183))
    # Real picture content, not a blank decode: frames differ and have contrast.
    assert video.frames[0].std() > 20
    assert np.abs(video.frames[0].astype(int) - video.frames[100]).mean() > 1


def test_sampling_options_keep_exact_times():
    path = data_path("clips", "sun.mp4")  # 576x768, not square
    video = read_video(path, max_frames=4, stride=5, max_side=256)
    assert video.frames.shape == (4, 256, 192, 3)
    assert video.source_size == (576, 768)
    assert list(video.frame_index) == [0, 5, 10, 15]
    assert np.allclose(video.times, [0, 0.2, 0.4, 0.6])


def test_d12_audio_track_matches_video_duration():
    path = data_path("clips", "d12.mp4")
    samples, rate = read_audio_track(path, sample_rate=16000)
    assert rate == 16000 and samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / rate == pytest.approx(probe_video(path).duration, abs=0.05)
    assert np.sqrt(np.mean(samples**2)) > 0.01  # real sound, not decoded silence


def test_clip_without_audio_gives_none():
    assert probe_video(data_path("clips", "sun.mp4")).has_audio is False
    assert read_audio_track(data_path("clips", "sun.mp4")) is None


def test_missing_file_names_problem_and_fix(tmp_path: Path):
    with pytest.raises(InputError) as err:
        read_video(tmp_path / "nope.mp4")
    assert "not found" in err.value.problem and err.value.fix


def test_garbage_file_is_input_error(tmp_path: Path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(InputError):
        read_video(bad)
    with pytest.raises(InputError):
        read_audio_track(bad)


def test_corrupt_video_data_is_input_error(zeroed_clip: Path):
    with pytest.raises(InputError):
        read_video(zeroed_clip)


def test_audio_only_file_has_no_video_stream(tmp_path: Path):
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, np.int16).tobytes())
    with pytest.raises(InputError) as err:
        read_video(wav)
    assert "no video stream" in err.value.problem


def test_empty_container_is_input_error(tmp_path: Path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(InputError):
        read_video(path)


def test_bad_sampling_arguments():
    path = data_path("clips", "d12.mp4")
    with pytest.raises(InputError):
        read_video(path, stride=0)
    with pytest.raises(InputError):
        read_video(path, max_frames=0)


def test_clip_too_big_for_memory_is_refused_before_decoding(monkeypatch):
    import backend.media.decode as decode

    monkeypatch.setattr(decode, "MAX_DECODED_BYTES", 100 * 512 * 512 * 3)
    path = data_path("clips", "d12.mp4")
    with pytest.raises(InputError) as err:
        read_video(path)
    assert "too long" in err.value.problem and "iter_frames" in err.value.fix
    assert read_video(path, stride=2).frames.shape[0] == 92  # the advised fix works
