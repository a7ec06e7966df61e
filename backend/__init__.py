"""Facecast's backend: everything with torch in it.

Set before anything here can load torch: OpenMP worker threads that wait for work by
spinning (GNU OpenMP's default) keep every core busy between parallel regions, so on a
machine shared with other processes each torch op waits for threads that were
preempted, and rendering collapsed beside one CPU-bound process (docs/BENCHMARKS.md).
Passive waiting sleeps instead (``backend.threads`` chooses the thread count). A user's
own setting wins.

Freed memory is kept for reuse (glibc's ``mallopt``): a frame allocates and frees
tensors of tens of MB, and by default glibc hands each one back to the system and maps
it afresh next time, so every frame paid page faults on its largest tensors (the
landmark attention's softmax took twice its arithmetic). Blocks up to 32 MB now come
from the heap and up to 512 MB of free heap stays mapped. A user's ``MALLOC_*``
settings win; other C libraries are left alone.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _keep_freed_memory() -> None:
    if any(k.startswith("MALLOC_") for k in os.environ):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD


_keep_freed_memory()
