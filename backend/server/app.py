"""The backend server: one ROUTER socket loop that never runs compute itself.

The loop receives, verifies and dispatches client messages, sends what job threads put
in the outbox, and watches heartbeats. Compute runs on job threads under fair compute
slots (``executor.py``, ``scheduler.py``), so PING, ``info`` and CANCEL are answered
while every slot is busy. Anything a client sends is checked before use; a bad message
is dropped and counted in a rate-limited log summary, never a crash.

No message is ever dropped on the way out: the ROUTER runs with ``ROUTER_MANDATORY``,
so a full pipe to a slow reader says so (EAGAIN) instead of silently discarding, and
the message waits in its session's queue. A job's message counts against its client's
send budget in bytes from the moment it is queued until ZeroMQ has written it to the
socket (tracked per message), and job threads wait while the budget is spent: a reader
that stops holds the budget, not the stream. Every job ends with exactly one final
reply, also when its SUBMIT named a shared-memory payload that cannot be used.
"""

from __future__ import annotations

import errno
import logging
import signal
import threading
import time
import uuid
from typing import Any

import zmq

from backend.jobs import registry
from shared import __version__
from shared.errors import FacecastError, InputError, ProtocolError
from shared.protocol import (
    SUPPORTED_VERSIONS,
    Codec,
    ErrorCode,
    Message,
    MsgType,
    VersionMismatch,
    error_body,
)
from shared.protocol import shm as shm_mod
from shared.protocol.constants import MAX_CREDIT
from shared.protocol.keys import ensure_key_file, load_key
from shared.protocol.messages import clip
from shared.protocol.params import non_finite_path
from shared.protocol.shm import ShmArena, ShmReader, ShmRef

from .config import ServerConfig
from .executor import Outbox, Outgoing, SendBudget, ThreadExecutor, ThreadJobContext
from .logs import DropSummary
from .sessions import MAX_QUEUED_CONTROL, InFlight, JobRecord, Pending, Session
from .slots import FairScheduler

log = logging.getLogger("facecast.server")

#: A job silent this long while queued or computing gets a PROGRESS heartbeat, so the
#: client's per-job deadline only fires when the server really lost the job.
HEARTBEAT_S = 1.0
#: Messages received per loop turn before the outbox gets its turn.
RECV_BATCH = 256
#: ROUTER send high-water mark per client pipe (messages); beyond it messages wait in
#: the session's queue. Bytes are bounded by the client's send budget, not by this.
SEND_HWM = 64
#: Unsessioned replies (version mismatch, no_session) per second, all clients together.
UNSESSIONED_REPLIES_PER_S = 50


class Server:
    def __init__(self, config: ServerConfig, context: zmq.Context | None = None) -> None:
        config.validate()
        self.config = config
        self.key_path, self.key_created = ensure_key_file(config.key_file)
        self.key = load_key(self.key_path)
        self.codec = Codec(self.key, max_frames=config.max_frames,
                           max_total_bytes=config.max_total_bytes)
        self.instance = uuid.uuid4().hex
        self.ctx = context or zmq.Context()
        self.sessions: dict[str, Session] = {}
        self._by_identity: dict[bytes, str] = {}  # routing identity -> its latest session
        self.jobs: dict[str, JobRecord] = {}
        self._stop = threading.Event()
        self._auth: Any = None
        self.endpoint = ""
        self.drops = DropSummary(log, config.drop_log_interval_s)
        self.shm = config.shm and shm_mod.available()
        self._reply_tokens = float(UNSESSIONED_REPLIES_PER_S)
        self._reply_refill = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------
    def bind(self) -> str:
        if self.config.cluster is not None:  # render jobs take their frames from Ray actors
            from backend.cluster.runtime import attach

            attach(self.config.cluster)  # before binding: a bad cluster leaves no port bound
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame_bytes)
        # A full pipe raises EAGAIN instead of dropping the message silently.
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.SNDHWM, SEND_HWM)
        if self.config.curve_secret_file is not None:
            self._setup_curve()
        try:
            self.router.bind(self.config.address)
        except zmq.ZMQError as exc:
            self.router.close(linger=0)
            if self._auth is not None:
                self._auth.stop()
            if self.config.cluster is not None:
                from backend.cluster.runtime import detach

                detach()
            raise _bind_error(self.config.address, exc) from None
        self.endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.outbox = Outbox()
        self.scheduler = FairScheduler(self.config.workers)
        self.executor = ThreadExecutor(self.outbox)
        if self.shm:
            reclaimed = shm_mod.sweep_stale()
            if reclaimed:
                log.info("reclaimed %d shared-memory segments of processes that died",
                         reclaimed)
        threading.Thread(target=_warm_up, daemon=True, name="warm-up").start()
        return self.endpoint

    def _setup_curve(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        from shared.protocol.keys import load_curve_allow_list, load_curve_keypair

        public, secret = load_curve_keypair(self.config.curve_secret_file)
        allowed = load_curve_allow_list(self.config.curve_clients_dir)
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.config.curve_clients_dir))
        if len(self._auth.certs.get("*", {})) != len(allowed):  # changed under our feet
            self._auth.stop()
            raise FacecastError(f"the Curve allow-list in {self.config.curve_clients_dir} "
                                "could not be loaded as checked", "check the folder and "
                                "start again", code="key_file")
        self.router.curve_server = True
        self.router.curve_publickey = public
        self.router.curve_secretkey = secret

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def _handler(signum: int, _frame: Any) -> None:
            self.stop()  # no logging here: a handler must not wait for a stuck stderr
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.outbox.wake_r, zmq.POLLIN)
        last_check = time.monotonic()
        try:
            while not self._stop.is_set():
                blocked = any(s.queue or s.in_flight for s in self.sessions.values())
                poller.poll(5 if blocked else 100)
                for _ in range(RECV_BATCH):
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_frames(frames)
                for session in self.sessions.values():
                    session.reap()
                for item in self.outbox.drain():
                    self._route(item)
                self._flush_all()
                now = time.monotonic()
                if now - last_check > 0.25:
                    self._check_sessions(now)
                    self._heartbeats(now)
                    self.drops.tick(now)
                    last_check = now
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("shutting down")
        # Tell clients first (a shutdown is not their cancel), then stop the jobs.
        for rec in list(self.jobs.values()):
            rec.ctx.cancel()
            self._final(rec, MsgType.ERROR, error_body(
                ErrorCode.UNAVAILABLE, "the backend shut down during this job — start it "
                "again and retry", retryable=True))
        deadline = time.monotonic() + 1.0  # a client that does not read gets no more time
        while any(s.queue for s in self.sessions.values()) and time.monotonic() < deadline:
            self._flush_all()
            time.sleep(0.01)
        for session in self.sessions.values():
            session.close()
        if self.config.cluster is not None:
            from backend.cluster.runtime import detach

            detach()
        self.outbox.close()
        self.router.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        log.info("backend stopped")

    # -- incoming ---------------------------------------------------------------------
    def _on_frames(self, frames: list) -> None:
        identity = frames[0].bytes if len(frames) else b""
        try:
            msg = self.codec.decode(frames[1:], check_replay=False)
        except VersionMismatch as exc:
            self.drops.add("version_mismatch", exc.message)
            self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.VERSION_MISMATCH, exc.message,
                supported=[list(v) for v in SUPPORTED_VERSIONS])))
            return
        except ProtocolError as exc:
            self.drops.add(exc.code, exc.message)
            return
        except Exception as exc:  # never let a message take the loop down
            self.drops.add("decoder_error", f"{exc.__class__.__name__}: {str(exc)[:200]}")
            return
        curve_key = _curve_key(frames[1]) if self._auth is not None else ""
        try:
            self._dispatch(identity, curve_key, msg)
        except ProtocolError as exc:
            self.drops.add(exc.code, exc.message)
        except Exception:
            log.exception("failed to handle %s", clip(msg.type))
            self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.INTERNAL, "the backend could not handle this request — see its log"),
                job=msg.job))

    def _dispatch(self, identity: bytes, curve_key: str, msg: Message) -> None:
        if msg.type == MsgType.HELLO:
            self._on_hello(identity, curve_key, msg)
            return
        session = self.sessions.get(msg.session)
        if session is None or not session.owns(identity, curve_key):
            # Unknown, or bound to another connection: the same answer, so a key holder
            # learns nothing about other clients' sessions.
            self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.NO_SESSION, "this backend does not know your session on this "
                "connection (it may have restarted) — say HELLO again", retryable=True),
                job=msg.job))
            return
        self.codec.replay.check(msg.session, msg.seq, msg.ts)
        session.touch()
        if any(isinstance(a, ShmRef) for a in msg.arrays) and not self._resolve_shm(session,
                                                                                     msg):
            return
        handler = {
            MsgType.PING: self._on_ping, MsgType.SUBMIT: self._on_submit,
            MsgType.CANCEL: self._on_cancel, MsgType.CREDIT: self._on_credit,
            MsgType.BYE: self._on_bye, MsgType.RELEASE: self._on_release,
        }.get(msg.type)
        if handler is None:
            self._send_control(session, Message(MsgType.ERROR, error_body(
                ErrorCode.BAD_REQUEST, f"message type {clip(msg.type)} is not a request"),
                job=msg.job))
            return
        handler(session, msg)

    def _resolve_shm(self, session: Session, msg: Message) -> bool:
        """Replace the message's shared-memory payloads by private copies. A payload that
        cannot be used (not negotiated, over the message limit, named twice, not this
        user's segment, short, changed) ends its job with an error reply; the sender's
        slots are released either way."""
        released = shm_mod.slots_of(msg.arrays)
        try:
            if session.reader is None:
                raise ProtocolError("this connection sent a shared-memory payload without "
                                    "negotiating the fast path", "use the Facecast client",
                                    code="bad_shm")
            msg.arrays = session.reader.resolve(msg.arrays, self.config.max_total_bytes)
            return True
        except ProtocolError as exc:
            self.drops.add(exc.code, exc.message)
            self._send_control(session, Message(MsgType.ERROR, error_body(
                ErrorCode.BAD_REQUEST, f"the backend could not use this message's "
                f"payload: {exc.message}"), job=msg.job))
            return False
        finally:
            if session.arena is not None or session.reader is not None:
                self._send_control(session, Message(MsgType.RELEASE, {"slots": released}))

    def _on_hello(self, identity: bytes, curve_key: str, msg: Message) -> None:
        existing = self.sessions.get(msg.session)
        if existing is not None and not existing.owns(identity, curve_key):
            self.drops.add("session_taken", f"HELLO for session {msg.session[:8]} from "
                           "another connection")
            self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.BAD_REQUEST, "this session id belongs to another connection — "
                "say HELLO with a new random session id")))
            return
        self.codec.replay.check(msg.session, msg.seq, msg.ts)
        offered = msg.body.get("versions")
        common = []
        if isinstance(offered, list):
            ours = set(SUPPORTED_VERSIONS)
            for v in offered[:16]:
                if isinstance(v, list) and len(v) == 2 and tuple(v) in ours:
                    common.append(tuple(v))
        if not common:
            self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                ErrorCode.VERSION_MISMATCH,
                f"no common protocol version: client offers {clip(offered)}, backend speaks "
                f"{[list(v) for v in SUPPORTED_VERSIONS]} — install matching Facecast "
                "versions of the add-on and the backend",
                supported=[list(v) for v in SUPPORTED_VERSIONS])))
            return
        version = max(common)
        client = str(msg.body.get("client", "?"))[:64]
        session = existing
        if session is None:
            if not self._make_room_for_session():
                self._reply_unsessioned(identity, Message(MsgType.ERROR, error_body(
                    ErrorCode.BUSY, "the backend has as many clients as it serves — try "
                    "again shortly", retryable=True)))
                return
            session = Session(msg.session, identity, client, version, curve_key=curve_key,
                              budget=SendBudget(self.config.client_send_budget))
            self.sessions[msg.session] = session
            self._by_identity[identity] = msg.session
            log.info("client %s connected (session %s)", client, msg.session[:8])
        session.touch()
        welcome: dict[str, Any] = {
            "version": list(version), "server": f"facecast-backend {__version__}",
            "instance": self.instance, "jobs": registry.kinds(),
            "features": registry.features(),
            "limits": {"max_jobs_per_client": self.config.max_jobs_per_client,
                       "max_frame_bytes": self.config.max_frame_bytes,
                       "max_frames": self.config.max_frames,
                       "max_total_bytes": self.config.max_total_bytes,
                       "max_credit": MAX_CREDIT,
                       "client_timeout_s": self.config.client_timeout_s}}
        nonce = self._same_host_proof(session, msg.body.get("shm"))
        if nonce is not None:
            welcome["shm"] = {"nonce": nonce, "budget": self.config.shm_budget}
        self._send_control(session, Message(MsgType.WELCOME, welcome))

    def _same_host_proof(self, session: Session, offer: Any) -> bytes | None:
        """Read the client's probe segment back: proof that both ends share this host
        and user. Only then does the session use shared memory."""
        if not self.shm or not isinstance(offer, dict):
            return None
        try:
            nonce = shm_mod.read_probe(offer.get("probe"))
        except ProtocolError as exc:
            log.info("client %s offered the same-host fast path but its probe failed: %s",
                     session.client, exc.message)
            return None
        if session.arena is None:
            session.arena = ShmArena(self.key, self.config.shm_budget)
            session.reader = ShmReader(self.key, pread=True)  # a client cannot SIGBUS us
        return nonce

    def _make_room_for_session(self) -> bool:
        if len(self.sessions) < self.config.max_sessions:
            return True
        idle = [s for s in self.sessions.values() if not s.active()]
        if not idle:
            return False
        oldest = min(idle, key=lambda s: s.last_seen)
        self._drop_session(oldest, "evicted to make room for a new client")
        return True

    def _on_ping(self, session: Session, msg: Message) -> None:
        if session.pong_queued:
            return  # one PONG waiting is as good as many
        session.pong_queued = True
        self._send_control(session, Message(MsgType.PONG, {
            "instance": self.instance, "time": time.time(), "jobs": len(session.active())}))

    def _on_submit(self, session: Session, msg: Message) -> None:
        job_id, body = msg.job, msg.body

        def reject(code: str, text: str, retryable: bool = False) -> None:
            self._send_control(session, Message(MsgType.ERROR, error_body(
                code, text, retryable=retryable), job=job_id))

        if not job_id:
            reject(ErrorCode.BAD_REQUEST, "SUBMIT needs a job id")
            return
        kind = body.get("kind")
        job_cls = registry.get(kind) if isinstance(kind, str) else None
        if job_cls is None:
            reject(ErrorCode.UNKNOWN_JOB_KIND, f"the backend has no job {clip(kind)}; it "
                   f"offers {sorted(registry.kinds())} — update the backend if the add-on is "
                   "newer")
            return
        if job_id in self.jobs or job_id in session.jobs:
            reject(ErrorCode.DUPLICATE_JOB, f"job id {job_id[:8]} is already in use")
            return
        params, credit = body.get("params", {}), body.get("credit", 8)
        if not isinstance(params, dict):
            reject(ErrorCode.BAD_INPUT, f"params must be a map, got {clip(params)} — send "
                   "the job's parameters as a map")
            return
        if isinstance(credit, bool) or not isinstance(credit, int) or credit < 0:
            reject(ErrorCode.BAD_INPUT, f"credit must be a whole number >= 0, got "
                   f"{clip(credit)} — send the number of frames you can take")
            return
        bad = non_finite_path(params)
        if bad is not None:
            reject(ErrorCode.BAD_INPUT, f"{bad[0]} is {bad[1]} — send finite numbers")
            return
        # Cheap jobs (info) count apart, so a client busy with its limit of heavy jobs
        # can still ask what the backend is.
        if sum(r.job.cheap == job_cls.cheap for r in session.active()) >= \
                self.config.max_jobs_per_client:
            reject(ErrorCode.BUSY, f"this client already runs "
                   f"{self.config.max_jobs_per_client} jobs — wait for one to finish",
                   retryable=True)
            return
        heavy = sum(1 for r in self.jobs.values() if not r.job.cheap)
        if not job_cls.cheap and heavy >= self.config.max_jobs_total:
            reject(ErrorCode.BUSY, "the backend is at its job limit — try again shortly",
                   retryable=True)
            return
        ctx = ThreadJobContext(job_id, params, list(msg.arrays), min(credit, MAX_CREDIT),
                               self.outbox, client=session.id,
                               scheduler=None if job_cls.cheap else self.scheduler,
                               arena=session.arena, budget=session.budget)
        record = JobRecord(job_id, kind, session.id, job_cls(), ctx)
        self.jobs[job_id] = record
        session.jobs[job_id] = record
        self._send_job(record, Outgoing(job_id, MsgType.ACCEPTED, {
            "kind": kind, "queued": self.scheduler.waiting()}))
        self.executor.submit(record.job, ctx)

    def _on_cancel(self, session: Session, msg: Message) -> None:
        record = session.jobs.get(msg.job or "")
        if record is not None and not record.final_sent:
            record.ctx.cancel()  # idempotent; the job's thread sends the one CANCELLED

    def _on_credit(self, session: Session, msg: Message) -> None:
        record = session.jobs.get(msg.job or "")
        n = msg.body.get("n")
        if record is not None and isinstance(n, int) and not isinstance(n, bool) and n > 0:
            record.ctx.add_credit(min(n, MAX_CREDIT))

    def _on_release(self, session: Session, msg: Message) -> None:
        if session.arena is not None:
            session.arena.release(msg.body.get("slots"))

    def _on_bye(self, session: Session, msg: Message) -> None:
        self._drop_session(session, "said bye")

    # -- outgoing ---------------------------------------------------------------------
    def _route(self, item: Outgoing) -> None:
        record = self.jobs.get(item.job)
        if record is None or record.final_sent:
            return  # the job ended (or its client left): nothing more goes out for it
        if item.type in MsgType.FINAL_TYPES:
            self._final(record, item.type, item.body or {})
        else:
            self._send_job(record, item)

    def _send_job(self, record: JobRecord, item: Outgoing) -> None:
        session = self.sessions.get(record.session)
        if session is None:
            record.ctx.sent(item.nbytes)
            return
        session.queue.append(Pending(item, record.ctx))
        self._flush(session)

    def _final(self, record: JobRecord, type_: str, body: dict) -> None:
        """Queue the one final reply of a job; later messages of it are dropped."""
        if record.final_sent:
            return
        self._send_job(record, Outgoing(record.id, type_, body))
        record.final_sent = True
        self.jobs.pop(record.id, None)
        session = self.sessions.get(record.session)
        if session is not None:
            session.jobs.pop(record.id, None)

    def _send_control(self, session: Session, msg: Message) -> None:
        """A reply that is not part of a job; a client that never reads loses these
        beyond a bound (counted), never job messages."""
        if session.queued_control >= MAX_QUEUED_CONTROL:
            self.drops.add("reply_dropped", f"client {session.client} is not reading its "
                           "replies")
            if msg.type == MsgType.PONG:
                session.pong_queued = False
            return
        session.queued_control += 1
        session.queue.append(Pending(None, None, control=msg))
        self._flush(session)

    def _reply_unsessioned(self, identity: bytes, msg: Message) -> None:
        """Replies to requests outside a session, rate-limited for all together. A
        connection that has a session gets them in its queue, in order."""
        session = self.sessions.get(self._by_identity.get(identity, ""))
        if session is not None and session.identity == identity:
            self._send_control(session, msg)
            return
        now = time.monotonic()
        self._reply_tokens = min(float(UNSESSIONED_REPLIES_PER_S), self._reply_tokens
                                 + (now - self._reply_refill) * UNSESSIONED_REPLIES_PER_S)
        self._reply_refill = now
        if self._reply_tokens < 1:
            self.drops.add("reply_dropped", "too many replies to connections without a "
                           "session")
            return
        self._reply_tokens -= 1
        try:
            self.router.send_multipart([identity, *self.codec.encode(msg)], zmq.NOBLOCK,
                                       copy=False)
        except zmq.ZMQError as exc:
            self.drops.add("reply_dropped", f"could not send {msg.type}: {exc}")

    def _flush_all(self) -> None:
        for session in list(self.sessions.values()):
            if session.queue:
                self._flush(session)

    def _flush(self, session: Session) -> None:
        """Send the session's queue in order until its pipe is full (EAGAIN)."""
        while session.queue:
            pending = session.queue[0]
            if pending.frames is None:
                pending.frames = self._encode(pending, session)
            frames, tracker = _tracked(pending)
            try:
                self.router.send_multipart([session.identity, *frames], zmq.NOBLOCK,
                                           copy=False)
            except zmq.Again:
                return  # the pipe is full: try again on the next turn
            except zmq.ZMQError as exc:
                # EHOSTUNREACH: the connection is gone. Its jobs end at the client timeout.
                self.drops.add("peer_gone", f"client {session.client}: {exc}")
                while session.queue:
                    self._sent(session, session.queue.popleft(), time.monotonic())
                return
            del frames  # ZeroMQ holds the only references now: the tracker can finish
            self._sent(session, session.queue.popleft(), time.monotonic(), tracker)

    def _encode(self, pending: Pending, session: Session) -> list:
        """Sign a queued message with the session's own sequence number."""
        if pending.control is not None:
            return self.codec.encode(pending.control, session=session.id,
                                     seq=session.next_seq())
        item = pending.item
        assert item is not None and pending.ctx is not None
        body = item.body
        if item.type == MsgType.PROGRESS and body is None:
            body = pending.ctx.take_progress()
        msg = Message(item.type, body or {}, item.arrays, job=item.job)
        try:
            return self.codec.encode(msg, session=session.id, seq=session.next_seq())
        except FacecastError as exc:  # a job produced something unsendable
            log.error("job %s: could not encode %s: %s", item.job[:8], item.type, exc.message)
            return self.codec.encode(Message(MsgType.PROGRESS, {
                "fraction": pending.ctx.last_fraction,
                "message": f"a {item.type} could not be sent: {exc.message}"}, job=item.job),
                session=session.id, seq=session.next_seq())

    def _sent(self, session: Session, pending: Pending, now: float,
              tracker: Any = None) -> None:
        if pending.item is None:
            session.queued_control -= 1
            if pending.control.type == MsgType.PONG:
                session.pong_queued = False
            return
        assert pending.ctx is not None
        if tracker is not None and pending.item.nbytes and not tracker.done:
            session.in_flight.append(InFlight(tracker, pending.item.nbytes, pending.ctx))
        else:
            pending.ctx.sent(pending.item.nbytes)
        record = session.jobs.get(pending.item.job)
        if record is not None:
            record.last_sent = now

    # -- liveness ---------------------------------------------------------------------
    def _heartbeats(self, now: float) -> None:
        for record in list(self.jobs.values()):
            state = record.ctx.state
            session = self.sessions.get(record.session)
            if session is None or session.queue:
                continue  # messages are already on their way: no need to say more
            if state in ("queued", "running") and now - record.last_sent > HEARTBEAT_S:
                record.last_sent = now
                text = ("queued: waiting for a compute slot" if state == "queued"
                        else record.ctx.last_message or "working")
                self._send_job(record, Outgoing(record.id, MsgType.PROGRESS, {
                    "fraction": record.ctx.last_fraction, "message": text}))

    def _check_sessions(self, now: float) -> None:
        for session in list(self.sessions.values()):
            silent = now - session.last_seen
            if session.active() and silent > self.config.client_timeout_s:
                self._drop_session(session, f"silent for {silent:.0f} s")
            elif not session.active() and silent > self.config.session_ttl_s:
                self._drop_session(session, "idle")

    def _drop_session(self, session: Session, why: str) -> None:
        active = session.active()
        log.info("client %s (session %s) %s; cancelling %d job(s)", session.client,
                 session.id[:8], why, len(active))
        for record in active:
            record.ctx.cancel()
            # The client is gone: mark the job ended so nothing more is sent to it.
            record.final_sent = True
            self.jobs.pop(record.id, None)
        session.queue.clear()
        while session.in_flight:  # nobody waits for these bytes any more
            gone = session.in_flight.popleft()
            gone.ctx.sent(gone.nbytes)
        session.close()
        self.sessions.pop(session.id, None)
        if self._by_identity.get(session.identity) == session.id:
            del self._by_identity[session.identity]


def _tracked(pending: Pending) -> tuple[list, Any]:
    """The frames to send for ``pending``, with large ones wrapped so ZeroMQ reports when
    it lets go of them; the tracker (None for a message without payload bytes)."""
    frames = pending.frames
    assert frames is not None
    if pending.item is None or not pending.item.nbytes:
        return frames, None
    wrapped = [zmq.Frame(f, copy=False, track=True)
               if not isinstance(f, zmq.Frame) and memoryview(f).nbytes >= zmq.COPY_THRESHOLD
               else f for f in frames]
    watched = [f for f in wrapped if isinstance(f, zmq.Frame) and f.tracker is not None]
    return wrapped, zmq.MessageTracker(*watched) if watched else None


def _curve_key(frame: Any) -> str:
    """The CurveZMQ public key (Z85) the authenticator saw for this message."""
    try:
        return frame.get("User-Id") or ""
    except (zmq.ZMQError, AttributeError):
        return ""


def _bind_error(address: str, exc: zmq.ZMQError) -> FacecastError:
    if exc.errno == errno.EADDRINUSE:
        return InputError(f"{address} is already in use (another backend may be running "
                          "there)", "stop it, or pick another port (port 0 picks a free one)")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
        return InputError(f"cannot bind {address}: no such address on this machine",
                          "bind 127.0.0.1, or an address of one of this machine's interfaces")
    if exc.errno == errno.EACCES:
        return InputError(f"cannot bind {address}: permission denied",
                          "use a port above 1023, or a folder you can write for ipc://")
    return InputError(f"cannot bind {address}: {exc.strerror}",
                      "check the address (e.g. tcp://127.0.0.1:5557)")


def _warm_up() -> None:
    """Import the job modules and torch now, so the first ``info`` answers at once."""
    try:
        from backend.jobs.info import device_info

        registry.kinds()
        device_info()
    except Exception:  # best effort: the job itself reports real problems
        log.debug("warm-up failed", exc_info=True)


def run_server(config: ServerConfig, *, ready: Any = None) -> None:
    """Bind, print where, serve until SIGINT/SIGTERM."""
    server = Server(config)
    endpoint = server.bind()
    server.install_signal_handlers()
    if ready is not None:
        ready(server, endpoint)
    server.serve_forever()
