"""Ray's processes die with the gateway that started them.

A private Ray runtime (``--cluster local``, or ``auto`` without a cluster) is a tree of
processes under the gateway: GCS, raylet, monitors and, under the raylet, the dashboard
and runtime-env agents and the actors. A gateway killed with SIGKILL cannot stop them;
Ray's fate sharing ends most, but its agents (re-parented to init, memory held) ignore
SIGTERM and stay for good. So the gateway starts this small watcher, connected by a
pipe: every second it notes the gateway's descendants (pid and start time, so a reused
pid is never hit); when the pipe closes without a goodbye — the gateway died — it
SIGKILLs those still running and exits. A clean shutdown says goodbye first.

Linux only (it reads ``/proc``); elsewhere :func:`start` returns None.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")
SNAPSHOT_S = 1.0
GOODBYE = b"bye\n"


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat: start time in ticks


def descendants(pid: int) -> dict[int, int]:
    """Every process under ``pid``, with its start time."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in PROC.glob("[0-9]*"):
        fields = _stat_fields(entry.name)
        if fields:
            children.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[19])))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), []):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def start() -> subprocess.Popen | None:
    """Start the watcher of this process's descendants; None where there is no /proc."""
    if not sys.platform.startswith("linux") or not PROC.is_dir():
        return None
    return subprocess.Popen([sys.executable, "-m", "backend.cluster.reaper", str(os.getpid())],
                            stdin=subprocess.PIPE, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def goodbye(watcher: subprocess.Popen | None) -> None:
    """A clean shutdown: the watcher exits without killing anything."""
    if watcher is None or watcher.stdin is None:
        return
    try:
        watcher.stdin.write(GOODBYE)
        watcher.stdin.close()
    except OSError:
        pass
    try:
        watcher.wait(5)
    except subprocess.TimeoutExpired:
        watcher.kill()


def watch(gateway: int) -> int:
    """Snapshot ``gateway``'s descendants until stdin closes; kill them if it died.
    Returns how many were killed."""
    me = os.getpid()
    snapshot: dict[int, int] = {}
    received = b""
    while True:
        readable, _, _ = select.select([0], [], [], SNAPSHOT_S)
        if readable:
            data = os.read(0, 64)
            received += data
            if GOODBYE in received:
                return 0
            if not data:
                break  # the gateway is gone without a goodbye
            continue
        snapshot = {p: t for p, t in descendants(gateway).items() if p != me}
    killed = 0
    for pid, started in snapshot.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the gateway
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so is a SIGTERM to the group
    watch(int(sys.argv[1]))
