"""The render actors of one gateway: which are idle, which are busy, replacing lost ones.

Actors are created when the gateway joins the cluster (one per GPU, or one per
``cpus_per_actor`` CPUs) and shared by all render jobs. A job's scheduler takes an idle
actor for one chunk and the actor comes back when that chunk's task ends, so concurrent
jobs interleave chunk by chunk. An actor whose task died with its worker (killed, node
lost, out of memory) is dropped and a replacement is requested; Ray places it wherever
resources allow. A pool below its target keeps refilling for as long as this process
is attached to Ray: the first ``target`` replacements in a row start at once, later ones
wait with an exponential back-off (up to ``MAX_BACKOFF_S``), so a broken node cannot
make the pool spin and a burst of losses does not leave it short for good. An actor
that served for ``STABLE_S`` resets the back-off. ``describe()`` says when the next
attempt is due.

Ray reports task ends on its own callback thread, where calling back into Ray
(``ray.kill``, creating an actor) deadlocks; those callbacks only update the pool's state
and leave the Ray calls to the pool's maintenance thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("facecast.cluster")

#: Longest wait between refill attempts of a pool below its target.
MAX_BACKOFF_S = 30.0
#: An actor ready this long before it was lost counts as a healthy one (back-off reset).
STABLE_S = 60.0


@dataclass(frozen=True)
class ActorSpec:
    """What each render actor asks Ray for."""

    num_cpus: float
    num_gpus: float
    memory: int | None  # bytes (Ray's logical ``memory`` resource), None: no reservation


@dataclass(eq=False)
class ActorSlot:
    handle: Any  # ray.actor.ActorHandle
    name: str
    ready: bool = False
    busy: bool = False
    alive: bool = True
    info: dict = field(default_factory=dict)
    ready_at: float = 0.0


def is_actor_loss(exc: BaseException) -> bool:
    """True when ``exc`` means the actor (its worker process or node) is gone."""
    import ray.exceptions as rex

    return isinstance(exc, rex.RayActorError | rex.WorkerCrashedError
                      | rex.NodeDiedError | rex.OutOfMemoryError)


class ActorPool:
    def __init__(self, spec: ActorSpec, target: int) -> None:
        import ray

        from .actors import RenderActor

        self.spec = spec
        self.target = target
        options: dict[str, Any] = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus,
                                   "max_restarts": 0, "max_task_retries": 0}
        if spec.memory:
            options["memory"] = spec.memory
        self._remote = ray.remote(RenderActor).options(**options)
        self._cond = threading.Condition()
        self._slots: list[ActorSlot] = []
        self._idle: deque[ActorSlot] = deque()
        self._losses = 0  # actors lost in a row without one serving STABLE_S
        self._next_try = 0.0  # monotonic time of the next refill attempt
        self._counter = 0
        self._closed = False
        self._chores: queue.SimpleQueue = queue.SimpleQueue()  # Ray calls off callbacks
        self._maintainer = threading.Thread(target=self._maintain, daemon=True,
                                            name="facecast-actor-pool")
        self._maintainer.start()
        for _ in range(target):
            self._spawn()

    def _maintain(self) -> None:
        """Run Ray calls off Ray's callback threads; refill when a back-off ends."""
        while True:
            try:
                chore = self._chores.get(timeout=self._refill_wait())
            except queue.Empty:
                chore = self._refill
            if chore is None:
                return
            try:
                chore()
            except Exception:
                log.exception("actor pool upkeep failed")

    # -- life of actors ---------------------------------------------------------------
    def _refill_wait(self) -> float | None:
        """Seconds until the maintainer should try to refill (None: the pool is full)."""
        with self._cond:
            if self._closed or len(self._slots) >= self.target:
                return None
            return max(0.05, self._next_try - time.monotonic())

    def _refill(self) -> None:
        """Start actors up to the target, unless a back-off is running or Ray is gone."""
        import ray

        with self._cond:
            missing = self.target - len(self._slots)
            due = time.monotonic() >= self._next_try
        if self._closed or missing <= 0 or not due:
            return
        if not ray.is_initialized():  # detached: nothing to refill into
            with self._cond:
                self._next_try = time.monotonic() + MAX_BACKOFF_S
            return
        log.info("refilling the render pool: starting %d actor(s)", missing)
        for _ in range(missing):
            self._spawn()

    def _spawn(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._counter += 1
            slot = ActorSlot(self._remote.remote(self.spec.memory), f"render-{self._counter}")
            self._slots.append(slot)
        slot.handle.ready.remote().future().add_done_callback(
            lambda fut, s=slot: self._on_ready(s, fut))

    def _on_ready(self, slot: ActorSlot, fut) -> None:
        exc = fut.exception()
        with self._cond:
            if exc is None and slot.alive:
                slot.ready, slot.info = True, fut.result()
                slot.ready_at = time.monotonic()
                self._idle.append(slot)
                self._cond.notify_all()
                log.info("%s ready on %s (%s)", slot.name, slot.info.get("host"),
                         slot.info.get("device"))
                return
        if exc is not None:
            log.warning("%s could not start: %s", slot.name, exc)
            self._drop(slot)

    def _drop(self, slot: ActorSlot) -> None:
        """Forget a lost actor now; kill it for good and refill on the upkeep thread, at
        once for the first ``target`` losses in a row, then after a growing back-off."""
        now = time.monotonic()
        with self._cond:
            if not slot.alive:
                return
            slot.alive = slot.busy = False
            if slot in self._idle:
                self._idle.remove(slot)
            self._slots.remove(slot)
            stable = slot.ready and now - slot.ready_at >= STABLE_S
            self._losses = 1 if stable else self._losses + 1
            delay = 0.0 if self._losses <= self.target else min(
                MAX_BACKOFF_S, 2.0 ** (self._losses - self.target - 1))
            self._next_try = max(self._next_try, now + delay)
            self._cond.notify_all()
        log.warning("%s lost; a replacement starts in %.0f s", slot.name, delay)
        self._chores.put(lambda: self._replace(slot))

    def _replace(self, slot: ActorSlot) -> None:
        import ray

        try:
            ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone
            pass
        self._refill()

    def wait_ready(self, timeout_s: float) -> int:
        """Wait until every actor started (or the timeout); the number ready."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                ready = sum(s.ready for s in self._slots)
                left = deadline - time.monotonic()
                if ready >= self.target or left <= 0:
                    return ready
                self._cond.wait(min(left, 0.1))

    # -- lending to jobs --------------------------------------------------------------
    def acquire(self, exclude: set[str] = frozenset()) -> ActorSlot | None:
        """An idle actor not in ``exclude`` (names), or None right now."""
        with self._cond:
            for slot in self._idle:
                if slot.name not in exclude:
                    self._idle.remove(slot)
                    slot.busy = True
                    return slot
        return None

    def wait_change(self, timeout_s: float) -> None:
        """Sleep until an actor comes back, starts or dies (or the timeout)."""
        with self._cond:
            self._cond.wait(timeout_s)

    def task_ended(self, slot: ActorSlot, exc: BaseException | None) -> None:
        """A chunk's task on ``slot`` ended (``exc``: how it failed, if it did)."""
        if exc is not None and is_actor_loss(exc):
            self._drop(slot)
            return
        with self._cond:
            if slot.alive and slot.busy:
                slot.busy = False
                self._idle.append(slot)
                self._cond.notify_all()

    # -- reporting and shutdown -------------------------------------------------------
    def live_names(self) -> set[str]:
        with self._cond:
            return {s.name for s in self._slots if s.ready}

    def handles(self, busy: bool | None = None) -> dict[str, Any]:
        """Ready actors by name, all or only the busy (True) or idle (False) ones (for
        operators' tools: per-actor stats, ``ray.kill`` drills)."""
        with self._cond:
            return {s.name: s.handle for s in self._slots
                    if s.ready and (busy is None or s.busy == busy)}

    def describe(self) -> dict:
        with self._cond:
            ready = [s for s in self._slots if s.ready]
            devices: dict[str, int] = {}
            for s in ready:
                dev = s.info.get("device", "?")
                devices[dev] = devices.get(dev, 0) + 1
            missing = self.target - len(self._slots)
            refill = None
            if missing > 0 and not self._closed:
                refill = {"missing": missing, "losses_in_a_row": self._losses,
                          "next_try_s": round(max(0.0, self._next_try - time.monotonic()),
                                              1)}
            return {"actors": len(ready), "busy": sum(s.busy for s in ready),
                    "starting": len(self._slots) - len(ready), "target": self.target,
                    "refill": refill, "devices": devices,
                    "per_actor": {"num_cpus": self.spec.num_cpus,
                                  "num_gpus": self.spec.num_gpus,
                                  "memory": self.spec.memory}}

    def close(self) -> None:
        import ray

        with self._cond:
            self._closed = True
            slots, self._slots = self._slots, []
            self._idle.clear()
            self._cond.notify_all()
        self._chores.put(None)
        self._maintainer.join(10)
        for slot in slots:
            slot.alive = False
            try:
                ray.kill(slot.handle, no_restart=True)
            except Exception:
                pass
