"""The render service: a :class:`RenderRequest` in, stamped (and signed) frames out.

Every render of a subject goes through here - the ``render`` job, ``facecast render``,
the demo (through the job), the benches' user-path frames and the cluster's Ray actors -
so the flow exists once:

1. :func:`prepare_render` checks what the request carries before any heavy work (errors
   name the user's arrays), loads the subject (or, for a cluster, only its manifest),
   turns the animation into the subject's ``Conditioning``
   (``backend.subject.conditioning``), makes one camera view per frame and the render's
   provenance stamp (``backend.provenance``).
2. :meth:`Render.frames` runs the renderer here or on a :class:`RemoteRenderer` (the
   cluster, which calls :func:`render_frames` in its actors) and yields one
   :class:`RenderedFrame` per frame: RGBA carrying the invisible watermark, depth in
   millimetres, and on request the frame's PNG with C2PA credentials.

``backend.nerf`` returns raw frames; marking and signing happen here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from backend.subject.contract import check_head_pose_frame
from shared.camera import CameraView, camera_from_dict, camera_views
from shared.errors import InputError
from shared.render_request import RenderJobRequest
from shared.render_result import RenderedFrame  # the job sends it as is (to_wire)

from ..nerf.pipeline import Conditioning, check_conditioning, head_to_camera, render_sequence
from ..provenance.credentials import Signer, encode_png
from ..provenance.payload import Payload
from ..provenance.stamp import RenderStamp
from ..provenance.watermark import mark_frame
from ..subject.conditioning import render_conditioning
from ..subject.framing import front_camera
from ..subject.store import Subject, load_subject, read_manifest, resolve_subject


@dataclass(frozen=True)
class FrontCamera:
    """The head framed from the front at ``width`` x ``height`` (``subject.framing``)."""

    width: int
    height: int


@dataclass
class RenderRequest(RenderJobRequest):
    """What to render: the ``render`` job's wire request (``shared.render_request``:
    ``arrays`` by name, one row per frame; ``head_pose_frame`` ``"world"`` or
    ``"motion"``, required with a head pose; ``placement``; ``device``; ``fp16``;
    ``signed_png``: each frame also carries its PNG, C2PA-signed) plus what only the
    command line sets: ``camera`` may be a :class:`FrontCamera`; ``made_for``, the subject
    an animation says it was made for (refused for another); ``first_number``, the
    number in the signed PNGs' titles (``{first_number + index:06d}.png``)."""

    camera: dict | FrontCamera
    made_for: str | None = None
    first_number: int = 0


class RemoteRenderer(Protocol):
    """Where frames are rendered when not in this process (``backend.cluster.Cluster``):
    yields ``(index, rgba, depth)`` in order, each made by :func:`render_frames`."""

    def render(self, folder: Path, views: list[CameraView], cond: Conditioning, *,
               fp16: bool, payload: Payload, cancelled: Callable[[], bool]) -> Any: ...


def render_frames(subject: Subject, views: list[CameraView], cond: Conditioning, *,
                  fp16: bool, payload: Payload
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, rgba, depth)`` per frame, the RGBA carrying ``payload`` as its watermark:
    the one loop every frame of every render passes through, here or in a render actor.
    Deterministic: the same inputs give bit-identical frames."""
    for i, rgba, depth in render_sequence(subject.model, subject.grid, views, cond,
                                          fp16=fp16):
        yield i, mark_frame(rgba, payload), depth


@dataclass
class Render:
    """A prepared render: its subject, conditioning, views and stamp; :meth:`frames`
    renders it."""

    request: RenderRequest
    folder: Path
    manifest: dict
    cond: Conditioning
    views: list[CameraView]
    stamp: RenderStamp
    width: int
    height: int
    subject: Subject | None = None  # loaded here; None when a remote renderer renders
    remote: RemoteRenderer | None = None
    cancelled: Callable[[], bool] = field(default=lambda: False)
    remote_stats: Any = None  # the remote stream's statistics, once frames() started

    def __len__(self) -> int:
        return len(self.cond)

    def frames(self) -> Iterator[RenderedFrame]:
        """Render every frame, in order. Close the iterator (``contextlib.closing``) when
        stopping early: a remote renderer's workers are freed at once."""
        r = self.request
        payload = self.stamp.payload
        if self.remote is None:
            raw = render_frames(self.subject, self.views, self.cond, fp16=r.fp16,
                                payload=payload)
        else:
            for i, view in enumerate(self.views):  # camera errors now, not after frames
                head_to_camera(view, self.cond.head_pose[i])
            raw = self.remote.render(self.folder, self.views, self.cond, fp16=r.fp16,
                                     payload=payload, cancelled=self.cancelled)
            self.remote_stats = raw.stats
        signer = Signer(self.stamp) if r.signed_png else None
        try:
            with closing(raw):
                for i, rgba, depth in raw:
                    png = None
                    if signer is not None:
                        png = signer.sign_bytes(encode_png(rgba), "image/png",
                                                f"{r.first_number + i:06d}.png")
                    yield RenderedFrame(i, rgba, depth, png)
        finally:
            if signer is not None:
                signer.close()


def _device(name: str, remote: bool) -> str:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not remote and (name not in ("cpu", "cuda") or (
            name == "cuda" and not torch.cuda.is_available())):
        raise InputError(f"device {name!r} is not available", "use cpu or auto")
    return name


def prepare_render(request: RenderRequest, remote: RemoteRenderer | None = None,
                   cancelled: Callable[[], bool] = lambda: False) -> Render:
    """Check ``request``, load its subject (here, unless ``remote`` renders: then only its
    manifest) and make the conditioning, views and stamp. InputError names the user's
    thing and the fix; nothing heavy runs before the cheap checks pass."""
    arrays = request.arrays
    # What the client sent, checked before any heavy work (errors name its arrays).
    sent = check_conditioning(arrays.get("landmarks"), arrays.get("blendshapes"), None)
    frame = check_head_pose_frame(request.head_pose_frame, "head_pose" in arrays)
    placement = request.placement
    if placement is not None:
        try:
            placement = np.asarray(placement, np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError("placement is not a 4x4 matrix of numbers",
                             "send placement as 4 rows of 4 numbers") from exc
    if not isinstance(request.camera, FrontCamera):
        cam, mw = camera_from_dict(request.camera)
    device = _device(request.device, remote is not None)  # remote: the actors pick theirs
    if request.subject is None:
        raise InputError("no subject given", "pass params.subject (name or folder)")
    subject = None
    if remote is None:
        subject = load_subject(request.subject, device)
        folder, manifest = subject.folder, subject.manifest
    else:
        folder = resolve_subject(request.subject)
        manifest = read_manifest(folder)
    cond = render_conditioning(arrays, manifest, head_pose_frame=frame, placement=placement,
                               body_pose=arrays.get("body_pose"), made_for=request.made_for,
                               sent=sent)
    if isinstance(request.camera, FrontCamera):
        cam, mw = camera_from_dict(front_camera(manifest, request.camera.width,
                                                request.camera.height))
    views = camera_views(cam, mw, len(cond))
    stamp = RenderStamp.for_render(manifest, views, cond)
    w, h = cam.image_size
    return Render(request, folder, manifest, cond, views, stamp, w, h, subject, remote,
                  cancelled)
