"""A failed write never replaces the user's file or leaves a temp file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.atomic_file import write_atomic


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "weights.pt"
    write_atomic(target, lambda f: f.write(b"old"))
    assert target.read_bytes() == b"old"

    def broken(f) -> None:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["weights.pt"]
    write_atomic(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"


def test_a_full_disk_is_one_clean_error_without_a_late_traceback(tmp_path, monkeypatch) -> None:
    """numpy.savez on a full disk (/dev/full) leaves its ZipFile open; closed later by
    the garbage collector on our closed file, it printed a traceback after the error."""
    import gc
    import sys

    import numpy as np

    from backend import atomic_file

    def full_disk(fd, *args, **kwargs):
        os.close(fd)
        return open("/dev/full", "wb")  # write_atomic closes it

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(atomic_file.os, "fdopen", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_file.write_atomic(tmp_path / "anim.npz", lambda f: np.savez_compressed(
            f, a=np.random.default_rng(0).random(100_000)))
    gc.collect()
    assert unraisable == []
    assert list(tmp_path.iterdir()) == []
