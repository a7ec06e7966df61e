"""The add-on's connection to the backend, and the local backend process it may start.

bpy-free on purpose: Blender calls :meth:`BackendLink.poll` from a timer, tests call it
from a plain loop, and both get the same behaviour. Nothing here blocks: connecting,
submitting and spawning all return at once and report through later polls, because a
frozen UI is the thing animators hate most.

State machine of :class:`BackendLink` (``state``)::

    closed --connect()--> connecting --WELCOME--> ready
       ^                      |                     |  (silence > timeout: Client ends
       |                      v                     v   every job with `unavailable`)
       +------close()------ lost <------------------+
                              |  (Client keeps saying HELLO; WELCOME -> ready)

Jobs are tracked by the :class:`JobHandler` objects registered with :meth:`submit`:
each gets every event of its job and exactly one final event (``Client`` guarantees it,
even when the backend dies).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..shared.errors import BackendUnavailable, FacecastError
from ..shared.net import is_loopback
from ..shared.protocol import Client, Event, MsgType, ensure_key_file, load_key
from ..shared.protocol.keys import default_key_path

# --------------------------------------------------------------------------------------
# Addresses and online access


def check_online_access(address: str, online_access: bool) -> None:
    """Refuse a non-loopback address when Blender's online access is off.

    Talking to a process on this machine is not online access; another host is.
    """
    if not is_loopback(address) and not online_access:
        raise FacecastError(
            f"The backend address {address} is on another machine, but Blender's online "
            "access is disabled",
            "enable Preferences > System > Network > Allow Online Access, or run the "
            "backend on this machine (tcp://127.0.0.1:PORT)", code="offline")


def resolve_key(key_file: str) -> bytes:
    """Read the signing key; an empty setting means the backend's default key file.

    The default key file is created (mode 0600) when missing, so a first "Start
    backend" works without any setup; a user-given path must already exist.
    """
    if key_file:
        return load_key(Path(key_file))
    path, _ = ensure_key_file(default_key_path())
    return load_key(path)


# --------------------------------------------------------------------------------------
# Local backend process


def backend_command(executable: str, address: str, key_file: str, ready_file: Path) -> list[str]:
    """The command line that starts ``facecast serve`` with ``executable``.

    A Python interpreter (its name starts with "python") runs ``-m backend.cli``, so a
    source checkout's venv works as well as an installed ``facecast`` command.
    """
    name = Path(executable).name.lower()
    if name.startswith("python"):
        cmd = [executable, "-m", "backend.cli", "serve"]
    else:
        cmd = [executable, "serve"]
    cmd += ["--address", address, "--ready-file", str(ready_file)]
    # Leave one core to Blender itself (the backend renders beside the UI).
    cmd += ["--threads", str(max(1, (os.cpu_count() or 2) - 1))]
    if key_file:
        cmd += ["--key-file", key_file]
    return cmd


def find_backend_executable(configured: str) -> str | None:
    """``configured`` if it is an executable file, else ``facecast`` on PATH, else None."""
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) \
            else None
    return shutil.which("facecast")


class LocalBackend:
    """A ``facecast serve`` child started by the add-on; stopped with Blender (atexit).

    ``start`` returns at once; :meth:`poll` notices the ready file (then ``state`` is
    ``running`` and ``endpoint`` the bound address) or an early exit (``error`` with the
    log's last lines, so the panel can say why).
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "stopped"  # stopped | starting | running | error
        self.message = ""
        self.endpoint = ""
        self.running_since = 0.0  # time.monotonic() when it was last seen ready
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log = None
        self._started_at = 0.0
        atexit.register(self.stop)

    @property
    def log_path(self) -> Path | None:
        return Path(self._dir.name) / "backend.log" if self._dir else None

    def start(self, executable: str, address: str, key_file: str) -> None:
        """Spawn the backend (no wait). Raises FacecastError if it cannot even start."""
        if self.proc is not None and self.proc.poll() is None:
            return
        exe = find_backend_executable(executable)
        if exe is None:
            raise FacecastError(
                f"Cannot start the backend: {executable or 'facecast'} "
                f"{'is not an executable file' if executable else 'is not on PATH'}",
                "install the backend (pip install facecast) or set Backend Executable in "
                "the add-on preferences", code="no_backend")
        self._cleanup()
        self._dir = tempfile.TemporaryDirectory(prefix="facecast-local-")
        ready = Path(self._dir.name) / "ready"
        self._ready = ready
        cmd = backend_command(exe, address, key_file, ready)
        self._log = open(Path(self._dir.name) / "backend.log", "wb")  # noqa: SIM115
        kwargs: dict = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # Ctrl+C in Blender's console spares it
        try:
            self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                         **kwargs)
        except OSError as exc:
            self.state, self.message = "error", f"could not run {exe}: {exc}"
            raise FacecastError(self.message, "check Backend Executable in the preferences",
                                code="no_backend") from exc
        self.state, self.message, self.endpoint = "starting", " ".join(cmd), ""
        self._started_at = time.monotonic()

    def poll(self, startup_timeout_s: float = 120.0) -> str:
        """Update and return ``state``; cheap enough to call every step."""
        if self.proc is None:
            return self.state
        code = self.proc.poll()
        if code is not None:
            if self.state != "stopped":
                self.state = "error"
                self.message = f"the backend exited (code {code}): {self.log_tail(600)}"
            self.proc = None
            return self.state
        if self.state == "starting":
            if self._ready.exists():
                self.endpoint = self._ready.read_text().strip()
                self.state, self.message = "running", f"listening on {self.endpoint}"
                self.running_since = time.monotonic()
            elif time.monotonic() - self._started_at > startup_timeout_s:
                self.state = "error"
                self.message = f"the backend did not start in time: {self.log_tail(600)}"
        return self.state

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Block until running/error (for scripts and tests only, never the UI)."""
        deadline = time.monotonic() + timeout_s
        while self.poll() == "starting" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state

    def log_tail(self, n: int = 2000) -> str:
        path = self.log_path
        try:
            return path.read_bytes()[-n:].decode(errors="replace").strip() if path else ""
        except OSError:
            return ""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL); safe to call repeatedly."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.state != "error" or proc is not None:
            self.state, self.message = "stopped", ""
        self.endpoint = ""
        self._cleanup()

    def kill(self) -> None:
        """Die abruptly, as a crashed backend would (tests use it)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def _cleanup(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()
        self._log = None


# --------------------------------------------------------------------------------------
# The connection


class JobHandler(Protocol):
    """Receives the events of one job (see :class:`BackendLink.submit`)."""

    def on_event(self, event: Event) -> None: ...


@dataclass
class LinkSettings:
    """What the link needs from the preferences (copied so the link is bpy-free)."""

    address: str
    key_file: str = ""
    timeout_s: float = 5.0
    online_access: bool = True


@dataclass
class BackendLink:
    """One :class:`Client` plus the handlers of its jobs; the add-on keeps one of these."""

    settings: LinkSettings | None = None
    client: Client | None = None
    handlers: dict[str, JobHandler] = field(default_factory=dict)
    message: str = ""
    server: dict = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.client.state if self.client is not None else "closed"

    def supports(self, kind: str, feature: str) -> bool:
        """Whether the connected backend's ``kind`` job declared ``feature`` (False until
        its WELCOME arrived, and for backends older than feature lists)."""
        return self.client is not None and self.state == "ready" and \
            self.client.supports(kind, feature)

    def connect(self, settings: LinkSettings) -> None:
        """(Re)open the connection if the settings changed or it is closed; no waiting."""
        check_online_access(settings.address, settings.online_access)
        if self.client is not None and settings == self.settings and self.state != "closed":
            return
        self.close()
        key = resolve_key(settings.key_file)
        self.settings = settings
        self.client = Client(settings.address, key=key, timeout_s=settings.timeout_s,
                             name="facecast-blender")
        self.client.connect()
        self.message = f"connecting to {settings.address}"

    def close(self) -> None:
        """Close the socket; unfinished jobs get a local ERROR so their handlers end."""
        if self.client is not None:
            for job in list(self.handlers):
                self._deliver(Event(MsgType.ERROR, job, {
                    "code": "cancelled", "message": "the connection to the backend was closed",
                    "retryable": True}))
            self.client.close()
        self.client = None
        self.server = {}
        self.handlers.clear()

    def submit(self, kind: str, params: dict, arrays: Sequence[np.ndarray],
               handler: JobHandler, credit: int = 8) -> str:
        """Send a job; its events go to ``handler.on_event`` from later :meth:`poll`s."""
        if self.client is None:
            raise BackendUnavailable("not connected to the backend",
                                     "press Connect or Start backend first")
        job = self.client.submit(kind, params, arrays, credit=credit)
        self.handlers[job] = handler
        return job

    def cancel(self, job: str) -> None:
        if self.client is not None:
            self.client.cancel(job)

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Pump the socket once; route job events to their handlers; return all events."""
        if self.client is None:
            return []
        events = self.client.poll(timeout_ms)
        for event in events:
            if event.kind == "connected":
                self.server = dict(event.body)
                self.message = f"connected to {self.client.address}"
            elif event.kind == "disconnected":
                self.server = {}
                self.message = event.body.get("message", "the backend stopped answering")
            if event.job is not None:
                self._deliver(event)
        return events

    def _deliver(self, event: Event) -> None:
        handler = self.handlers.get(event.job or "")
        if handler is None:
            return
        if event.final:  # ERROR/DONE/CANCELLED: the handler hears nothing after this
            del self.handlers[event.job]  # type: ignore[arg-type]
        handler.on_event(event)


def error_text(event: Event) -> str:
    """The user-facing text of an ERROR event (message plus code for support)."""
    body = event.body or {}
    message = str(body.get("message") or "the backend reported an error")
    code = body.get("code")
    return f"{message} [{code}]" if code else message
