"""A gateway's processes die with it: the reaper watches a real process tree (no Ray
needed), like a private Ray runtime's, whose members ignore SIGTERM as Ray's agents do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.protocol_helpers import wait_for

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

STUBBORN = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if sys.argv[1] == 'parent':\n"
            "    child = subprocess.Popen([sys.executable, '-c', sys.argv[2], 'leaf', ''])\n"
            "    print(child.pid, flush=True)\n"
            "time.sleep(120)\n")

GATEWAY = ("import subprocess, sys, time\n"
           "from backend.cluster import reaper\n"
           "watcher = reaper.start()\n"
           "mid = subprocess.Popen([sys.executable, '-c', sys.argv[1], 'parent', sys.argv[1]],"
           " stdout=subprocess.PIPE, text=True)\n"
           "leaf = mid.stdout.readline().strip()\n"
           "print(mid.pid, leaf, watcher.pid, flush=True)\n"
           "if sys.argv[2] == 'clean':\n"
           "    reaper.goodbye(watcher)\n"
           "    print('bye', flush=True)\n"
           "time.sleep(120)\n")


def _running(pid: int) -> bool:
    from backend.cluster.reaper import _stat_fields

    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _gateway(mode: str) -> tuple[subprocess.Popen, list[int]]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", GATEWAY, STUBBORN, mode], cwd=root,
                            stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 3, pids
    return proc, pids


def test_a_gateway_killed_with_sigkill_takes_its_processes_with_it() -> None:
    gateway, (mid, leaf, watcher) = _gateway("dirty")
    try:
        os.kill(mid, signal.SIGTERM)  # ignored, as Ray's agents ignore it
        time.sleep(1.5)  # the watcher's snapshot sees the tree
        assert _running(mid) and _running(leaf)
        gateway.kill()
        gateway.wait(5)
        assert wait_for(lambda: not _running(mid) and not _running(leaf), timeout_s=10)
        assert wait_for(lambda: not _running(watcher), timeout_s=5)
    finally:
        for pid in (mid, leaf):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_clean_goodbye_kills_nothing() -> None:
    gateway, (mid, leaf, watcher) = _gateway("clean")
    try:
        assert gateway.stdout.readline().strip() == "bye"
        assert wait_for(lambda: not _running(watcher), timeout_s=5)
        gateway.kill()
        gateway.wait(5)
        time.sleep(1.0)
        assert _running(mid) and _running(leaf)
    finally:
        for pid in (mid, leaf):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
