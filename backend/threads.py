"""How many CPU threads torch uses for rendering and training (``--threads``).

Default: the CPUs this process may run on (its affinity mask, so a container's or
``taskset``'s limit counts) that other processes are not keeping busy when it starts, at
most ``MAX_DEFAULT`` (the renderer's ops are small: beyond ~8 threads the
synchronisation costs more than it gains). Why the busy ones are left out: every torch
op waits for all its threads, and a thread whose core another process holds runs only
when the scheduler gives it a slice, so beside one busy neighbour on 2 CPUs a frame
renders several times slower with 2 threads than with 1 (docs/ENGINE.md). "Busy" is
measured from ``/proc/stat`` over a tenth of a second; a later change of load is not
followed (pass ``--threads``).
"""

from __future__ import annotations

import os
import sys
import time

from shared.errors import InputError

MAX_DEFAULT = 8


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU (total, idle) jiffies from /proc/stat; {} where it cannot be read."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *vals = line.split()
                if name.startswith("cpu") and name != "cpu" and len(vals) >= 5:
                    v = [int(x) for x in vals[:8]]
                    out[int(name[3:])] = (sum(v), v[3] + v[4])  # idle + iowait
    except (OSError, ValueError):
        return {}
    return out


def busy_cpus(window: float = 0.1) -> float:
    """How many of this process's CPUs other processes keep busy, measured over ``window``
    seconds (this process sleeps meanwhile); 0 where /proc/stat is unavailable."""
    try:
        mine = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        mine = None
    a = _cpu_times()
    if not a:
        return 0.0
    time.sleep(window)
    b = _cpu_times()
    busy = 0.0
    for cpu, (tot, idle) in b.items():
        if (mine is None or cpu in mine) and cpu in a:
            dt = tot - a[cpu][0]
            if dt > 0:
                busy += 1.0 - (idle - a[cpu][1]) / dt
    return max(0.0, busy)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set (how a parent, e.g. ``facecast demo --threads``, hands
    its choice to a backend child), else the available CPUs that other processes are not
    keeping busy (at least 1), at most ``MAX_DEFAULT``."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = available_cpus()
    free = max(1, cpus - int(busy_cpus() + 0.5))
    return min(MAX_DEFAULT, free)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: ``default_threads()``); returns the count.
    InputError for a count below 1."""
    if threads is not None and threads < 1:
        raise InputError(f"--threads {threads} is not a thread count",
                         "pass 1 or more (default: the CPUs this process may use)")
    import torch

    n = default_threads() if threads is None else int(threads)
    cpus = available_cpus()
    if threads is None and n < min(MAX_DEFAULT, cpus) and not os.environ.get(
            "OMP_NUM_THREADS", "").isdigit():
        print(f"facecast: {cpus - n} of {cpus} CPUs busy with other processes: using {n} "
              f"thread{'s' if n > 1 else ''} (--threads N to choose)", file=sys.stderr,
              flush=True)
    torch.set_num_threads(n)
    return n


def add_threads_argument(parser) -> None:
    """The ``--threads`` option, worded the same for every command."""
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: the CPUs this process may "
                             "use that other processes are not keeping busy at its start, "
                             f"at most {MAX_DEFAULT})")
