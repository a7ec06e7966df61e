"""Runs jobs away from the socket loop: a thread pool and its job contexts.

Workers never touch the ROUTER socket (ZeroMQ sockets are not thread-safe). They put
outgoing messages on a queue and wake the loop through an inproc PUSH socket; the loop
signs and sends. A Ray-actor executor would implement the same ``submit``/``cancel``
contract with a context that forwards these calls.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from backend.jobs.base import Job, JobCancelled, JobContext
from shared.errors import FacecastError
from shared.protocol import ErrorCode, MsgType, error_body

log = logging.getLogger("facecast.server")

WAKE_ADDRESS = "inproc://facecast-outbox"
MAX_CREDIT = 4096


@dataclass
class Outgoing:
    """A message a worker wants the loop to send for ``job``."""

    job: str
    type: str
    body: dict
    arrays: list[np.ndarray] = field(default_factory=list)


class ThreadJobContext(JobContext):
    def __init__(self, job_id: str, params: dict, arrays: list[np.ndarray], credit: int,
                 outbox: Outbox) -> None:
        self.job_id = job_id
        self.params = params
        self.arrays = arrays
        self._outbox = outbox
        self._credit = credit
        self._cond = threading.Condition()
        self._cancel = threading.Event()
        self.started = threading.Event()

    # called by the loop thread
    def add_credit(self, n: int) -> None:
        with self._cond:
            self._credit = min(MAX_CREDIT, self._credit + n)
            self._cond.notify_all()

    def cancel(self) -> None:
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()

    # called by the job
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, fraction: float, message: str = "") -> None:
        self._outbox.put(Outgoing(self.job_id, MsgType.PROGRESS,
                                  {"fraction": float(min(max(fraction, 0.0), 1.0)),
                                   "message": message}))

    def result(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        self._outbox.put(Outgoing(self.job_id, MsgType.RESULT, body, list(arrays)))

    def frame(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        with self._cond:
            while self._credit <= 0 and not self._cancel.is_set():
                self._cond.wait(0.5)
            if self._cancel.is_set():
                raise JobCancelled()
            self._credit -= 1
        self._outbox.put(Outgoing(self.job_id, MsgType.FRAME, body, list(arrays)))


class Outbox:
    """Thread-safe queue from workers to the loop, with a ZeroMQ wake-up per put."""

    def __init__(self, context: zmq.Context) -> None:
        self._queue: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self._context = context
        self._local = threading.local()
        self._sockets: list[zmq.Socket] = []
        self._lock = threading.Lock()

    def put(self, item: Outgoing) -> None:
        self._queue.put(item)
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(WAKE_ADDRESS)
            self._local.sock = sock
            with self._lock:
                self._sockets.append(sock)
        try:
            sock.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the loop is already awake with wake-ups queued

    def drain(self) -> list[Outgoing]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close(linger=0)
            self._sockets.clear()


class ThreadExecutor:
    """Runs jobs on a fixed pool of threads; the final reply always goes to the outbox."""

    def __init__(self, outbox: Outbox, workers: int = 2) -> None:
        self._outbox = outbox
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")

    def submit(self, job: Job, ctx: ThreadJobContext) -> None:
        self._pool.submit(self._run, job, ctx)

    def _run(self, job: Job, ctx: ThreadJobContext) -> None:
        ctx.started.set()
        try:
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
                f"{exc.__class__.__name__}: {exc} — see the backend log; report it if it "
                "repeats", retryable=False))
        self._outbox.put(final)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)
