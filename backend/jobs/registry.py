"""Which job kinds the server offers: a name -> Job class table."""

from __future__ import annotations

from .base import Job

_JOBS: dict[str, type[Job]] = {}


def register(job_cls: type[Job]) -> type[Job]:
    """Class decorator adding a job kind; later issues register animate and render here."""
    if job_cls.kind in _JOBS and _JOBS[job_cls.kind] is not job_cls:
        raise ValueError(f"job kind {job_cls.kind!r} registered twice")
    _JOBS[job_cls.kind] = job_cls
    return job_cls


def get(kind: str) -> type[Job] | None:
    _load_builtin()
    return _JOBS.get(kind)


def kinds() -> dict[str, str]:
    """Job kinds with their one-line descriptions."""
    _load_builtin()
    return {k: c.description for k, c in sorted(_JOBS.items())}


def features() -> dict[str, list[str]]:
    """Job kinds with the optional features each supports (see ``Job.features``)."""
    _load_builtin()
    return {k: list(c.features) for k, c in sorted(_JOBS.items())}


def _load_builtin() -> None:
    # Imported here so that importing the registry never pulls in torch-heavy jobs early.
    from . import animate, info, render, synthetic_frames  # noqa: F401
