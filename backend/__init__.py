"""Facecast's backend: everything with torch in it.

Set before anything here can load torch: OpenMP worker threads that wait for work by
spinning (GNU OpenMP's default) keep every core busy between parallel regions, so on a
machine shared with other processes each torch op waits for threads that were
preempted, and rendering collapsed beside one CPU-bound process (docs/BENCHMARKS.md).
Passive waiting sleeps instead (``backend.threads`` chooses the thread count). A user's
own setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
