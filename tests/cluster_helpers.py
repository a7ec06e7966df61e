"""Helpers for the render-farm tests: a gateway with a Ray cluster in this process, the
render job's inputs at a small size, and a reference rendering."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zmq

from backend.cluster.runtime import ClusterConfig
from backend.provenance.stamp import RenderStamp
from backend.render import render_frames
from backend.server.app import Server
from backend.server.config import ServerConfig
from backend.subject.conditioning import render_conditioning
from backend.subject.prepare import SubjectData
from backend.subject.store import load_subject, resolve_subject
from shared.camera import BlenderCamera, camera_from_dict, camera_to_dict, camera_views
from shared.protocol import BlockingClient, MsgType, load_key

FRONT = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, -0.05], [0, 0, 0, 1]])
SIZE = 48  # pixels: small, so a frame costs tens of milliseconds on a shared core


def landmarks(n: int) -> np.ndarray:
    """``n`` frames of the default subject's own held-out landmarks (cycled)."""
    pack = SubjectData.load(resolve_subject("default") / "heldout.npz")
    return pack.landmarks[np.arange(n) % len(pack.landmarks)]


def render_params(size: int = SIZE) -> dict:
    cam = BlenderCamera(lens=50.0, resolution_x=size, resolution_y=size)
    return {"subject": "default", "camera": camera_to_dict(cam, FRONT),
            "array_names": ["landmarks"]}


def reference_frames(lm: np.ndarray, size: int = SIZE, request: np.ndarray | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """What the local render job sends for ``lm`` (through the render contract, like the
    job: a subject conditioned on blendshapes gets them solved from the landmarks),
    watermark included: the job's render id hashes the views and conditioning of the
    whole ``request`` (default ``lm``), of which ``lm`` may be the first frames."""
    subject = load_subject("default")
    views = camera_views(BlenderCamera(lens=50.0, resolution_x=size, resolution_y=size),
                         FRONT, len(lm))
    request = lm if request is None else request  # the job's render id: its views + cond
    whole = render_conditioning({"landmarks": request}, subject.manifest)
    cond = whole.frames(0, len(lm))
    cam, mw = camera_from_dict(render_params(size)["camera"])
    mark = RenderStamp.for_render(subject.manifest, camera_views(cam, mw, len(request)),
                                  whole).payload
    return [(rgba, depth) for _, rgba, depth in render_frames(
        subject, views, cond, fp16=False, payload=mark)]


@contextmanager
def gateway(key_file: Path, cluster: ClusterConfig) -> Iterator[Server]:
    """An in-process ``facecast serve --cluster`` on a free loopback port."""
    server = Server(ServerConfig(address="tcp://127.0.0.1:0", key_file=key_file,
                                 client_timeout_s=5.0, cluster=cluster), zmq.Context())
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(10)
        server.ctx.term()


def connect(server: Server, key_file: Path) -> BlockingClient:
    return connect_to(server.endpoint, key_file)


def connect_to(endpoint: str, key_file: Path) -> BlockingClient:
    return BlockingClient(endpoint, key=load_key(key_file), timeout_s=10)


def frames_of(events) -> list:
    return [e for e in events if e.kind == MsgType.FRAME]
