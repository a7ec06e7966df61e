"""How many CPU threads torch uses for rendering and training (``--threads``).

Default: the CPUs this process may run on (its affinity mask, so a container's or
``taskset``'s limit counts), at most ``MAX_DEFAULT`` (the renderer's ops are small:
beyond ~8 threads the synchronisation costs more than it gains). OpenMP threads wait
passively (``backend/__init__.py``), so threads that find their core taken by another
process sleep instead of spinning; on a busy shared machine pass a smaller ``--threads``
(docs/BENCHMARKS.md's render table shows what 1 thread keeps beside one CPU-bound
process on 2 cores).
"""

from __future__ import annotations

import os

from shared.errors import InputError

MAX_DEFAULT = 8


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set (how a parent, e.g. ``facecast demo --threads``, hands
    its choice to a backend child), else the available CPUs, at most ``MAX_DEFAULT``."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return min(MAX_DEFAULT, available_cpus())


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: ``default_threads()``); returns the count.
    InputError for a count below 1."""
    if threads is not None and threads < 1:
        raise InputError(f"--threads {threads} is not a thread count",
                         "pass 1 or more (default: the CPUs this process may use)")
    import torch

    n = default_threads() if threads is None else int(threads)
    torch.set_num_threads(n)
    return n


def add_threads_argument(parser) -> None:
    """The ``--threads`` option, worded the same for every command."""
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: the CPUs this process may "
                             f"use, at most {MAX_DEFAULT}); on a machine shared with other "
                             "busy processes use fewer")
