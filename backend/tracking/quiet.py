"""Silence mediapipe's native (C++) log spam while keeping our own messages.

mediapipe 0.10.21 logs through absl and TFLite straight to file descriptor 2 ("All log
messages before absl::InitializeLog() ...", "Created TensorFlow Lite XNNPACK delegate",
"Feedback manager requires a model with a single signature ..."), a screenful per graph,
which no environment variable turns off. Inside ``quiet_native_logs`` fd 2 goes to
/dev/null while Python's ``sys.stderr`` (progress bars, warnings, our log lines) writes to
the real stderr. ``FACECAST_NATIVE_LOGS=1`` keeps them (debugging the tracker).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    if os.environ.get("FACECAST_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    old_stderr = sys.stderr
    real = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0),
                            line_buffering=True, write_through=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        sys.stderr = real
        yield
    finally:
        sys.stderr = old_stderr
        with contextlib.suppress(OSError, ValueError):
            real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            real.close()
