"""Runs jobs away from the socket loop: a thread per job, compute slots, job contexts.

Workers never touch the ROUTER socket (ZeroMQ sockets are not thread-safe). They put
outgoing messages on the :class:`Outbox` and wake the loop through a socket pair; the
loop signs and sends. Each accepted job gets its own thread (``--max-jobs`` bounds
them); the :class:`~.slots.FairScheduler` bounds how many compute at once
(``--workers``). A context gives its compute slot back while it waits for the client —
credit, or room in its send queue — so a slow reader never holds a worker.

A client's unsent bytes are bounded by one :class:`SendBudget` shared by all its jobs:
``frame()`` and ``result()`` wait (slot released) until ZeroMQ has written enough of
that client's earlier messages to the socket (the loop tracks each message until ZeroMQ
lets go of it), and return only once another message of the same size would fit (a job
does not make its next frame while its client is not taking this one). So a client that
stops reading holds the budget, not its stream, whatever the frame size, and no frame
is ever dropped. PROGRESS is coalesced: only the
latest unsent one is kept.

A Ray-actor executor can implement the same contract with a context that forwards these
calls (the job interface in ``backend/jobs/base.py`` does not change).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.jobs.base import Job, JobContext
from shared.errors import FacecastError, JobCancelled
from shared.protocol import ErrorCode, MsgType, error_body
from shared.protocol.constants import MAX_CREDIT
from shared.protocol.shm import ShmArena, ShmRef

from .slots import FairScheduler

log = logging.getLogger("facecast.server")

#: Bytes of one client's messages the server may hold (queued, or in ZeroMQ but not yet
#: written to the socket) before that client's jobs wait.
CLIENT_SEND_BUDGET = 64 * 1024 * 1024


class SendBudget:
    """The bytes one client's messages hold in the server, shared by all its jobs.

    A job takes its message's payload bytes before queueing it and the loop gives them
    back once ZeroMQ has released the message. One message always fits when nothing is
    held, so a frame larger than the budget still goes (alone). The condition is the
    jobs' own: they wait on it for credit, room in the budget or a cancel."""

    def __init__(self, limit: int = CLIENT_SEND_BUDGET) -> None:
        self.limit = int(limit)
        self.held = 0
        self.cond = threading.Condition()

    def fits(self, nbytes: int) -> bool:
        return self.held == 0 or self.held + nbytes <= self.limit

    def give_back(self, nbytes: int) -> None:
        if nbytes:
            with self.cond:
                self.held -= nbytes
                self.cond.notify_all()


@dataclass
class Outgoing:
    """A message a worker wants the loop to send for ``job``.

    ``body`` None on a PROGRESS means "the context's latest progress" (coalesced).
    ``nbytes`` is what it counts against the job's send budget until ZeroMQ has it."""

    job: str
    type: str
    body: dict | None
    arrays: list[Any] = field(default_factory=list)
    nbytes: int = 0


class Outbox:
    """Thread-safe queue from job threads to the loop; a put wakes the loop's poller."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def put(self, item: Outgoing) -> None:
        self._queue.put(item)
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the loop already has wake-ups pending (or is shutting down)

    def drain(self) -> list[Outgoing]:
        try:
            while self.wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        self.wake_r.close()
        self._wake_w.close()


class ThreadJobContext(JobContext):
    """The context of one job run on its own thread."""

    def __init__(self, job_id: str, params: dict, arrays: list[np.ndarray], credit: int,
                 outbox: Outbox, *, client: str = "", scheduler: FairScheduler | None = None,
                 arena: ShmArena | None = None, budget: SendBudget | None = None) -> None:
        self.job_id = job_id
        self.params = params
        self.arrays = arrays
        self.client = client
        self._outbox = outbox
        self._scheduler = scheduler
        self._arena = arena
        self.budget = budget or SendBudget()
        self._credit = min(MAX_CREDIT, max(0, credit))
        self._cond = self.budget.cond  # one client's jobs share it
        self._cancel = threading.Event()
        self._holds_slot = False
        self._progress: dict | None = None
        self._progress_queued = False
        self.started = threading.Event()
        #: queued (waiting for a compute slot) | running | waiting (for the client) | ended
        self.state = "queued"
        self.last_fraction = 0.0
        self.last_message = ""

    # -- called by the loop thread ---------------------------------------------------
    def add_credit(self, n: int) -> None:
        with self._cond:
            self._credit = min(MAX_CREDIT, self._credit + n)
            self._cond.notify_all()

    def cancel(self) -> None:
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()
        if self._scheduler is not None:
            self._scheduler.wake()

    def sent(self, nbytes: int) -> None:
        """ZeroMQ let go of ``nbytes`` of this job's payload (or it will never be sent)."""
        self.budget.give_back(nbytes)

    def take_progress(self) -> dict:
        with self._cond:
            self._progress_queued = False
            body = self._progress or {"fraction": self.last_fraction, "message": ""}
            self._progress = None
            return body

    # -- called by the executor ------------------------------------------------------
    def begin(self) -> None:
        """Take a compute slot (cheap jobs have no scheduler and start at once)."""
        self._take_slot()
        self.state = "running"
        self.started.set()

    def end(self) -> None:
        self._drop_slot()
        self.state = "ended"

    # -- called by the job -------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, fraction: float, message: str = "") -> None:
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            fraction = self.last_fraction
        fraction = min(max(fraction, 0.0), 1.0) if fraction == fraction else 0.0
        body = {"fraction": fraction, "message": str(message)[:200]}
        with self._cond:
            self.last_fraction, self.last_message = fraction, body["message"]
            self._progress = body
            if self._progress_queued:
                return  # the loop has not sent the last one yet: it will send this instead
            self._progress_queued = True
        self._outbox.put(Outgoing(self.job_id, MsgType.PROGRESS, None))

    def result(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        self._yield_slot()
        self._send(MsgType.RESULT, body, arrays)

    def frame(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        self._yield_slot()
        self._wait_for(lambda: self._credit > 0)
        with self._cond:
            self._credit -= 1
        self._send(MsgType.FRAME, body, arrays)

    # -- internals -----------------------------------------------------------------------
    def _send(self, type_: str, body: dict, arrays: Sequence[np.ndarray]) -> None:
        payload: list[Any] = []
        nbytes = 0
        for arr in arrays:
            ref = self._arena.share(arr) if self._arena is not None else None
            if isinstance(ref, ShmRef):
                payload.append(ref)
            else:
                arr = np.asarray(arr)
                payload.append(arr)
                nbytes += arr.nbytes
        budget = self.budget

        def take() -> None:
            budget.held += nbytes

        # One message always fits when nothing is held, so a huge frame cannot wedge.
        self._wait_for(lambda: budget.fits(nbytes), then=take)
        self._outbox.put(Outgoing(self.job_id, type_, body, payload, nbytes))
        # Return when a message like this one would fit again: a job does not make its
        # next frame (more memory) while the client is not taking this one.
        self._wait_for(lambda: budget.held + nbytes <= budget.limit or budget.held == 0)

    def _wait_for(self, ready: Callable[[], bool],
                  then: Callable[[], None] | None = None) -> None:
        """Wait (compute slot given back) until ``ready()``, then call ``then()`` under
        the same lock; raise if cancelled."""
        paused = False
        with self._cond:
            while not ready() and not self._cancel.is_set():
                if not paused:
                    paused = True
                    self.state = "waiting"
                    self._drop_slot()
                self._cond.wait(0.5)
            cancelled = self._cancel.is_set()
            if not cancelled and then is not None:
                then()
        if cancelled:
            raise JobCancelled()
        if paused:
            self._take_slot()
            self.state = "running"

    def _yield_slot(self) -> None:
        """Between frames, let a waiting client's job compute (fair time slicing)."""
        if self._holds_slot and self._scheduler is not None and self._scheduler.contended():
            self._drop_slot()
            self._take_slot()

    def _take_slot(self) -> None:
        if self._scheduler is None or self._holds_slot:
            return
        if not self._scheduler.acquire(self.client, self._cancel.is_set):
            raise JobCancelled()
        self._holds_slot = True

    def _drop_slot(self) -> None:
        if self._scheduler is not None and self._holds_slot:
            self._holds_slot = False
            self._scheduler.release()


class ThreadExecutor:
    """Runs each job on a thread of its own; the final reply always goes to the outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def submit(self, job: Job, ctx: ThreadJobContext) -> None:
        threading.Thread(target=self._run, args=(job, ctx), daemon=True,
                         name=f"job-{job.kind}-{ctx.job_id[:8]}").start()

    def _run(self, job: Job, ctx: ThreadJobContext) -> None:
        started = time.monotonic()
        try:
            ctx.begin()
            if ctx.cancelled:
                raise JobCancelled()
            body: dict[str, Any] = job.run(ctx) or {}
            final = Outgoing(ctx.job_id, MsgType.DONE, body)
        except JobCancelled:
            final = Outgoing(ctx.job_id, MsgType.CANCELLED, {})
        except FacecastError as exc:
            final = Outgoing(ctx.job_id, MsgType.ERROR, exc.to_dict())
        except Exception as exc:
            log.error("job %s (%s) crashed:\n%s", ctx.job_id[:8], job.kind,
                      traceback.format_exc())
            final = Outgoing(ctx.job_id, MsgType.ERROR, error_body(
                ErrorCode.INTERNAL, f"the backend failed in {job.kind}: "
                f"{exc.__class__.__name__}: {str(exc)[:200]} — see the backend log; report "
                "it if it repeats", retryable=False))
        finally:
            ctx.end()
        log.debug("job %s (%s) ended after %.2f s: %s", ctx.job_id[:8], job.kind,
                  time.monotonic() - started, final.type)
        self._outbox.put(final)
