"""``info``: what this backend is and can do (device, versions, job kinds, subjects)."""

from __future__ import annotations

import platform
import time
from typing import Any

from shared import __version__
from shared.protocol import MAJOR_VERSION, MINOR_VERSION

from . import registry
from .base import Job, JobContext

_STARTED = time.time()


def device_info() -> dict[str, Any]:
    """Torch version and the compute device jobs will use."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return {"torch": None, "device": "cpu"}
    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "device": "cuda" if cuda else "cpu",
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cpu_threads": torch.get_num_threads()}


@registry.register
class InfoJob(Job):
    kind = "info"
    description = "Describe the backend: versions, device, job kinds"
    cheap = True

    def run(self, ctx: JobContext) -> dict[str, Any]:
        return {"facecast": __version__, "protocol": [MAJOR_VERSION, MINOR_VERSION],
                "python": platform.python_version(), "platform": platform.platform(),
                "uptime_s": time.time() - _STARTED, "jobs": registry.kinds(),
                "features": registry.features(), "subjects": subjects_info(),
                **device_info(), "cluster": cluster_info()}


def cluster_info() -> dict[str, Any] | None:
    """The render actors and devices behind this backend (``serve --cluster``), or None."""
    from backend.cluster.runtime import active_cluster

    cluster = active_cluster()
    return None if cluster is None else cluster.describe()


def subjects_info() -> list[dict[str, Any]]:
    """The subjects this backend can render, each with its consent line and, when its
    manifest records it, its footage's expression coverage (one line)."""
    from backend.provenance.consent import consent_line, consent_of, installed_subjects
    from backend.subject.coverage import Coverage

    def coverage(m: dict) -> dict[str, Any]:
        try:
            return {"coverage": Coverage.from_dict(m["coverage"]).summary()}
        except (KeyError, TypeError, ValueError):
            return {}

    return [{"name": name, "consent": consent_line(m), "consent_recorded":
             consent_of(m) is not None, **coverage(m)} for name, _, m in installed_subjects()]
