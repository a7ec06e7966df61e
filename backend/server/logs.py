"""Logging for ``facecast serve`` that can neither block the socket loop nor grow
without bound.

* :class:`NonBlockingHandler`: records go to a bounded queue drained by a thread of
  their own, one per destination (stderr, the log file). When a destination cannot keep
  up — stdout/stderr a pipe nobody reads — its queue fills and further records are
  dropped and counted (reported once the destination drains), instead of the loop
  blocking in ``write()``. A stuck stderr does not stop the log file.
* :class:`DropSummary`: hostile traffic is logged as a summary — the first drop of each
  reason in an interval in full, then one line of counts by reason per interval.
* ``--log-file`` rotates (:class:`logging.handlers.RotatingFileHandler`).
* Nothing else in the process writes to the real stdout/stderr: Python warnings are
  captured into logging and ``sys.stdout``/``sys.stderr`` become :class:`LineToLog`
  writers (:func:`route_std_streams`), because a warning printed by a library inside a
  job (torch warns about read-only arrays) would otherwise block that job's thread on a
  full pipe, holding its compute slot forever.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import threading
import time
from collections import Counter
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"


class NonBlockingHandler(logging.handlers.QueueHandler):
    """Hands records to ``target`` through a bounded queue and a daemon thread; never
    blocks the caller (a full queue drops the record and counts it)."""

    def __init__(self, target: logging.Handler, capacity: int = 4096) -> None:
        super().__init__(queue.Queue(capacity))
        self.target = target
        self.dropped = 0
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True,
                                        name=f"log-{type(target).__name__}")
        self._thread.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self._count_lock:
                self.dropped += 1

    def _drain(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                return
            with self._count_lock:
                dropped, self.dropped = self.dropped, 0
            if dropped:
                self.target.handle(logging.makeLogRecord({
                    "name": "facecast.log", "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": f"{dropped} log lines were dropped: this output was not being "
                           "read fast enough"}))
            self.target.handle(record)

    def flush_within(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the queue to drain; False if the output is stuck."""
        deadline = time.monotonic() + timeout_s
        while not self.queue.empty():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        # Never join: the thread may be stuck in write() on a pipe nobody reads.
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        logging.Handler.close(self)


class LineToLog:
    """A text stream that turns each written line into a log record (never blocks)."""

    def __init__(self, logger: logging.Logger, level: int, original: object) -> None:
        self._logger = logger
        self._level = level
        self._original = original
        self._buffer = ""
        self._lock = threading.Lock()
        self.encoding = getattr(original, "encoding", "utf-8")

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
            if len(self._buffer) > 4096:  # a writer that never ends its line
                lines.append(self._buffer)
                self._buffer = ""
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line[:2000])
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._original.fileno()  # type: ignore[attr-defined]


def route_std_streams() -> None:
    """Send warnings and anything printed from now on through the log handlers."""
    logging.captureWarnings(True)
    sys.stdout = LineToLog(logging.getLogger("facecast.stdout"), logging.INFO, sys.stdout)
    sys.stderr = LineToLog(logging.getLogger("facecast.stderr"), logging.WARNING, sys.stderr)


def setup_server_logging(level: int, log_file: Path | None = None,
                         max_bytes: int = 10 * 1024 * 1024,
                         backups: int = 3) -> list[NonBlockingHandler]:
    """Replace the root handlers by non-blocking ones (stderr, and a rotating file)."""
    formatter = logging.Formatter(FORMAT, datefmt=DATEFMT)
    targets: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        targets.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handlers = []
    for target in targets:
        target.setFormatter(formatter)
        handler = NonBlockingHandler(target)
        root.addHandler(handler)
        handlers.append(handler)
    root.setLevel(level)
    return handlers


class DropSummary:
    """Rate-limited reporting of dropped messages: per interval, the first drop of each
    reason is logged in full and the rest are counted into one summary line."""

    def __init__(self, log: logging.Logger, interval_s: float = 10.0,
                 what: str = "messages") -> None:
        self.log = log
        self.interval_s = interval_s
        self.what = what
        self.counts: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self._started = time.monotonic()
        self._silenced = 0

    def add(self, reason: str, detail: str) -> None:
        self.total[reason] += 1
        self.counts[reason] += 1
        if self.counts[reason] == 1:
            self.log.warning("dropped a message (%s): %s", reason, detail)
        else:
            self._silenced += 1
            self.log.debug("dropped a message (%s): %s", reason, detail)

    def tick(self, now: float) -> None:
        """Call regularly: writes the summary line when an interval has passed."""
        if now - self._started < self.interval_s:
            return
        if self._silenced:
            by_reason = ", ".join(f"{r} {n}" for r, n in self.counts.most_common())
            self.log.warning("dropped %d %s in the last %.0f s (%s); only the first of each "
                             "kind is logged", sum(self.counts.values()), self.what,
                             now - self._started, by_reason)
        self.counts.clear()
        self._silenced = 0
        self._started = now
