"""Compute slots handed out fairly: round-robin across clients.

Each accepted job has a thread of its own (bounded by ``--max-jobs``); the number of
jobs *computing* at once is bounded by the slots here (``--workers``). A job gives its
slot back while it waits for the client (credit, a full send queue) and takes it again
before computing on, so a job waiting for a slow reader never holds a worker. When
slots are contended, a job also yields at each frame or result it sends: the next slot
goes to the client that has waited longest in the rotation, so one client's many jobs
cannot starve another's single one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)  # identity: two tickets of one client are different waiters
class _Ticket:
    client: str
    granted: bool = False


class FairScheduler:
    """``slots`` compute slots; waiters are served one client at a time, in rotation."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one compute slot")
        self.slots = slots
        self._free = slots
        self._cond = threading.Condition()
        # client -> its waiting tickets (oldest first); dict order is the rotation.
        self._waiting: OrderedDict[str, deque[_Ticket]] = OrderedDict()

    def acquire(self, client: str, cancelled: Callable[[], bool]) -> bool:
        """Block until a slot is ours (True) or ``cancelled()`` turns true (False)."""
        with self._cond:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return True
            ticket = _Ticket(client)
            self._waiting.setdefault(client, deque()).append(ticket)
            while not ticket.granted:
                if cancelled():
                    self._withdraw(ticket)
                    return False
                self._cond.wait(0.2)
            return True

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._grant()

    def wake(self) -> None:
        """Let waiters re-check their cancellation now."""
        with self._cond:
            self._cond.notify_all()

    def contended(self) -> bool:
        return bool(self._waiting)

    def waiting(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._waiting.values())

    def _grant(self) -> None:
        while self._free > 0 and self._waiting:
            client, tickets = next(iter(self._waiting.items()))
            ticket = tickets.popleft()
            del self._waiting[client]
            if tickets:  # the client's other jobs wait for its next turn
                self._waiting[client] = tickets
            ticket.granted = True
            self._free -= 1
        self._cond.notify_all()

    def _withdraw(self, ticket: _Ticket) -> None:
        tickets = self._waiting.get(ticket.client)
        if tickets is not None and ticket in tickets:
            tickets.remove(ticket)
            if not tickets:
                del self._waiting[ticket.client]
        elif ticket.granted:  # granted while we noticed the cancel: hand it on
            self._free += 1
            self._grant()
