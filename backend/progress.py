"""Progress for long work: a tqdm bar on a terminal, periodic plain lines otherwise.

A bar redraws with carriage returns, which a log file shows as nothing useful (a
17-minute demo run into a log printed nothing); when the stream is not a terminal,
``progress`` prints one line every ``every_s`` seconds instead, e.g.
``render: 40/206 frames (19%), 2.1 frames/s, about 79 s left``, flushed at once.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

LOG_EVERY_S = 10.0


class LineProgress:
    """The tqdm subset we use (update, set_postfix, close, context manager), as lines."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0,
                 file: IO[str] | None = None, every_s: float = LOG_EVERY_S) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self.file = file or sys.stderr
        self.every_s = every_s
        self._start = self._last = time.monotonic()
        self._start_n = initial
        self._postfix = ""
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(now)

    def set_postfix(self, **kw: Any) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in kw.items())

    def _print(self, now: float, final: bool = False) -> None:
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        parts = [f"{self.desc}: {self.n}"]
        if self.total:
            parts[0] += f"/{self.total} {self.unit}s ({100 * self.n / self.total:.0f}%)"
        else:
            parts[0] += f" {self.unit}s"
        parts.append(f"{rate:.2f} {self.unit}s/s")
        if self.total and not final and rate > 0:
            parts.append(f"about {(self.total - self.n) / rate:.0f} s left")
        if final:
            parts.append(f"done in {now - self._start:.0f} s")
        if self._postfix:
            parts.append(self._postfix)
        print(", ".join(parts), file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(time.monotonic(), final=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "frame", initial: int = 0,
             file: IO[str] | None = None, leave: bool = True) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal, else ``LineProgress``."""
    stream = file or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream,
                    leave=leave, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial, stream)
