"""Where Facecast keeps what it can rebuild (face tracks, compiled CPU kernels):
``$FACECAST_CACHE`` when set, else ``~/.cache/facecast``; each user of it a subfolder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FACECAST_CACHE"


def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "facecast"
