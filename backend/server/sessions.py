"""Per-client state on the server: the connection a session is bound to, its liveness,
its jobs, the messages waiting for room in its ZeroMQ pipe, the bytes its messages hold
(its send budget) and the sequence numbers of the replies it is sent."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from backend.jobs.base import Job
from shared.protocol.shm import ShmArena, ShmReader

from .executor import Outgoing, SendBudget, ThreadJobContext

#: Replies that are not part of a job (PONG, refusals) a session may have waiting;
#: beyond this a client that sends but does not read loses them (counted in the log).
MAX_QUEUED_CONTROL = 256


@dataclass
class JobRecord:
    id: str
    kind: str
    session: str
    job: Job
    ctx: ThreadJobContext
    submitted: float = field(default_factory=time.monotonic)
    final_sent: bool = False
    #: When the loop last sent anything of this job (heartbeats start after a quiet spell).
    last_sent: float = field(default_factory=time.monotonic)


@dataclass
class InFlight:
    """A job's message ZeroMQ has taken but not yet written to the socket: its bytes stay
    counted against the client's budget until ``tracker`` says ZeroMQ let go of them."""

    tracker: Any  # zmq.MessageTracker
    nbytes: int
    ctx: ThreadJobContext


@dataclass
class Pending:
    """A message waiting for room in the session's pipe: a job's ``item`` with its
    context, or a ``control`` reply. It is signed when it first reaches the head of the
    queue, so the sequence numbers a client sees always increase."""

    item: Outgoing | None
    ctx: ThreadJobContext | None
    control: Any = None  # a Message that is not part of a job
    frames: list[Any] | None = None


@dataclass
class Session:
    """One client connection. The session id is bound to the ROUTER identity that said
    HELLO (and to its CurveZMQ public key when Curve is on): another connection cannot
    take it over, and a reconnecting client says HELLO with a fresh session id."""

    id: str
    identity: bytes
    client: str
    version: tuple[int, int]
    curve_key: str = ""
    last_seen: float = field(default_factory=time.monotonic)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    queue: deque[Pending] = field(default_factory=deque)
    queued_control: int = 0
    pong_queued: bool = False
    budget: SendBudget = field(default_factory=SendBudget)
    in_flight: deque[InFlight] = field(default_factory=deque)
    #: The last sequence number of a reply to this session (each session counts its own,
    #: so replies of two sessions on one connection never interleave out of order).
    seq: int = 0
    #: Same-host fast path (negotiated in HELLO): our segments, and the peer's.
    arena: ShmArena | None = None
    reader: ShmReader | None = None

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def owns(self, identity: bytes, curve_key: str) -> bool:
        return identity == self.identity and curve_key == self.curve_key

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def reap(self) -> None:
        """Give back the budget of messages ZeroMQ has written out."""
        while self.in_flight and self.in_flight[0].tracker.done:
            done = self.in_flight.popleft()
            done.ctx.sent(done.nbytes)

    def active(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if not j.final_sent]

    def close(self) -> None:
        if self.arena is not None:
            self.arena.close()
        if self.reader is not None:
            self.reader.close()
