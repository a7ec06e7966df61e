"""Write a file so that readers see the old file or the whole new one, never a half.

Everything Facecast writes for the user or for later runs (weights, manifests, tracks,
frames, animations) goes through here: the bytes go to a temp file in the same folder,
which is renamed over the target only when writing succeeded. A failed write (disk
full, read-only folder) removes its temp file and re-raises; the first write into a
folder also removes temp files that a killed Facecast process left there (their names
carry the writer's pid). New files get the usual permissions (0666 minus the umask),
not mkstemp's 0600.

Whole output folders (the demo's) are written the same way: ``staged_folder`` gives a
temp folder beside the target and moves its files in only when the run succeeded, so a
failed run leaves no new folder and the earlier outputs as they were. ``check_writable``
names the user's own path (never a temp name) before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from shared.errors import InputError
from shared.processes import pid_alive

#: ``.tmp-<pid>-<hex>`` (this module) or ``.tmp-<8 chars>`` (mkstemp, older releases).
_TEMP_RE = re.compile(r"^\.tmp-(?:(\d+)-[0-9a-f]{12}|[a-z0-9_]{8})(?:\.[A-Za-z0-9]+)?$")
#: Temp files without a pid are removed only when older than this.
_LEGACY_AGE_S = 3600.0
_swept: set[str] = set()
_swept_lock = threading.Lock()


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temp_files(path.parent)
    tmp = path.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}{path.suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0), 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
            except BaseException as exc:
                _close_abandoned_zips(exc)
                raise
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, str(tmp)):
            exc.filename = str(path)  # the user's file, not our temp name
        raise
    return path


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
    stage = final.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
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


def _close_abandoned_zips(exc: BaseException | None) -> None:
    """Close, quietly and while the file is still open, any ZipFile a failed writer left
    open in its frames (``numpy.savez`` does on a full disk): the garbage collector would
    close it later, on a closed file, and print a traceback after the clean error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, zipfile.ZipFile):
                    with contextlib.suppress(Exception):
                        value.close()
            tb = tb.tb_next
        exc = exc.__context__


def sweep_stale_temp_files(folder: Path) -> int:
    """Remove temp files (and staged folders) of dead writers in ``folder`` (once per
    folder and process)."""
    key = str(folder.resolve())
    with _swept_lock:
        if key in _swept:
            return 0
        _swept.add(key)
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None:
            continue
        try:
            if match.group(1) is not None:
                stale = not pid_alive(int(match.group(1)))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
            elif stale and match.group(1) is not None and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        except OSError:
            pass
    return removed
