"""Every file the add-on writes: the old file or the whole new one, never a half.

Today the add-on writes rendered frames (RGBA PNGs, depth EXRs, ``frame_writer``);
anything it writes later comes here too. The bytes go to a temp file in the target's
own folder (the same file system, so the rename is atomic) and replace the target
only once they are all written. Any failure on the way (disk full, a file-size limit,
a read-only folder, an exception or Ctrl-C in the middle) removes the temp file and
re-raises: the previous file is untouched and nothing half-written is left behind,
so the Sequencer never shows a torn frame and a cached frame is never a broken one.

A Blender that is killed mid-write cannot clean up, so temp names carry the writer's
pid (``.<name>.<pid>-<hex>.tmp``) and the first write into a folder (per process)
removes the ones whose process is gone; a live writer's temp file is never touched.
No fsync: the guarantee is against a failed or killed writer, not a power cut, and a
sync per frame would slow every render.

The backend keeps its own writer (``backend/atomic_file.py``): the add-on zip ships
without the backend.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ..shared.processes import pid_alive

_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
_swept: set[Path] = set()


def temp_name(path: Path) -> Path:
    """A fresh temp file name beside ``path`` (unique per process and call)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove temp files in ``folder`` whose writing process no longer runs."""
    removed = []
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file beside it and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:
        remove_stale_temps(path.parent)
        _swept.add(path.parent)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
