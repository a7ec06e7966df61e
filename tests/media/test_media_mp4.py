"""MP4 writing: real H.264 + AAC read back with the project's own decoder."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from backend.media.decode import probe_video, read_audio_track, read_video
from backend.media.mp4 import write_mp4
from shared.errors import InputError


def _frames(n: int, h: int = 64, w: int = 96):
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i * 3) % w] = (200, 40, 40)  # a bar that grows: frames differ
        yield img


def test_video_and_sound_round_trip(tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    n = 60
    sr = 16000
    t = np.arange(int(sr * n / float(fps))) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = write_mp4(tmp_path / "clip.mp4", _frames(n), fps, tone, sr)
    info = probe_video(out)
    assert info.fps == fps
    video = read_video(out)
    assert video.frames.shape == (n, 64, 96, 3)
    assert video.frames[-1, 10, 40, 0] > 150 > video.frames[0, 10, 40, 0]
    audio, rate = read_audio_track(out, sample_rate=sr)
    assert abs(len(audio) / rate - n / float(fps)) < 0.1
    assert 0.15 < np.sqrt(np.mean(audio[2000:-2000] ** 2)) < 0.3
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_frames_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="odd"):
        write_mp4(tmp_path / "a.mp4", [np.zeros((63, 64, 3), np.uint8)], 24)
    with pytest.raises(InputError, match="RGB uint8"):
        write_mp4(tmp_path / "b.mp4", [np.zeros((64, 64), np.float32)], 24)
    with pytest.raises(InputError, match="no frames"):
        write_mp4(tmp_path / "c.mp4", [], 24)
    assert list(tmp_path.iterdir()) == []
