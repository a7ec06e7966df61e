"""The client: a DEALER socket driven by ``poll()``, with no threads of its own.

Blender calls :meth:`Client.poll` from a timer or modal operator; the CLI uses
:class:`BlockingClient`, which loops over the same ``poll``. The client keeps the
protocol's promises on its side too: every submitted job ends in exactly one final
event, even when the backend dies or restarts (then a local ERROR with code
``unavailable`` / ``server_restarted`` and ``retryable=True`` ends it).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from ..errors import BackendUnavailable, FacecastError, ProtocolError
from .constants import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_FRAME_BYTES,
    SUPPORTED_VERSIONS,
    ErrorCode,
    MsgType,
)
from .messages import Codec, Message, VersionMismatch, error_body

log = logging.getLogger("facecast.client")


@dataclass
class Event:
    """Something the application should see: a server reply or a local state change.

    ``kind`` is a server message type (``accepted``, ``progress``, ``frame``, ``done``...)
    or ``connected`` / ``disconnected``. ``final`` marks the one event that ends a job.
    """

    kind: str
    job: str | None = None
    body: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.job is not None and self.kind in MsgType.FINAL_TYPES


@dataclass
class CurveClientKeys:
    """CurveZMQ keys for a remote backend (Z85 bytes)."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclass
class _JobState:
    kind: str
    window: int
    auto_credit: bool
    consumed: int = 0
    final: bool = False


class Client:
    """Non-blocking protocol client; call :meth:`poll` regularly (e.g. every 50 ms)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, key: bytes,
                 curve: CurveClientKeys | None = None, heartbeat_s: float = 1.0,
                 timeout_s: float = 10.0, name: str = "facecast-client",
                 context: zmq.Context | None = None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.address = address
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.name = name
        self._key = key
        self._curve = curve
        self._ctx = context or zmq.Context.instance()
        self._max_frame_bytes = max_frame_bytes
        self._codec = Codec(key)
        self._sock: zmq.Socket | None = None
        self._jobs: dict[str, _JobState] = {}
        self._pending: list[Event] = []
        self.state = "closed"  # closed | connecting | ready | lost
        self.server: dict = {}
        self._hello_at = 0.0
        self._last_recv = 0.0
        self._last_ping = 0.0

    # -- connection -------------------------------------------------------------------
    def connect(self) -> None:
        """Open the socket and say HELLO; the WELCOME arrives through :meth:`poll`."""
        self._open_socket()
        self._send(Message(MsgType.HELLO, {"versions": [list(v) for v in SUPPORTED_VERSIONS],
                                           "client": self.name}))
        self.state = "connecting"
        self._hello_at = self._last_recv = time.monotonic()

    def _open_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_frame_bytes)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if self._curve is not None:
            sock.curve_serverkey = self._curve.server_public
            sock.curve_publickey = self._curve.public
            sock.curve_secretkey = self._curve.secret
        sock.connect(self.address)
        self._sock = sock

    def close(self) -> None:
        """Say BYE (the server cancels our jobs) and close at once (linger 0)."""
        if self._sock is None:
            return
        if self.state == "ready":
            with contextlib.suppress(zmq.ZMQError):
                self._send(Message(MsgType.BYE), block=False)
        self._sock.close(linger=0)
        self._sock = None
        self.state = "closed"

    # -- requests ---------------------------------------------------------------------
    def submit(self, kind: str, params: dict | None = None,
               arrays: Sequence[np.ndarray] = (), *, credit: int = 8,
               auto_credit: bool = True, job_id: str | None = None) -> str:
        """Start a job and return its id. Its events arrive through :meth:`poll`."""
        if self._sock is None:
            raise BackendUnavailable("the client is not connected", "call connect() first")
        job = job_id or uuid.uuid4().hex
        self._jobs[job] = _JobState(kind, max(1, int(credit)), auto_credit)
        if self.state == "lost":
            self._jobs[job].final = True
            self._pending.append(Event(MsgType.ERROR, job, error_body(
                ErrorCode.UNAVAILABLE, f"the backend at {self.address} is not answering — "
                "start it with `facecast serve` (or Start backend in Blender)",
                retryable=True)))
            return job
        self._send(Message(MsgType.SUBMIT, {"kind": kind, "params": params or {},
                                            "credit": max(1, int(credit))},
                           list(arrays), job=job))
        return job

    def cancel(self, job: str) -> None:
        """Ask the server to stop ``job``; harmless to repeat. CANCELLED ends it."""
        if self._sock is not None and job in self._jobs and not self._jobs[job].final:
            self._send(Message(MsgType.CANCEL, job=job))

    def grant(self, job: str, n: int) -> None:
        """Allow the server to send ``n`` more frames of ``job``."""
        if self._sock is not None and n > 0:
            self._send(Message(MsgType.CREDIT, {"n": int(n)}, job=job))

    def supports(self, kind: str, feature: str) -> bool:
        """Whether the connected backend's ``kind`` job has the optional ``feature``
        (listed in WELCOME; an older backend lists none)."""
        features = self.server.get("features")
        return isinstance(features, dict) and feature in (features.get(kind) or ())

    def active_jobs(self) -> list[str]:
        return [j for j, s in self._jobs.items() if not s.final]

    # -- the step function ------------------------------------------------------------
    def poll(self, timeout_ms: int = 0, max_messages: int = 256) -> list[Event]:
        """Receive what has arrived (waiting at most ``timeout_ms``), keep the
        connection alive and return the events for the application."""
        events, self._pending = self._pending, []
        if self._sock is None:
            return events
        if self._sock.poll(timeout_ms, zmq.POLLIN):
            for _ in range(max_messages):
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                events.extend(self._handle(frames))
        self._housekeeping(events)
        self._grant_credit(events)
        return events

    def _handle(self, frames: list) -> list[Event]:
        try:
            msg = self._codec.decode(frames)
        except VersionMismatch as exc:
            return self._fail_all(ErrorCode.VERSION_MISMATCH, exc.message, retryable=False)
        except ProtocolError as exc:
            log.warning("dropped a message from the backend: %s", exc.message)
            return []
        self._last_recv = time.monotonic()
        if msg.type == MsgType.WELCOME:
            return self._on_welcome(msg)
        if msg.type == MsgType.PONG:
            if self.server and msg.body.get("instance") != self.server.get("instance"):
                return self._server_restarted()
            return []
        if msg.type == MsgType.ERROR and msg.body.get("code") == ErrorCode.NO_SESSION:
            return self._server_restarted()
        if msg.type == MsgType.ERROR and msg.body.get("code") == ErrorCode.VERSION_MISMATCH:
            self.state = "lost"
            return [*self._fail_all(ErrorCode.VERSION_MISMATCH,
                                    msg.body.get("message", "version mismatch"),
                                    retryable=False),
                    Event("disconnected", body=msg.body)]
        if msg.job is None:
            return [Event(msg.type, None, msg.body, msg.arrays)]
        state = self._jobs.get(msg.job)
        if state is None or state.final:
            return []  # not ours, or already ended: the one-final promise holds locally
        event = Event(msg.type, msg.job, msg.body, msg.arrays)
        if event.final:
            state.final = True
        return [event]

    def _on_welcome(self, msg: Message) -> list[Event]:
        restarted = bool(self.server) and msg.body.get("instance") != self.server.get("instance")
        self.server = dict(msg.body)
        self.state = "ready"
        events = self._server_restarted(reconnect=False) if restarted else []
        return [*events, Event("connected", body=dict(msg.body))]

    def _server_restarted(self, reconnect: bool = True) -> list[Event]:
        events = self._fail_all(ErrorCode.SERVER_RESTARTED,
                                "the backend restarted and lost this job",
                                retryable=True)
        if reconnect:
            self.server = {}
            self._send(Message(MsgType.HELLO, {"versions": [list(v) for v in SUPPORTED_VERSIONS],
                                               "client": self.name}))
            self.state = "connecting"
            self._hello_at = time.monotonic()
        return events

    def _fail_all(self, code: str, message: str, *, retryable: bool) -> list[Event]:
        events = []
        for job, state in self._jobs.items():
            if not state.final:
                state.final = True
                events.append(Event(MsgType.ERROR, job,
                                    error_body(code, message, retryable=retryable)))
        return events

    def _housekeeping(self, events: list[Event]) -> None:
        now = time.monotonic()
        if self.state in ("ready", "connecting") and now - self._last_recv > self.timeout_s:
            what = ("no backend answered" if self.state == "connecting"
                    else "the backend stopped answering")
            message = (f"{what} at {self.address} within {self.timeout_s:g} s — start it "
                       "with `facecast serve` (or Start backend in Blender) and check the "
                       "address and key file")
            events.extend(self._fail_all(ErrorCode.UNAVAILABLE, message, retryable=True))
            events.append(Event("disconnected", body={"message": message}))
            self.state = "lost"
            self.server = {}
            # Fresh socket: drops queued requests so a restarted server does not run them.
            self._open_socket()
            self._send(Message(MsgType.HELLO, {"versions": [list(v) for v in SUPPORTED_VERSIONS],
                                               "client": self.name}))
            self._hello_at = self._last_recv = now
        elif self.state == "ready" and now - self._last_ping >= self.heartbeat_s:
            self._last_ping = now
            self._send(Message(MsgType.PING), block=False)

    def _grant_credit(self, events: list[Event]) -> None:
        for event in events:
            if event.kind != MsgType.FRAME or event.job is None:
                continue
            state = self._jobs.get(event.job)
            if state is None or state.final or not state.auto_credit:
                continue
            state.consumed += 1
            if state.consumed >= max(1, state.window // 2):
                self.grant(event.job, state.consumed)
                state.consumed = 0

    def _send(self, msg: Message, block: bool = True) -> None:
        assert self._sock is not None
        frames = self._codec.encode(msg)
        try:
            self._sock.send_multipart(frames, flags=0 if block else zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.debug("send queue full; %s dropped", msg.type)


class BlockingClient:
    """Blocking convenience over :class:`Client` for scripts and the CLI."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, key: bytes, timeout_s: float = 10.0,
                 **kwargs: Any) -> None:
        self.client = Client(address, key=key, timeout_s=timeout_s, **kwargs)
        self.client.connect()
        deadline = time.monotonic() + timeout_s
        while self.client.state != "ready":
            for event in self.client.poll(50):
                if event.kind == "disconnected":
                    self.client.close()
                    raise BackendUnavailable(event.body.get("message", "backend unavailable"))
            if time.monotonic() > deadline:
                self.client.close()
                raise BackendUnavailable(f"no backend answered at {address} within "
                                         f"{timeout_s:g} s",
                                         "start it with `facecast serve` and check the "
                                         "address and key file")

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def stream(self, kind: str, params: dict | None = None,
               arrays: Sequence[np.ndarray] = (), **kwargs: Any) -> Iterator[Event]:
        """Yield the job's events up to and including its final one."""
        job = self.client.submit(kind, params, arrays, **kwargs)
        try:
            while True:
                for event in self.client.poll(50):
                    if event.job == job:
                        yield event
                        if event.final:
                            return
        finally:
            if job in self.client.active_jobs():
                self.client.cancel(job)

    def call(self, kind: str, params: dict | None = None, arrays: Sequence[np.ndarray] = (),
             on_event: Callable[[Event], None] | None = None, **kwargs: Any) -> Event:
        """Run a job to the end; return the DONE event or raise the ERROR as an exception."""
        for event in self.stream(kind, params, arrays, **kwargs):
            if on_event is not None:
                on_event(event)
            if event.final:
                if event.kind == MsgType.DONE:
                    return event
                body = event.body
                if event.kind == MsgType.CANCELLED:
                    raise FacecastError(f"job {kind} was cancelled", code="cancelled")
                raise FacecastError(body.get("message", "job failed"),
                                    code=body.get("code", "error"),
                                    retryable=bool(body.get("retryable")))
        raise AssertionError("unreachable: stream ends with a final event")
