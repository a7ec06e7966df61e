"""The client: a DEALER socket driven by ``poll()``, with no threads of its own.

Blender calls :meth:`Client.poll` from a timer or modal operator; the CLI uses
:class:`BlockingClient`, which loops over the same ``poll``. The client keeps the
protocol's promises on its side too: every submitted job ends in exactly one final
event, even when the backend dies or restarts (then a local ERROR with code
``unavailable`` / ``server_restarted`` and ``retryable=True`` ends it), or stops
making progress on one job: ``timeout_s`` is also a deadline on each job's messages,
which PONGs do not reset (code ``timeout``). The deadline pauses while the job has no
credit left, because then the backend is waiting for us.

On the same host (a loopback or ipc address, Linux), the client offers the
shared-memory fast path in HELLO (``shm.py``); the backend takes it only if it can
read the client's probe segment back.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from ..errors import BackendUnavailable, FacecastError, ProtocolError
from ..net import is_loopback
from . import shm
from .address import check_address
from .constants import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_FRAME_BYTES,
    MAX_CREDIT,
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
    #: Frames the backend may still send (initial credit + grants - frames received).
    outstanding: int = 0
    #: When this job last heard from the backend (its progress deadline runs from here).
    last_event: float = field(default_factory=time.monotonic)


#: Bytes of shared-memory segments this client may hold for its own SUBMIT arrays.
CLIENT_SHM_BUDGET = 64 * 1024 * 1024
#: Copied segments are reported back (RELEASE) in batches of this many, or after this
#: long: one message per frame cost the backend more than the frame's copy.
RELEASE_BATCH = 8
RELEASE_DELAY_S = 0.01
_SWEPT = False


class Client:
    """Non-blocking protocol client; call :meth:`poll` regularly (e.g. every 50 ms)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, key: bytes,
                 curve: CurveClientKeys | None = None, heartbeat_s: float = 1.0,
                 timeout_s: float = 10.0, name: str = "facecast-client",
                 context: zmq.Context | None = None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 same_host: bool = True) -> None:
        self.address = check_address(address, bind=False)
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
        # Same-host fast path: offered when the backend is on this machine.
        self._offer_shm = same_host and is_loopback(address) and shm.available()
        self._probe: tuple[str, bytes] | None = None
        self._shm_reader: shm.ShmReader | None = None
        self._shm_arena: shm.ShmArena | None = None
        self._to_release: list[list[int]] = []
        self._release_since = 0.0

    @property
    def same_host(self) -> bool:
        """True once the backend took the shared-memory fast path."""
        return self._shm_reader is not None

    # -- connection -------------------------------------------------------------------
    def connect(self) -> None:
        """Open the socket and say HELLO; the WELCOME arrives through :meth:`poll`."""
        self._open_socket()
        self._hello()
        self._hello_at = self._last_recv = time.monotonic()

    def _hello(self) -> None:
        """Say HELLO as a new session (a session is bound to its connection, so after a
        reset the client cannot resume the old one), offering the fast path if it may."""
        self._codec = Codec(self._key)
        self._end_shm()
        body: dict[str, Any] = {"versions": [list(v) for v in SUPPORTED_VERSIONS],
                                "client": self.name}
        if self._offer_shm:
            global _SWEPT
            try:
                if not _SWEPT:
                    _SWEPT = True
                    shm.sweep_stale()
                self._probe = shm.write_probe()
                body["shm"] = {"probe": self._probe[0]}
            except OSError as exc:
                log.info("same-host fast path not offered: %s", exc)
        self._send(Message(MsgType.HELLO, body))
        self.state = "connecting"
        self._hello_at = time.monotonic()

    def _end_shm(self) -> None:
        if self._probe is not None:
            shm.remove(self._probe[0])
            self._probe = None
        if self._shm_reader is not None:
            self._shm_reader.close()
            self._shm_reader = None
        if self._shm_arena is not None:
            self._shm_arena.close()
            self._shm_arena = None
        self._to_release = []

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
        self._end_shm()
        self.state = "closed"

    # -- requests ---------------------------------------------------------------------
    def submit(self, kind: str, params: dict | None = None,
               arrays: Sequence[np.ndarray] = (), *, credit: int = 8,
               auto_credit: bool = True, job_id: str | None = None) -> str:
        """Start a job and return its id. Its events arrive through :meth:`poll`."""
        if self._sock is None:
            raise BackendUnavailable("the client is not connected", "call connect() first")
        job = job_id or uuid.uuid4().hex
        window = min(MAX_CREDIT, max(1, int(credit)))
        self._jobs[job] = _JobState(kind, window, auto_credit, outstanding=window)
        if self.state == "lost":
            self._jobs[job].final = True
            self._pending.append(Event(MsgType.ERROR, job, error_body(
                ErrorCode.UNAVAILABLE, f"the backend at {self.address} is not answering — "
                "start it with `facecast serve` (or Start backend in Blender)",
                retryable=True)))
            return job
        payload: list[Any] = list(arrays)
        if self._shm_arena is not None:
            payload = [self._shm_arena.share(a) or a for a in payload]
        self._send(Message(MsgType.SUBMIT, {"kind": kind, "params": params or {},
                                            "credit": window}, payload, job=job))
        return job

    def cancel(self, job: str) -> None:
        """Ask the server to stop ``job``; harmless to repeat. CANCELLED ends it."""
        if self._sock is not None and job in self._jobs and not self._jobs[job].final:
            self._send(Message(MsgType.CANCEL, job=job))

    def grant(self, job: str, n: int) -> None:
        """Allow the server to send ``n`` more frames of ``job``."""
        if self._sock is not None and n > 0:
            n = min(int(n), MAX_CREDIT)
            state = self._jobs.get(job)
            if state is not None:
                state.outstanding += n
                state.last_event = time.monotonic()  # the deadline restarts from the grant
            self._send(Message(MsgType.CREDIT, {"n": n}, job=job))

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
        if self._to_release and self.state == "ready" and (
                len(self._to_release) >= RELEASE_BATCH
                or time.monotonic() - self._release_since > RELEASE_DELAY_S):
            # Batched: tells the backend which segments it may reuse.
            released, self._to_release = self._to_release, []
            self._send(Message(MsgType.RELEASE, {"slots": released}), block=False)
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
        except Exception as exc:  # whatever a peer sends, poll() must not raise
            log.warning("dropped a message from the backend that broke the decoder: %s: %s",
                        exc.__class__.__name__, str(exc)[:200])
            return []
        self._last_recv = time.monotonic()
        if msg.type == MsgType.WELCOME:
            return self._on_welcome(msg)
        if msg.type == MsgType.PONG:
            if self.server and msg.body.get("instance") != self.server.get("instance"):
                return self._server_restarted()
            return []
        if msg.type == MsgType.RELEASE:
            if self._shm_arena is not None:
                self._shm_arena.release(msg.body.get("slots"))
            return []
        if msg.type == MsgType.ERROR and msg.body.get("code") == ErrorCode.NO_SESSION:
            if self.state == "connecting":
                return []  # an answer to something sent before our new HELLO
            return self._server_restarted()
        if any(isinstance(a, shm.ShmRef) for a in msg.arrays):
            released = shm.slots_of(msg.arrays)
            try:
                if self._shm_reader is None:
                    raise ProtocolError("the backend sent a shared-memory payload that was "
                                        "not negotiated", "update the add-on and the "
                                        "backend to the same Facecast release")
                msg.arrays = self._shm_reader.resolve(msg.arrays)
            except ProtocolError as exc:
                return self._lost_payload(msg, exc)
            finally:  # copied or given up on: the backend may reuse the slots
                if not self._to_release:
                    self._release_since = time.monotonic()
                self._to_release.extend(released)
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
        state.last_event = time.monotonic()
        if msg.type == MsgType.FRAME:
            state.outstanding -= 1
        event = Event(msg.type, msg.job, msg.body, msg.arrays)
        if event.final:
            state.final = True
        return [event]

    def _lost_payload(self, msg: Message, exc: ProtocolError) -> list[Event]:
        """A payload could not be read: end its job with an error, never drop it silently."""
        log.warning("could not read a payload from the backend: %s", exc.message)
        state = self._jobs.get(msg.job or "")
        if state is None or state.final:
            return []
        state.final = True
        if self._sock is not None:
            self._send(Message(MsgType.CANCEL, job=msg.job), block=False)
        return [Event(MsgType.ERROR, msg.job, error_body(
            ErrorCode.INTERNAL, f"a {msg.type} of this job could not be read: {exc.message}",
            retryable=True))]

    def _on_welcome(self, msg: Message) -> list[Event]:
        restarted = bool(self.server) and msg.body.get("instance") != self.server.get("instance")
        offer = msg.body.get("shm")
        if (self._probe is not None and isinstance(offer, dict)
                and isinstance(offer.get("nonce"), bytes)
                and hmac.compare_digest(offer["nonce"], self._probe[1])):
            self._shm_reader = shm.ShmReader(self._key)
            self._shm_arena = shm.ShmArena(self._key, CLIENT_SHM_BUDGET)
        if self._probe is not None:
            shm.remove(self._probe[0])
            self._probe = None
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
            self._hello()
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
            self._hello()
            self.state = "lost"
            self._hello_at = self._last_recv = now
            return
        if self.state == "ready" and now - self._last_ping >= self.heartbeat_s:
            self._last_ping = now
            self._send(Message(MsgType.PING), block=False)
        if self.state == "ready":
            self._job_deadlines(events, now)

    def _job_deadlines(self, events: list[Event], now: float) -> None:
        """End jobs the backend has said nothing about for ``timeout_s`` (PONGs keep the
        connection, not a job, alive). A job with no credit left is waiting for us."""
        for job, state in self._jobs.items():
            if state.final or state.outstanding <= 0:
                continue
            if now - state.last_event > self.timeout_s:
                state.final = True
                self._send(Message(MsgType.CANCEL, job=job), block=False)
                events.append(Event(MsgType.ERROR, job, error_body(
                    ErrorCode.TIMEOUT, f"the backend at {self.address} sent nothing for this "
                    f"{state.kind} job in {self.timeout_s:g} s — it may be overloaded or "
                    "stuck; retry, or raise the timeout", retryable=True)))

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
