"""One error type for every user-facing failure.

Every bad input must tell the user what is wrong *and* what to do about it, on the CLI,
in Blender's panel and over the wire. ``FacecastError`` carries both, plus a stable code
and a retryable flag so the protocol can send it as an ERROR reply unchanged.
"""

from __future__ import annotations


class FacecastError(Exception):
    """A failure the user can act on: ``problem`` says what went wrong, ``fix`` what to do."""

    code: str = "error"

    def __init__(self, problem: str, fix: str = "", *, code: str | None = None,
                 retryable: bool = False) -> None:
        self.problem = problem
        self.fix = fix
        if code is not None:
            self.code = code
        self.retryable = retryable
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.problem} — {self.fix}" if self.fix else self.problem

    def __reduce__(self):
        # Survive pickling with problem, fix, code and retryable intact (errors raised in
        # a Ray actor reach the gateway as the same error).
        return (_rebuild, (type(self), self.problem, self.fix, self.code, self.retryable))

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "problem": self.problem,
                "fix": self.fix, "retryable": self.retryable}


def _rebuild(cls: type[FacecastError], problem: str, fix: str, code: str,
             retryable: bool) -> FacecastError:
    return cls(problem, fix, code=code, retryable=retryable)


class InputError(FacecastError):
    """The user's input (audio, emotion track, camera, conditioning...) is unusable."""

    code = "bad_input"


class ProtocolError(FacecastError):
    """A message broke the wire protocol (framing, signature, version, limits)."""

    code = "protocol"


class BackendUnavailable(FacecastError):
    """The backend could not be reached or died mid-job."""

    code = "unavailable"


class JobCancelled(Exception):
    """Raised inside a job (and the renderer's cluster stream) when its client cancelled
    it or went away. Not a :class:`FacecastError`: a cancel is no failure to report."""
