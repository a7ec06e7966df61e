"""Numbered frame files (``NNNNNN.png``, ``depth_NNNNNN.png``) left in an output folder
by an earlier, longer render.

Rendering into a folder that already holds a sequence overwrites the frames it renders
and nothing else, so a shorter render leaves the earlier run's tail beside it: an image
sequence that a compositor (or the demo's .blend) would read as one. ``stale_frames``
finds them, so the caller can remove what it owns (the demo's own folder) or say so
(``facecast render`` into the user's folder).
"""

from __future__ import annotations

import re
from pathlib import Path


def stale_frames(folder: Path, first: int, last: int, prefix: str = "") -> list[Path]:
    """``{prefix}NNNNNN.png`` files in ``folder`` numbered outside ``first..last``."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d{{6}})\.png")
    out = []
    for path in sorted(folder.glob(f"{prefix}[0-9]*.png")):
        m = pattern.fullmatch(path.name)
        if m and not first <= int(m.group(1)) <= last:
            out.append(path)
    return out
