"""The backend's outputs: files through the one atomic writer (``shared.atomic_file``:
the old file or the whole new one, never a half), whole folders staged, paths checked.

Whole output folders (the demo's) are written the same way: ``staged_folder`` gives a
temp folder beside the target and moves its files in only when the run succeeded, so a
failed run leaves no new folder and the earlier outputs as they were. ``check_writable``
names the user's own path (never a temp name) before any work starts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.atomic_file import sweep_stale_temp_files, temp_name, write_atomic
from shared.errors import InputError

__all__ = ["check_writable", "staged_folder", "sweep_stale_temp_files", "write_atomic"]


def check_writable(path: str | Path, what: str = "output", folder: bool = False) -> Path:
    """Refuse, naming ``path``, an output that cannot be written: its folder (or the
    nearest one that exists) is a file, read-only or not ours to write; ``path`` itself
    is a folder where a file is meant (or a file where a ``folder`` is meant), or a
    read-only file. Nothing is created."""
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder", "choose a folder name")
    if not folder and path.is_dir():
        raise InputError(f"{what} {path} is a folder", "give a file name inside it")
    if path.is_file() and not os.access(path, os.W_OK):
        raise InputError(f"{what} {path} is a read-only file",
                         "choose another name, or make the file writable")
    return _check_folder(path, path if folder and path.is_dir() else path.parent, what)


def _check_folder(path: Path, folder: Path, what: str) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {what} {path}: {folder} is a file, not a folder",
                         "choose a path inside a folder")
    if _read_only(folder):
        raise InputError(f"cannot write {what} {path}: {folder} is on a read-only file "
                         "system", "write to another folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {path}: permission denied for {folder}",
                         "choose a folder you can write, or fix its permissions")
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): os.access decides
        return False


@contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success move what was written there
    into ``final`` (file by file, replacing same-named files, keeping the user's
    others), on failure remove it. ``final`` is created only on success."""
    final = check_writable(Path(final), "output folder", folder=True)
    _check_folder(final, final.parent, "output folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temp_files(final.parent)
    stage = temp_name(final.with_suffix(""))
    stage.mkdir()
    try:
        yield stage
        _merge(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _merge(src: Path, dst: Path) -> None:
    dst.mkdir(exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if target.exists() and not target.is_dir():
                target.unlink()
            _merge(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
