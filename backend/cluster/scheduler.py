"""One render job's frames from the actors, strictly in order and exactly once.

The job's frames are cut into chunks of ``chunk_frames``. At most ``window`` chunks are
in flight or finished-but-not-yet-sent at a time, earliest first, each on one actor as a
Ray streaming generator. The gateway takes frames only from the head chunk and only when
the job asks for the next one — which it does after ``ctx.frame`` returned, i.e. after
the client granted credit — so finished frames wait in the object store, at most
``window * chunk_frames`` of them, never an unbounded pile (back-pressure reaches the
actors through the window).

Faults: when a chunk's actor dies (killed, node lost, out of memory) or a finished
frame is lost with its node, the chunk is submitted again to another actor from its
first frame not yet delivered; the frames already delivered are skipped. Every frame is
a pure function of the subject's bytes (content hash), its camera and its conditioning
(the renderer has no random state and a fixed ray chunking, and renders bit-identical
frames at any thread count — see the cluster tests), so the re-rendered frames are the
ones the lost actor would have sent. A chunk fails the job after ``max_attempts``
actor losses; no actor for ``actor_timeout_s`` means the cluster is gone: a retryable
error after the frames already sent.

Cancel: the scheduler polls the job's ``cancelled`` flag while it waits and
``ray.cancel``-s every task of the job on close; actors check the flag between frames.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.camera import CameraView
from shared.errors import FacecastError, InputError, JobCancelled

from .actors import SubjectDoesNotFit, slice_conditioning
from .pool import ActorPool, ActorSlot, is_actor_loss

log = logging.getLogger("facecast.cluster")
POLL_S = 0.05


class ClusterUnavailable(FacecastError):
    """The cluster cannot serve (unreachable, or no actor left): worth retrying later."""

    code = "unavailable"

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem, fix, retryable=True)


@dataclass(frozen=True)
class SchedulePolicy:
    chunk_frames: int = 4
    window: int = 4  # chunks in flight or buffered
    max_attempts: int = 3  # actor losses one chunk may suffer before the job fails
    actor_timeout_s: float = 60.0  # no actor at all for this long: the cluster is gone


@dataclass(eq=False)
class Chunk:
    start: int  # first frame not yet delivered
    stop: int
    attempts: int = 0
    slot: ActorSlot | None = None
    stream: Any = None  # ray.ObjectRefGenerator while submitted
    done: Any = None  # concurrent.futures.Future of the task's end


@dataclass
class StreamStats:
    frames: int = 0
    chunks: int = 0
    resubmitted: int = 0  # chunks sent again after an actor loss
    actors_used: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {"frames": self.frames, "chunks": self.chunks,
                "resubmitted": self.resubmitted, "actors_used": len(self.actors_used)}


class OrderedFrames:
    """Iterator of ``(index, rgba, depth)`` for frames ``0..n-1``, in order."""

    def __init__(self, pool: ActorPool, package: tuple[str, Any], views: list[CameraView],
                 cond, fp16: bool, policy: SchedulePolicy,
                 cancelled: Callable[[], bool] = lambda: False, *, payload) -> None:
        self._pool = pool
        self._digest, self._package_ref = package
        self._views, self._cond, self._fp16 = views, cond, fp16
        self._payload = payload  # the render's watermark, applied by the actors
        self._policy = policy
        self._cancelled = cancelled
        n, c = len(views), max(1, policy.chunk_frames)
        self._chunks: deque[Chunk] = deque(Chunk(a, min(a + c, n)) for a in range(0, n, c))
        self.stats = StreamStats(chunks=len(self._chunks))
        self._refused: set[str] = set()  # actors that cannot hold this job's subject
        self._refusal = ""
        self._closed = False

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[int, np.ndarray, np.ndarray]:
        import ray

        while True:
            if self._closed or not self._chunks:
                raise StopIteration
            self._check_cancel()
            self._reap_failures()
            self._fill()
            head = self._chunks[0]
            if head.stream is None:
                self._wait_for_actor(head)
                continue
            ready, _ = ray.wait([head.stream], timeout=POLL_S)
            if not ready:
                continue
            try:
                ref = next(head.stream)
                index, rgba, depth = ray.get(ref)
            except StopIteration:
                # The task ended early without an error: it was cancelled or its actor
                # is going away; render the rest elsewhere.
                self._retry(head, None)
                continue
            except Exception as exc:
                self._on_failure(head, exc)
                continue
            if index != head.start:
                raise RuntimeError(f"render actor sent frame {index}, expected {head.start}")
            head.start += 1
            if head.start >= head.stop:
                self._chunks.popleft()
            self.stats.frames += 1
            return index, rgba, depth

    # -- submitting -------------------------------------------------------------------
    def _fill(self) -> None:
        for chunk in list(self._chunks)[:self._policy.window]:
            if chunk.stream is not None:
                continue
            slot = self._pool.acquire(exclude=self._refused)
            if slot is None:
                return
            self._submit(chunk, slot)

    def _submit(self, chunk: Chunk, slot: ActorSlot) -> None:
        a, b = chunk.start, chunk.stop
        chunk.slot = slot
        chunk.stream = slot.handle.render.options(num_returns="streaming").remote(
            self._digest, [self._package_ref], self._views[a:b],
            slice_conditioning(self._cond, a, b), a, self._fp16, self._payload)
        chunk.done = chunk.stream.completed().future()
        chunk.done.add_done_callback(lambda fut, s=slot: self._pool.task_ended(
            s, _exception(fut)))
        self.stats.actors_used.add(slot.name)

    def _wait_for_actor(self, head: Chunk) -> None:
        """No actor took the head chunk: wait for one, within the policy's bounds."""
        live = self._pool.live_names()
        if live and live <= self._refused:
            raise InputError(
                f"no render actor of the cluster can take this subject ({len(live)} "
                f"tried; last: {self._refusal})", "give the actors more memory (facecast "
                "serve --actor-memory) or add bigger workers to the cluster")
        deadline = time.monotonic() + self._policy.actor_timeout_s
        while head.stream is None:
            self._check_cancel()
            slot = self._pool.acquire(exclude=self._refused)
            if slot is not None:
                self._submit(head, slot)
                return
            if time.monotonic() > deadline:
                raise ClusterUnavailable(
                    f"no render actor of the cluster became available for "
                    f"{self._policy.actor_timeout_s:.0f} s (the cluster may be gone); "
                    f"{self.stats.frames} frames were sent",
                    "check the Ray cluster (`ray status`), then render again — frames "
                    "already received are kept")
            self._pool.wait_change(POLL_S)

    # -- failures ---------------------------------------------------------------------
    def _reap_failures(self) -> None:
        """Resubmit chunks whose task already failed, before the head reaches them."""
        for chunk in list(self._chunks)[1:self._policy.window]:
            if chunk.done is not None and chunk.done.done():
                exc = _exception(chunk.done)
                if exc is not None:
                    self._on_failure(chunk, exc)

    def _on_failure(self, chunk: Chunk, exc: BaseException) -> None:
        import ray.exceptions as rex

        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, SubjectDoesNotFit):
            log.warning("%s refused the subject: %s", chunk.slot.name, cause.message)
            self._refused.add(chunk.slot.name)
            self._refusal = cause.problem
            self._reset(chunk)
            return
        if isinstance(cause, FacecastError):
            raise cause  # the user's input: the same on every actor
        if isinstance(exc, rex.TaskCancelledError) and self._cancelled():
            raise JobCancelled()
        if is_actor_loss(exc) or isinstance(exc, rex.ObjectLostError
                                            | rex.TaskCancelledError):
            self._retry(chunk, exc)
            return
        if isinstance(exc, rex.RaySystemError | ConnectionError):
            raise ClusterUnavailable(f"the Ray cluster failed during this job: {exc}; "
                                     f"{self.stats.frames} frames were sent",
                                     "check the Ray cluster, then render again") from exc
        raise exc

    def _retry(self, chunk: Chunk, exc: BaseException | None) -> None:
        chunk.attempts += 1
        log.warning("chunk of frames %d-%d lost on %s (%s); %s", chunk.start, chunk.stop - 1,
                    chunk.slot.name if chunk.slot else "?",
                    type(exc).__name__ if exc else "ended early",
                    "giving up" if chunk.attempts >= self._policy.max_attempts
                    else "rendering it again elsewhere")
        if chunk.attempts >= self._policy.max_attempts:
            raise ClusterUnavailable(
                f"frames {chunk.start}-{chunk.stop - 1} were lost with "
                f"{chunk.attempts} render actors in a row; {self.stats.frames} frames "
                "were sent", "check the cluster's workers (memory, GPUs), then render "
                "again — frames already received are kept")
        self.stats.resubmitted += 1
        self._reset(chunk)

    def _reset(self, chunk: Chunk) -> None:
        stream, chunk.stream, chunk.done, chunk.slot = chunk.stream, None, None, None
        if stream is not None:
            _cancel(stream)

    def _check_cancel(self) -> None:
        if self._cancelled():
            self.close()
            raise JobCancelled()

    # -- ending -----------------------------------------------------------------------
    def close(self) -> None:
        """Cancel every task of this job still running; actors free within a frame."""
        if self._closed:
            return
        self._closed = True
        for chunk in self._chunks:
            if chunk.stream is not None:
                _cancel(chunk.stream)
        self._chunks.clear()


def _exception(fut) -> BaseException | None:
    try:
        return fut.exception()
    except BaseException as exc:  # the future itself was cancelled
        return exc


def _cancel(stream) -> None:
    import ray

    try:
        ray.cancel(stream)
    except Exception as exc:  # the task already ended, or the cluster is gone
        log.debug("cancel: %s", exc)
