"""The tracking cache: content-keyed, env-overridable, safe against bad entries."""

from __future__ import annotations

import shutil
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from backend.cache_root import CACHE_ENV
from backend.tracking import cache
from shared.errors import InputError
from tests.conftest import data_path


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "tracks"


def test_cached_result_is_reused_by_content(cache_root: Path, tmp_path: Path):
    src = data_path("clips", "d12.mp4")
    assert cache.default_cache_dir() == cache_root
    first = cache.track_clip(src, max_frames=12, stride=2)
    entries = list(cache_root.glob("*.npz"))
    assert len(entries) == 1
    assert first.found.all() and first.landmarks.shape == (12, 478, 3)
    assert first.fps == Fraction(25) and list(first.frame_index[:3]) == [0, 2, 4]

    copy = tmp_path / "renamed.mp4"  # same bytes, other name: still a hit
    shutil.copyfile(src, copy)
    start = time.perf_counter()
    again = cache.track_clip(copy, max_frames=12, stride=2)
    assert time.perf_counter() - start < 0.5
    assert np.array_equal(again.landmarks, first.landmarks, equal_nan=True)
    assert again.fps == first.fps and again.source_size == (512, 512)
    assert len(list(cache_root.glob("*.npz"))) == 2  # stored under the new stem too

    cache.track_clip(src, max_frames=12, stride=3)  # other sampling: another entry
    assert len(list(cache_root.glob("*.npz"))) == 3


def test_damaged_entry_is_retracked(cache_root: Path):
    src = data_path("clips", "d12.mp4")
    first = cache.track_clip(src, max_frames=5)
    (entry,) = cache_root.glob("*.npz")
    entry.write_bytes(b"not an npz")
    again = cache.track_clip(src, max_frames=5)
    assert np.allclose(again.landmarks, first.landmarks)
    assert np.load(entry)["landmarks"].shape == (5, 478, 3)  # rewritten


def test_missing_clip_is_input_error(cache_root: Path, tmp_path: Path):
    with pytest.raises(InputError):
        cache.track_clip(tmp_path / "absent.mp4")


def test_undecodable_clip_is_input_error(cache_root: Path, zeroed_clip: Path):
    with pytest.raises(InputError):
        cache.track_clip(zeroed_clip)
    assert not list(cache_root.glob("*.npz"))  # nothing cached for a failure
