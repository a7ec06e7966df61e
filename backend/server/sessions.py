"""Per-client state on the server: route, liveness and the jobs each client owns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from backend.jobs.base import Job

from .executor import ThreadJobContext


@dataclass
class JobRecord:
    id: str
    kind: str
    session: str
    job: Job
    ctx: ThreadJobContext
    submitted: float = field(default_factory=time.monotonic)
    final_sent: bool = False


@dataclass
class Session:
    """One client, known by the session id it chose (its ROUTER identity may change
    when it reconnects; the latest identity that sent a valid message is the route)."""

    id: str
    identity: bytes
    client: str
    version: tuple[int, int]
    last_seen: float = field(default_factory=time.monotonic)
    jobs: dict[str, JobRecord] = field(default_factory=dict)

    def touch(self, identity: bytes) -> None:
        self.identity = identity
        self.last_seen = time.monotonic()

    def active(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if not j.final_sent]
