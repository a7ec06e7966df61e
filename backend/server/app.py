"""The backend server: one ROUTER socket loop that never runs compute itself.

The loop receives, verifies and dispatches client messages, sends what workers put in
the outbox, and watches heartbeats. Compute runs in the executor, so PING and CANCEL
are answered while a render is busy. Anything a client sends is checked before use;
a bad message is dropped and logged, never a crash.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from typing import Any

import zmq

from backend.jobs import registry
from shared import __version__
from shared.errors import FacecastError, ProtocolError
from shared.protocol import (
    SUPPORTED_VERSIONS,
    Codec,
    ErrorCode,
    Message,
    MsgType,
    VersionMismatch,
    error_body,
)
from shared.protocol.keys import ensure_key_file, load_key

from .config import ServerConfig
from .executor import WAKE_ADDRESS, Outbox, Outgoing, ThreadExecutor, ThreadJobContext
from .sessions import JobRecord, Session

log = logging.getLogger("facecast.server")


class Server:
    def __init__(self, config: ServerConfig, context: zmq.Context | None = None) -> None:
        config.validate()
        self.config = config
        self.key_path, self.key_created = ensure_key_file(config.key_file)
        self.codec = Codec(load_key(self.key_path), max_frames=config.max_frames,
                           max_total_bytes=config.max_total_bytes)
        self.instance = uuid.uuid4().hex
        self.ctx = context or zmq.Context()
        self.sessions: dict[str, Session] = {}
        self.jobs: dict[str, JobRecord] = {}
        self._stop = threading.Event()
        self._auth: Any = None
        self.endpoint = ""
        self._dropped = 0

    # -- lifecycle --------------------------------------------------------------------
    def bind(self) -> str:
        if self.config.cluster is not None:  # render jobs take their frames from Ray actors
            from backend.cluster.runtime import attach

            attach(self.config.cluster)  # before binding: a bad cluster leaves no port bound
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 500)
        self.router.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame_bytes)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.setsockopt(zmq.SNDHWM, 1000)
        if self.config.curve_secret_file is not None:
            self._setup_curve()
        self.router.bind(self.config.address)
        self.endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.wake = self.ctx.socket(zmq.PULL)
        self.wake.bind(WAKE_ADDRESS)
        self.outbox = Outbox(self.ctx)
        self.executor = ThreadExecutor(self.outbox, workers=self.config.workers)
        return self.endpoint

    def _setup_curve(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        from shared.protocol.keys import load_curve_keypair

        public, secret = load_curve_keypair(self.config.curve_secret_file)
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        clients = self.config.curve_clients_dir
        if clients is None or not clients.is_dir() or not any(clients.glob("*.key")):
            raise FacecastError("--curve needs a folder of allowed client public keys",
                                "create one with `facecast keys curve CLIENTNAME` on the "
                                "client and copy its .key file into --curve-clients")
        self._auth.configure_curve(domain="*", location=str(clients))
        self.router.curve_server = True
        self.router.curve_publickey = public
        self.router.curve_secretkey = secret

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def _handler(signum: int, _frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            self.stop()
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        last_check = time.monotonic()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(100))
                if self.wake in ready:
                    self._drain_wake()
                if self.router in ready:
                    for _ in range(64):
                        try:
                            frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._on_frames(frames)
                self._send_outbox()
                now = time.monotonic()
                if now - last_check > 0.25:
                    self._check_sessions(now)
                    last_check = now
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        # Tell clients first (a shutdown is not their cancel), then stop the workers.
        for rec in list(self.jobs.values()):
            self._final(rec, MsgType.ERROR, error_body(
                ErrorCode.UNAVAILABLE, "the backend shut down during this job — start it "
                "again and retry", retryable=True))
            rec.ctx.cancel()
        self.executor.shutdown(wait=False)
        if self.config.cluster is not None:
            from backend.cluster.runtime import detach

            detach()
        self.outbox.close()
        self.wake.close(linger=0)
        self.router.close(linger=500)
        if self._auth is not None:
            self._auth.stop()
        log.info("backend stopped")

    # -- incoming ---------------------------------------------------------------------
    def _on_frames(self, frames: list) -> None:
        identity = frames[0].bytes if len(frames) else b""
        try:
            msg = self.codec.decode(frames[1:])
        except VersionMismatch as exc:
            log.warning("client speaks protocol %d: %s", exc.peer_major, exc.message)
            self._send(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.VERSION_MISMATCH, exc.message,
                supported=[list(v) for v in SUPPORTED_VERSIONS])))
            return
        except ProtocolError as exc:
            self._dropped += 1
            log.warning("dropped a message (%s): %s", exc.code, exc.message)
            return
        except Exception:  # never let a message take the loop down
            self._dropped += 1
            log.exception("dropped a message that broke the decoder")
            return
        try:
            self._dispatch(identity, msg)
        except Exception:
            log.exception("failed to handle %s", msg.type)
            self._send(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.INTERNAL, "the backend could not handle this request — see its log"),
                job=msg.job))

    def _dispatch(self, identity: bytes, msg: Message) -> None:
        if msg.type == MsgType.HELLO:
            self._on_hello(identity, msg)
            return
        session = self.sessions.get(msg.session)
        if session is None:
            self._send(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.NO_SESSION, "this backend does not know your session (it may have "
                "restarted) — say HELLO again", retryable=True), job=msg.job))
            return
        session.touch(identity)
        handler = {
            MsgType.PING: self._on_ping, MsgType.SUBMIT: self._on_submit,
            MsgType.CANCEL: self._on_cancel, MsgType.CREDIT: self._on_credit,
            MsgType.BYE: self._on_bye,
        }.get(msg.type)
        if handler is None:
            self._send(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.BAD_REQUEST, f"message type {msg.type!r} is not a request"),
                job=msg.job))
            return
        handler(session, msg)

    def _on_hello(self, identity: bytes, msg: Message) -> None:
        offered = msg.body.get("versions")
        common = []
        if isinstance(offered, list):
            ours = set(SUPPORTED_VERSIONS)
            for v in offered:
                if isinstance(v, list) and len(v) == 2 and tuple(v) in ours:
                    common.append(tuple(v))
        if not common:
            self._send(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.VERSION_MISMATCH,
                f"no common protocol version: client offers {offered!r}, backend speaks "
                f"{[list(v) for v in SUPPORTED_VERSIONS]} — install matching Facecast "
                "versions of the add-on and the backend",
                supported=[list(v) for v in SUPPORTED_VERSIONS])))
            return
        version = max(common)
        client = str(msg.body.get("client", "?"))[:64]
        existing = self.sessions.get(msg.session)
        if existing is not None:
            existing.touch(identity)
        else:
            self.sessions[msg.session] = Session(msg.session, identity, client, version)
            log.info("client %s connected (session %s)", client, msg.session[:8])
        self._send(identity, Message(MsgType.WELCOME, {
            "version": list(version), "server": f"facecast-backend {__version__}",
            "instance": self.instance, "jobs": registry.kinds(),
            "features": registry.features(),
            "limits": {"max_jobs_per_client": self.config.max_jobs_per_client,
                       "max_frame_bytes": self.config.max_frame_bytes,
                       "max_frames": self.config.max_frames,
                       "max_total_bytes": self.config.max_total_bytes,
                       "client_timeout_s": self.config.client_timeout_s}}))

    def _on_ping(self, session: Session, msg: Message) -> None:
        self._send(session.identity, Message(MsgType.PONG, {
            "instance": self.instance, "time": time.time(), "jobs": len(session.active())}))

    def _on_submit(self, session: Session, msg: Message) -> None:
        job_id, body = msg.job, msg.body

        def reject(code: str, text: str, retryable: bool = False) -> None:
            self._send(session.identity, Message(MsgType.ERROR, error_body(
                code, text, retryable=retryable), job=job_id))

        if not job_id:
            reject(ErrorCode.BAD_REQUEST, "SUBMIT needs a job id")
            return
        kind = body.get("kind")
        job_cls = registry.get(kind) if isinstance(kind, str) else None
        if job_cls is None:
            reject(ErrorCode.UNKNOWN_JOB_KIND, f"the backend has no job {kind!r}; it offers "
                   f"{sorted(registry.kinds())} — update the backend if the add-on is newer")
            return
        if job_id in self.jobs:
            reject(ErrorCode.DUPLICATE_JOB, f"job id {job_id[:8]} is already in use")
            return
        params, credit = body.get("params", {}), body.get("credit", 8)
        if not isinstance(params, dict) or not isinstance(credit, int) or credit < 0:
            reject(ErrorCode.BAD_REQUEST, "SUBMIT needs a params map and an integer credit")
            return
        if len(session.active()) >= self.config.max_jobs_per_client:
            reject(ErrorCode.BUSY, f"this client already runs "
                   f"{self.config.max_jobs_per_client} jobs — wait for one to finish",
                   retryable=True)
            return
        running = sum(1 for r in self.jobs.values() if not r.final_sent)
        if running >= self.config.max_jobs_total:
            reject(ErrorCode.BUSY, "the backend is at its job limit — try again shortly",
                   retryable=True)
            return
        ctx = ThreadJobContext(job_id, params, list(msg.arrays), credit, self.outbox)
        record = JobRecord(job_id, kind, session.id, job_cls(), ctx)
        self.jobs[job_id] = record
        session.jobs[job_id] = record
        self._send(session.identity, Message(MsgType.ACCEPTED, {"kind": kind, "queued": running},
                                             job=job_id))
        self.executor.submit(record.job, ctx)

    def _on_cancel(self, session: Session, msg: Message) -> None:
        record = session.jobs.get(msg.job or "")
        if record is None or record.final_sent:
            return  # idempotent: unknown or finished jobs need nothing
        record.ctx.cancel()
        if not record.ctx.started.is_set():
            self._final(record, MsgType.CANCELLED, {})

    def _on_credit(self, session: Session, msg: Message) -> None:
        record = session.jobs.get(msg.job or "")
        n = msg.body.get("n")
        if record is not None and isinstance(n, int) and n > 0:
            record.ctx.add_credit(n)

    def _on_bye(self, session: Session, msg: Message) -> None:
        self._drop_session(session, "said bye")

    # -- outgoing ---------------------------------------------------------------------
    def _drain_wake(self) -> None:
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _send_outbox(self) -> None:
        for item in self.outbox.drain():
            record = self.jobs.get(item.job)
            if record is None or record.final_sent:
                continue
            if item.type in MsgType.FINAL_TYPES:
                self._final(record, item.type, item.body)
            else:
                self._send_job(record, item)

    def _send_job(self, record: JobRecord, item: Outgoing) -> None:
        session = self.sessions.get(record.session)
        if session is not None:
            self._send(session.identity, Message(item.type, item.body, item.arrays,
                                                 job=record.id))

    def _final(self, record: JobRecord, type_: str, body: dict) -> None:
        """Send the one final reply of a job; later messages of it are dropped."""
        if record.final_sent:
            return
        record.final_sent = True
        self._send_job(record, Outgoing(record.id, type_, body))
        self.jobs.pop(record.id, None)
        session = self.sessions.get(record.session)
        if session is not None:
            session.jobs.pop(record.id, None)

    def _send(self, identity: bytes, msg: Message) -> None:
        try:
            self.router.send_multipart([identity, *self.codec.encode(msg)], copy=False)
        except zmq.ZMQError as exc:
            log.warning("could not send %s: %s", msg.type, exc)
        except FacecastError as exc:
            log.error("could not encode %s: %s", msg.type, exc.message)

    # -- liveness ---------------------------------------------------------------------
    def _check_sessions(self, now: float) -> None:
        for session in list(self.sessions.values()):
            silent = now - session.last_seen
            if session.active() and silent > self.config.client_timeout_s:
                self._drop_session(session, f"silent for {silent:.0f} s")
            elif not session.active() and silent > self.config.session_ttl_s:
                self.sessions.pop(session.id, None)

    def _drop_session(self, session: Session, why: str) -> None:
        active = session.active()
        log.info("client %s (session %s) %s; cancelling %d job(s)", session.client,
                 session.id[:8], why, len(active))
        for record in active:
            record.ctx.cancel()
            # The client is gone: mark the job ended so nothing more is sent to it.
            record.final_sent = True
            self.jobs.pop(record.id, None)
        self.sessions.pop(session.id, None)


def run_server(config: ServerConfig, *, ready: Any = None) -> None:
    """Bind, print where, serve until SIGINT/SIGTERM."""
    server = Server(config)
    endpoint = server.bind()
    server.install_signal_handlers()
    if ready is not None:
        ready(server, endpoint)
    server.serve_forever()
