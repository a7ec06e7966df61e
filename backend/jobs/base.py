"""The job interface that animate, render and test jobs plug into.

A job sees only a :class:`JobContext`: its parameters and input arrays, and calls to
report progress, send partial results, stream credit-gated frames and check for
cancellation. Nothing in it touches sockets, so the same job class can run in a local
thread (:mod:`backend.server.executor`) or, later, inside a Ray actor whose context
forwards these calls to the socket loop — the protocol does not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from shared.errors import JobCancelled


class JobContext(ABC):
    """What a running job may do; implemented by the executor."""

    job_id: str
    params: dict
    arrays: list[np.ndarray]

    @abstractmethod
    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1] (not credit-gated; cheap; may be coalesced)."""

    @abstractmethod
    def result(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        """Send a partial result now (not credit-gated; keep these few and small)."""

    @abstractmethod
    def frame(self, body: dict, arrays: Sequence[np.ndarray] = ()) -> None:
        """Stream one frame; blocks until the client has granted credit.

        Raises :class:`JobCancelled` if the job is cancelled while waiting.
        """

    @property
    @abstractmethod
    def cancelled(self) -> bool:
        """True once the client asked to cancel (or vanished)."""

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled()


class Job(ABC):
    """A kind of work the server offers. Subclasses set ``kind`` and implement ``run``."""

    kind: ClassVar[str]
    description: ClassVar[str] = ""
    # Optional abilities a client may rely on (e.g. ``"text"``: the animate job aligns a
    # dialogue text). Listed per kind in WELCOME and ``info`` so a newer add-on can tell
    # what an older backend understands, and say so instead of sending params it ignores.
    features: ClassVar[tuple[str, ...]] = ()
    # A cheap job (``info``: a dict of facts) runs at once on its own thread, without
    # waiting for a compute slot, so it is answered even when every slot is busy.
    cheap: ClassVar[bool] = False

    @abstractmethod
    def run(self, ctx: JobContext) -> dict[str, Any]:
        """Do the work; the returned dict is the body of the final DONE reply.

        Raise :class:`shared.errors.FacecastError` for problems the user can fix (sent as
        ERROR with its code and message), :class:`JobCancelled` to stop early.
        """
