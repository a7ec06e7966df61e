"""The backend's lifecycle as the add-on sees it, minus Blender: start, connect, status.

One :class:`BackendSession` lives as long as Blender does. It owns the connection
(:class:`BackendLink`), the local ``facecast serve`` child the add-on may have started
(:class:`LocalBackend`) and what the backend said about itself (subjects, job
features). Nothing here waits: :meth:`BackendSession.poll` is called from the add-on's
step function. Settings come in as a :class:`BackendSettings` copied from the
preferences, so this module never touches bpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from ..shared.errors import FacecastError
from ..shared.net import accepts_connections, is_loopback
from ..shared.protocol import Event, MsgType
from .backend_link import BackendLink, LinkSettings, LocalBackend

DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"


@dataclass(frozen=True)
class BackendSettings:
    """The preferences that say where the backend is and how to start one."""

    address: str = DEFAULT_ADDRESS
    key_file: str = ""  # "" = the backend's default key file
    timeout_s: float = 5.0
    executable: str = ""  # "" = ``facecast`` on PATH
    online_access: bool = True
    job_timeout_s: float = 120.0  # no progress this long: the job is reported stalled
    start_local: bool = True  # Animate/Render start a local backend when none answers


@dataclass
class InfoTask:
    """Handler for the ``info`` job: the backend's self-description (subjects, jobs)."""

    job: str = ""
    state: str = "running"
    body: dict = field(default_factory=dict)
    error: str = ""

    def on_event(self, event: Event) -> None:
        if event.kind == MsgType.DONE:
            self.state, self.body = "done", dict(event.body)
        elif event.kind == MsgType.ERROR:
            self.state, self.error = "error", str(event.body.get("message", "error"))
        elif event.kind == MsgType.CANCELLED:
            self.state = "cancelled"


def subject_names(info_body: dict) -> list[str]:
    """Subject names from an ``info`` answer (entries are names or {id/name: ...})."""
    names = []
    for s in info_body.get("subjects") or []:
        name = (s.get("id") or s.get("name")) if isinstance(s, dict) else s
        if name:
            names.append(str(name))
    return names


def consent_lines(info_body: dict) -> dict[str, str]:
    """Subject name -> its consent line, from an ``info`` answer (empty for backends
    that do not report consent)."""
    out = {}
    for s in info_body.get("subjects") or []:
        if isinstance(s, dict) and s.get("name") and isinstance(s.get("consent"), str):
            out[str(s["name"])] = s["consent"]
    return out


def coverage_lines(info_body: dict) -> dict[str, str]:
    """Subject name -> what its footage covers (one line), from an ``info`` answer."""
    return {str(s["name"]): s["coverage"] for s in info_body.get("subjects") or []
            if isinstance(s, dict) and s.get("name") and isinstance(s.get("coverage"), str)}


@dataclass
class BackendSession:
    """Connection + local process + what the backend offers."""

    link: BackendLink = field(default_factory=BackendLink)
    local: LocalBackend = field(default_factory=LocalBackend)
    info: InfoTask | None = None
    subjects: list[str] = field(default_factory=list)
    subject_consent: dict[str, str] = field(default_factory=dict)  # name -> consent line
    subject_coverage: dict[str, str] = field(default_factory=dict)  # name -> coverage line
    connected_at: float = 0.0  # time.monotonic() of the last (re)connect

    def link_settings(self, settings: BackendSettings) -> LinkSettings:
        """A running local backend's bound endpoint wins (it may have picked its port)."""
        address = settings.address
        if self.local.poll() == "running" and self.local.endpoint:
            address = self.local.endpoint
        return LinkSettings(address, settings.key_file, float(settings.timeout_s),
                            settings.online_access)

    def start_local(self, settings: BackendSettings) -> None:
        """Spawn ``facecast serve`` (returns at once; :meth:`poll` follows it)."""
        if not is_loopback(settings.address):
            raise FacecastError(f"A local backend cannot listen on {settings.address}",
                                "set Backend Address to tcp://127.0.0.1:PORT")
        self.link.close()
        self.local.start(settings.executable, settings.address, settings.key_file)

    def should_start_local(self, settings: BackendSettings) -> bool:
        """Whether a job about to be sent should first start the local backend: the
        preference allows it, nothing is connected, no backend of ours is starting or
        running, the address is on this machine and nothing listens there (a backend
        started in a terminal is used, not doubled)."""
        return settings.start_local and not self.ready and \
            self.local.poll() not in ("starting", "running") and \
            is_loopback(settings.address) and not accepts_connections(settings.address)

    def stop_local(self) -> None:
        self.link.close()
        self.local.stop()

    def connect(self, settings: BackendSettings) -> None:
        """Open the connection (no waiting) and ask the backend what it offers."""
        self.link.connect(self.link_settings(settings))
        self.connected_at = time.monotonic()
        self._ask_info()

    def _ask_info(self) -> None:
        if self.info is None or self.info.state != "running":
            self.info = InfoTask()
            self.info.job = self.link.submit("info", {}, [], self.info)

    def _relink_to_local(self) -> None:
        """Our local backend came up after the link started waiting for it: connect
        afresh to where it listens. The old link may already have given up (a backend
        that starts slower than the connect timeout), and a job waiting to be sent must
        not read that as "no backend answered"."""
        settings = self.link.settings
        if settings is None:
            return
        self.link.close()
        self.info = None
        self.link.connect(replace(settings, address=self.local.endpoint or settings.address))
        self.connected_at = time.monotonic()
        self._ask_info()

    def supports(self, kind: str, feature: str) -> bool:
        return self.link.supports(kind, feature)

    @property
    def ready(self) -> bool:
        return self.link.state == "ready"

    @property
    def watching(self) -> bool:
        """Whether something is still in motion that :meth:`poll` must follow."""
        return self.local.state == "starting" or \
            self.link.state in ("connecting", "ready") or \
            (self.info is not None and self.info.state == "running")

    def poll(self) -> None:
        """One non-blocking tick: process state, socket, the ``info`` answer."""
        if self.local.poll() == "running" and self.local.running_since > self.connected_at \
                and self.link.state != "ready":
            self._relink_to_local()
        self.link.poll(0)
        info = self.info
        if info is not None and info.state == "done":
            self.subjects = subject_names(info.body)
            self.subject_consent = consent_lines(info.body)
            self.subject_coverage = coverage_lines(info.body)
            self.info = InfoTask(state="seen", body=info.body)
        elif info is not None and info.state in ("error", "cancelled"):
            self.info = None

    def status(self) -> tuple[str, str]:
        """(state, text) for the panel and preferences: local process + connection."""
        local = self.local.poll()
        link = self.link.state
        if local == "error":
            return "error", self.local.message
        if link == "ready":
            return "connected", self.link.message
        if local == "starting":
            return "starting", "starting the local backend..."
        if link == "lost":
            return "error", self.link.message
        if link == "connecting":
            return "connecting", self.link.message
        if local == "running":
            return "running", self.local.message
        return "stopped", "not connected"

    def close(self) -> None:
        """On unregister: close the socket and stop the backend we started."""
        self.link.close()
        self.local.stop()
