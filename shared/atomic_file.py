"""Write a file so that readers see the old file or the whole new one, never a half.

The one atomic writer of Facecast: everything the backend writes for the user or for
later runs (weights, manifests, tracks, frames, animations) and every frame the add-on
writes into the user's project goes through ``write_atomic``. The bytes go to a temp
file in the same folder (the same file system, so the rename is atomic), which is
renamed over the target only when writing succeeded. Any failure on the way (disk
full, a file-size limit, a read-only folder, an exception or Ctrl-C) removes the temp
file and re-raises: the previous file is untouched and nothing half-written is left.

A killed process cannot clean up, so temp names carry the writer's pid and the first
write into a folder (per process) removes the temp files of processes that are gone;
a live writer's temp file is never touched. New files get the usual permissions (0666
minus the umask), not mkstemp's 0600. No fsync: the guarantee is against a failed or
killed writer, not a power cut, and a sync per frame would slow every render.

Standard library only: the add-on zip vendors ``shared/`` (``backend/atomic_file.py``
adds the backend's output-folder checks and staged folders on top).
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
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .processes import pid_alive

#: ``.tmp-<pid>-<hex>`` (this module) or ``.tmp-<8 chars>`` (mkstemp, older releases).
_TEMP_RE = re.compile(r"^\.tmp-(?:(\d+)-[0-9a-f]{12}|[a-z0-9_]{8})(?:\.[A-Za-z0-9]+)?$")
#: Temp files without a pid are removed only when older than this.
_LEGACY_AGE_S = 3600.0
_swept: set[str] = set()
_swept_lock = threading.Lock()


def temp_name(path: Path) -> Path:
    """A fresh temp name beside ``path`` (or for a staged folder): unique per call, with
    this process's pid so that a later process knows whether its writer is gone."""
    return path.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}{path.suffix}"


def write_atomic(path: str | Path, write: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``write`` (bytes, or a function called with the open file) to a temp file
    beside ``path``, then rename it to ``path``."""
    if isinstance(write, (bytes, bytearray, memoryview)):
        data = write

        def write(f: BinaryIO) -> None:
            f.write(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temp_files(path.parent)
    tmp = temp_name(path)
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
