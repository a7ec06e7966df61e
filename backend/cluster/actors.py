"""The render actor: one per GPU (or per few CPU cores), a subject loaded once, chunks of
frames streamed back in order.

An actor keeps the last few subjects it loaded, keyed by content hash
(:class:`~backend.cluster.subject_package.SubjectPackage`), so a long shot split into
many chunks loads its subject once per actor, not once per chunk. ``render`` is a Ray
streaming generator: it yields ``(index, rgba, depth)`` frame by frame and checks between
frames whether the gateway cancelled it (``ray.cancel``), so a cancel frees the actor
within one frame's time.

:func:`render_frames` is the cluster's only call into the renderer — the render service's
frame loop (``backend.render.render_frames``), the same one a local render runs — so a
change of the renderer's interface is adapted here, once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from shared.camera import CameraView
from shared.errors import FacecastError

#: Subjects an actor keeps loaded (least recently used goes first).
SUBJECTS_KEPT = 2
#: Memory an actor needs beyond the fp32 weights to render (rays, samples, the volume).
RENDER_WORKING_SET = 256 * 2 ** 20


class SubjectDoesNotFit(FacecastError):
    """This actor cannot hold the subject (its memory reservation is too small, or the
    device ran out of memory while loading it); another actor may."""

    code = "bad_input"


def render_frames(subject, views: list[CameraView], cond, fp16: bool, payload
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgba uint8 [H, W, 4], depth uint16 mm [H, W]) per frame of ``views``/``cond``:
    exactly what a local render streams for the same inputs, watermarked with ``payload``
    (:class:`backend.provenance.payload.Payload`) by the render service."""
    from backend.render import render_frames as service_frames

    for _, rgba, depth in service_frames(subject, views, cond, fp16=fp16, payload=payload):
        yield rgba, depth


def slice_conditioning(cond, start: int, stop: int):
    """The frames ``[start, stop)`` of a :class:`backend.nerf.pipeline.Conditioning`
    (every per-frame array, the torso's body pose included)."""
    return cond.frames(start, stop)


def weights_memory_needed(weights_file_bytes: int) -> int:
    """Bytes an actor needs for a subject: fp16 weights become fp32, plus rendering."""
    return 2 * weights_file_bytes + RENDER_WORKING_SET


@dataclass
class ActorStats:
    device: str
    threads: int
    memory_limit: int | None
    subject_loads: int = 0
    chunks: int = 0
    frames: int = 0
    render_s: float = 0.0  # wall time spent inside the renderer
    render_cpu_s: float = 0.0  # CPU time of this thread inside the renderer


class RenderActor:
    """Wrapped with ``ray.remote`` by :mod:`.pool`; runs in a Ray worker process."""

    def __init__(self, memory_limit: int | None = None) -> None:
        import ray
        import torch

        resources = ray.get_runtime_context().get_assigned_resources()
        threads = max(1, int(resources.get("CPU", 1)))
        torch.set_num_threads(threads)
        gpu = resources.get("GPU", 0) > 0 and torch.cuda.is_available()
        self._subjects: OrderedDict[str, object] = OrderedDict()
        self.stats = ActorStats("cuda" if gpu else "cpu", threads, memory_limit)

    def ready(self) -> dict:
        """Answers once the actor is placed and started: what it is and what it did."""
        import os
        import socket

        return {**asdict(self.stats), "host": socket.gethostname(), "pid": os.getpid(),
                "cpu_s": time.process_time(), "subjects": list(self._subjects)}

    def render(self, digest: str, package_box: list, views: list[CameraView], cond,
               start: int, fp16: bool, payload) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Stream frames ``start, start+1, ...`` of one chunk (``views``/``cond`` are the
        chunk's slices). ``package_box`` holds the subject package's object reference,
        boxed in a list so Ray does not fetch it unless this actor lacks the subject."""
        import ray

        subject = self._subject(digest, package_box[0])
        self.stats.chunks += 1
        context = ray.get_runtime_context()
        frames = render_frames(subject, views, cond, fp16, payload)
        for k in range(len(views)):
            if context.is_canceled():
                return
            t0, c0 = time.perf_counter(), time.thread_time()
            rgba, depth = next(frames)
            self.stats.render_s += time.perf_counter() - t0
            self.stats.render_cpu_s += time.thread_time() - c0
            self.stats.frames += 1
            yield start + k, rgba, depth

    def _subject(self, digest: str, package_ref):
        subject = self._subjects.get(digest)
        if subject is not None:
            self._subjects.move_to_end(digest)
            return subject
        import ray
        import torch

        from backend.subject.store import load_subject

        package = ray.get(package_ref)
        need = weights_memory_needed(package.file_size("model.pt"))
        limit = self.stats.memory_limit
        if limit is not None and need > limit:
            raise SubjectDoesNotFit(
                f"subject {package.name!r} needs about {need / 2 ** 20:.0f} MiB and this "
                f"render actor has {limit / 2 ** 20:.0f} MiB",
                "give the actors more memory (facecast serve --actor-memory) or add "
                "bigger workers to the cluster")
        while len(self._subjects) >= SUBJECTS_KEPT:
            self._subjects.popitem(last=False)
        with package.unpack() as folder:
            try:
                subject = load_subject(folder, self.stats.device)
            except (MemoryError, torch.OutOfMemoryError) as exc:
                raise SubjectDoesNotFit(
                    f"subject {package.name!r} does not fit on this render actor's "
                    f"{self.stats.device}: {exc}",
                    "free memory on the workers or add bigger ones") from None
        self._subjects[digest] = subject
        self.stats.subject_loads += 1
        return subject
