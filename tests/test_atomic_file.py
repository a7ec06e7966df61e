"""A failed write never replaces the user's file or leaves a temp file behind."""

from __future__ import annotations

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
