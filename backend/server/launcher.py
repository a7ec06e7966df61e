"""Start a backend in a child process and wait until it listens.

Used by the CLI (bench, demo), by tests (a real server process) and mirrored by the
Blender add-on's "Start a local backend". The child writes its bound endpoint to a
ready file, so port 0 (pick a free port) works without races.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.errors import BackendUnavailable


class BackendProcess:
    """A ``facecast serve`` child process; use as a context manager."""

    def __init__(self, *, key_file: Path, address: str = "tcp://127.0.0.1:0",
                 extra_args: list[str] | None = None, log_file: Path | None = None,
                 startup_timeout_s: float = 60.0, unread_output: bool = False,
                 verbose: bool = False) -> None:
        """``unread_output``: stdout/stderr go to a pipe that is never read, as a careless
        launcher would leave them (the fuzz bench checks the server survives it);
        ``verbose``: debug logging (``facecast -v serve``), which fills such a pipe fast."""
        self.key_file = Path(key_file)
        self._dir = tempfile.TemporaryDirectory(prefix="facecast-backend-")
        ready = Path(self._dir.name) / "ready"
        cmd = [sys.executable, "-m", "backend.cli", *(["-v"] if verbose else []), "serve",
               "--address", address,
               "--key-file", str(self.key_file), "--ready-file", str(ready),
               *(extra_args or [])]
        self.log_path = log_file or Path(self._dir.name) / "backend.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        out = subprocess.PIPE if unread_output else self._log
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + startup_timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                self.stop()
                raise BackendUnavailable(f"the backend exited during start-up "
                                         f"(code {self.proc.returncode}): {self.log_tail()}",
                                         "run `facecast serve` by hand to see why")
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable("the backend did not start in time",
                                         "run `facecast serve` by hand to see why")
            time.sleep(0.05)
        self.endpoint = ready.read_text().strip()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """Die abruptly (SIGKILL), as a crashed backend would."""
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 5.0) -> float:
        """SIGTERM, then SIGKILL after ``timeout``; returns the seconds it took to stop."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        took = time.monotonic() - started
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not self._log.closed:
            self._log.close()
        return took

    def rss_bytes(self) -> int:
        """The server's resident memory (Linux /proc; 0 where unavailable)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def __enter__(self) -> BackendProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()
