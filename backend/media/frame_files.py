"""The files of a rendered sequence, as ``facecast render`` writes them: ``NNNNNN.png``
(RGBA) and ``depth/NNNNNN.exr`` (float metres, ``shared.depth_exr``) — the add-on's
layout too, so a compositor setup reads either.

Rendering into a folder that already holds a sequence overwrites the frames it renders
and nothing else, so a shorter render leaves the earlier run's tail beside it: an image
sequence that a compositor (or the demo's .blend) would read as one. ``stale_frames``
finds them, so the caller can remove what it owns (the demo's own folder) or say so
(``facecast render`` into the user's folder).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from backend.atomic_file import write_atomic
from shared.depth_exr import DEPTH_DIRNAME, DEPTH_SUFFIX, depth_metres, encode_depth_exr


def depth_file(folder: Path, frame: int) -> Path:
    """Where frame ``frame``'s depth goes: ``<folder>/depth/NNNNNN.exr``."""
    return folder / DEPTH_DIRNAME / f"{frame:06d}{DEPTH_SUFFIX}"


def write_depth(folder: Path, frame: int, depth: np.ndarray, units: str | None = None) -> Path:
    """Write a frame's depth (``uint16`` mm with 0 = none, or float metres) as metres."""
    path = depth_file(folder, frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_depth_exr(depth_metres(depth, units))
    write_atomic(path, lambda f: f.write(data))
    return path


def stale_frames(folder: Path, first: int, last: int, prefix: str = "",
                 suffix: str = ".png") -> list[Path]:
    """``{prefix}NNNNNN{suffix}`` files in ``folder`` numbered outside ``first..last``."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d{{6}}){re.escape(suffix)}")
    out = []
    for path in sorted(folder.glob(f"{prefix}[0-9]*{suffix}")):
        m = pattern.fullmatch(path.name)
        if m and not first <= int(m.group(1)) <= last:
            out.append(path)
    return out


def stale_sequence(folder: Path, first: int, last: int) -> list[Path]:
    """Frames and depth files of an earlier render outside ``first..last``."""
    return (stale_frames(folder, first, last)
            + stale_frames(folder / DEPTH_DIRNAME, first, last, suffix=DEPTH_SUFFIX))
