"""Write a file so that readers see the old file or the whole new one, never a half.

Everything Facecast writes for the user or for later runs (weights, manifests, tracks,
frames, animations) goes through here: the bytes go to a temp file in the same folder,
which is renamed over the target only when writing succeeded. A failed write (disk
full, read-only folder) removes its temp file and re-raises; the first write into a
folder also removes temp files that a killed Facecast process left there (their names
carry the writer's pid). New files get the usual permissions (0666 minus the umask),
not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    """Remove temp files of dead writers in ``folder`` (once per folder and process)."""
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
        except OSError:
            pass
    return removed
