"""Whether a process still runs: used to reclaim files a killed process left behind."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if ``pid`` names a running process (or one we may not signal)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists but belongs to someone else (or we cannot tell)
    return True
