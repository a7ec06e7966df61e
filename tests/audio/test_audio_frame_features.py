"""Per-video-frame features: windows, offsets, ranges beyond the audio and chunking."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from backend.audio import (
    compute_audio_features,
    compute_frame_features,
    iter_frame_feature_chunks,
    load_audio,
    offset_for_strip,
    parse_fps,
)
from backend.audio.features import DB_FLOOR, MEL_SILENCE, N_MELS
from shared.errors import InputError

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
SR = 16000
FPS = ["23.976", "24", "25", "29.97", "30", "50", "60"]


@pytest.fixture(scope="module")
def eng():
    path = SPEECH / "eng.wav"
    if not path.exists():
        pytest.skip(f"real speech {path} is absent (../shared/data is only on dev/CI machines)")
    audio = load_audio(path)
    return audio, compute_audio_features(audio)


@pytest.mark.parametrize("fps", FPS)
def test_one_frame_per_video_frame_with_centred_windows(eng, fps: str) -> None:
    audio, feats = eng
    ff = compute_frame_features(audio, fps, context_hops=8, features=feats)
    exact = parse_fps(fps)
    assert ff.fps == exact and ff.n_frames == int(np.ceil(60 * exact))  # 60 s of audio
    assert ff.mel.shape == (ff.n_frames, 17, N_MELS) and ff.mel.dtype == np.float32
    np.testing.assert_allclose(ff.frame_times, (np.arange(ff.n_frames) + 0.5) / float(exact))
    # The window's middle hop is the hop nearest the frame centre (hop i = i/100 s, ties up).
    centre = np.array([int((Fraction(2 * k + 1, 2) / exact * 100 + Fraction(1, 2)) // 1)
                       for k in range(ff.n_frames)])
    assert np.all(np.abs(centre - ff.frame_times * 100) <= 0.5 + 1e-9)
    inside = centre < feats.n_hops
    np.testing.assert_array_equal(ff.mel[inside, 8], feats.mel[centre[inside]])
    np.testing.assert_array_equal(ff.energy_db[inside], feats.energy_db[centre[inside]])
    np.testing.assert_array_equal(ff.vad[inside], feats.vad[centre[inside]])
    assert ff.vad.mean() > 0.6


@pytest.mark.parametrize("fps", FPS)
def test_start_offset_of_whole_frames_shifts_features_by_frames(eng, fps: str) -> None:
    audio, feats = eng
    exact = parse_fps(fps)
    base = compute_frame_features(audio, fps, features=feats)
    later = compute_frame_features(audio, fps, start_offset=Fraction(10) / exact, features=feats)
    assert later.n_frames == base.n_frames - 10
    np.testing.assert_array_equal(later.mel, base.mel[10:])
    np.testing.assert_array_equal(later.f0, base.f0[10:])
    # Sound strip starting 5 frames after the first animated frame: 5 frames of silence first.
    early = compute_frame_features(audio, fps, first_frame=1, features=feats,
                                   start_offset=offset_for_strip(6, 1, exact))
    assert early.frame_numbers[0] == 1 and early.n_frames == base.n_frames + 5
    assert np.all(early.energy_db[:5] == DB_FLOOR) and not early.vad[:5].any()
    np.testing.assert_array_equal(early.mel[5:], base.mel)
    np.testing.assert_array_equal(early.voiced[5:], base.voiced)


def test_fractional_offset_moves_windows_by_exact_hops(eng) -> None:
    audio, feats = eng
    # 25 fps: frame k is centred on hop 4k+2; +0.25 s moves it to hop 4k+27.
    ff = compute_frame_features(audio, 25, start_offset=0.25, n_frames=200, features=feats,
                                context_hops=16)
    for k in (0, 17, 199):
        c = 4 * k + 27
        np.testing.assert_array_equal(ff.mel[k], feats.mel[c - 16:c + 17])


def test_frames_past_the_audio_are_silence_not_errors(eng) -> None:
    audio, feats = eng
    # The sound strip starts at frame 0; frames 1790..1830 are animated.
    ff = compute_frame_features(audio, 30, first_frame=1790, last_frame=1830, features=feats,
                                start_offset=offset_for_strip(0, 1790, 30))
    assert ff.frame_numbers.tolist() == list(range(1790, 1831))
    after = ff.frame_numbers >= 1800  # frame 1800 starts exactly where the 60 s audio ends
    assert np.all(ff.energy_db[after] == DB_FLOOR) and np.all(ff.energy_db[~after] > DB_FLOOR)
    assert not ff.vad[after].any() and not ff.voiced[after].any() and not ff.f0[after].any()
    # Windows reach 16 hops (~5 frames) back: from frame 1806 on they hold no audio at all.
    np.testing.assert_array_equal(ff.mel[ff.frame_numbers >= 1806], np.float32(MEL_SILENCE))
    edge = ff.mel[ff.frame_numbers == 1802][0]  # centre 60.083 s = hop 6008: hops 5992..5999
    assert not np.all(edge[:8] == np.float32(MEL_SILENCE), axis=1).any()  # are audio,
    np.testing.assert_array_equal(edge[8:], np.float32(MEL_SILENCE))  # the rest silence
    way_before = compute_frame_features(audio, 30, start_offset=-100, n_frames=3, features=feats)
    np.testing.assert_array_equal(way_before.mel, np.float32(MEL_SILENCE))


@pytest.mark.parametrize("fps", ["29.97", "60"])
def test_chunked_iteration_equals_one_shot(eng, fps: str) -> None:
    audio, feats = eng
    kwargs = {"first_frame": 3, "start_offset": -0.37, "context_hops": 12, "features": feats}
    whole = compute_frame_features(audio, fps, n_frames=1000, **kwargs)
    chunks = list(iter_frame_feature_chunks(audio, fps, n_frames=1000, chunk_frames=97, **kwargs))
    assert [c.n_frames for c in chunks] == [97] * 10 + [30]
    for name in ("mel", "energy_db", "f0", "voiced", "vad", "frame_numbers", "frame_times"):
        joined = np.concatenate([getattr(c, name) for c in chunks])
        np.testing.assert_array_equal(joined, getattr(whole, name), err_msg=name)


def test_ten_minutes_at_60fps_streams_in_bounded_memory(eng) -> None:
    audio, _ = eng
    long = load_audio((np.tile(audio.samples, 10), SR))
    tracemalloc.start()
    try:
        frames = 0
        for chunk in iter_frame_feature_chunks(long, 60, chunk_frames=600):
            assert chunk.mel.shape[0] <= 600
            frames += chunk.n_frames
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames == 36000
    all_windows = 36000 * 33 * N_MELS * 4  # what a one-shot call would hold: ~380 MB
    assert peak < all_windows / 3


def test_bad_arguments_name_the_problem(eng) -> None:
    audio, feats = eng
    for fps in (0, -1, float("nan")):
        with pytest.raises(InputError, match="Frame rate"):
            compute_frame_features(audio, fps, features=feats)
    with pytest.raises(InputError, match="context_hops"):
        compute_frame_features(audio, 25, context_hops=-1, features=feats)
    with pytest.raises(InputError, match="chunk_frames"):
        next(iter_frame_feature_chunks(audio, 25, chunk_frames=0, features=feats))
    with pytest.raises(InputError, match="only one"):
        compute_frame_features(audio, 25, n_frames=3, last_frame=9, features=feats)
    with pytest.raises(InputError, match="backwards"):
        compute_frame_features(audio, 25, first_frame=10, last_frame=5, features=feats)
    with pytest.raises(InputError, match="n_frames"):
        compute_frame_features(audio, 25, n_frames=-2, features=feats)
    empty = compute_frame_features(audio, 25, first_frame=10, last_frame=9, features=feats)
    assert empty.n_frames == 0 and empty.mel.shape == (0, 33, N_MELS)


def test_features_of_other_audio_are_refused(eng) -> None:
    audio, feats = eng
    shorter = load_audio((audio.samples[: 30 * SR], SR))
    with pytest.raises(InputError, match="Precomputed features"):
        compute_frame_features(shorter, 25, features=feats)
