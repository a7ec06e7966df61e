"""``render`` job: stream a subject's RGBA + depth frames to the add-on under credit.

Params: ``subject`` (name or folder), ``camera`` (the cam.json dict), ``array_names``
naming the input arrays in order (any of ``landmarks`` [T,478,3], ``blendshapes``
[T,52], ``head_pose`` [T,4,4], ``body_pose`` [T,4,4]), ``head_pose_frame`` (required with
a head pose: ``"world"`` = canonical head frame -> Blender world, what the add-on sends;
``"motion"`` = motion relative to the rest pose, what the ``animate`` job returns),
optional ``placement`` (4x4, rest head frame -> world for ``"motion"``; default: at the
origin facing -Y), ``device`` ("cpu"/"cuda"/"auto"), ``fp16``. The conditioning contract
is ``shared.render_conditioning``; the backend retargets the animation onto the
subject's own face on receipt (``backend.subject.conditioning``). Each frame goes out
with ``ctx.frame({"index": i}, [rgba uint8 [H,W,4], depth uint16 mm [H,W](, png uint8
[N])])``, which blocks until the client grants credit, so a slow client never makes the
backend buffer a whole sequence. ``signed_png`` (feature ``signed_png``): each frame also
carries its PNG file, C2PA-signed, as a third array of bytes - write it as is to keep
the credentials. Every RGBA frame carries the render's invisible watermark (applied by
the renderer itself, locally or in the cluster's actors); the final reply names the
subject, its consent line and the render's provenance (``backend.provenance``).

Under ``facecast serve --cluster`` the frames come from Ray render actors instead
(:mod:`backend.cluster`), in the same order and with the same bytes; the job still sends
each one through ``ctx.frame``, so credit flow control holds the actors back.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import numpy as np

from shared.errors import InputError

from . import registry
from .base import Job, JobContext

_NAMES = ("landmarks", "blendshapes", "head_pose", "body_pose")


@registry.register
class RenderJob(Job):
    kind = "render"
    description = "Render a subject (tri-plane NeRF) as RGBA + depth frames at a camera"
    features = ("head_pose_frame", "torso", "signed_png")

    def run(self, ctx: JobContext) -> dict[str, Any]:
        import torch

        from backend.cluster.runtime import active_cluster
        from backend.nerf.pipeline import check_conditioning, head_to_camera, render_sequence
        from backend.provenance.consent import consent_line
        from backend.provenance.credentials import Signer, encode_png
        from backend.provenance.stamp import RenderStamp
        from backend.subject.conditioning import render_conditioning
        from backend.subject.store import load_subject, read_manifest, resolve_subject
        from shared.camera import camera_from_dict, camera_views
        from shared.render_conditioning import check_head_pose_frame

        p = ctx.params
        names = p.get("array_names", [])
        if (not isinstance(names, list) or len(names) != len(ctx.arrays)
                or any(n not in _NAMES for n in names) or len(set(names)) != len(names)):
            raise InputError(f"array_names {names!r} does not describe the "
                             f"{len(ctx.arrays)} arrays sent",
                             f"name each array once, in order, from {_NAMES}")
        arrays = dict(zip(names, ctx.arrays, strict=True))
        # Validate what the client sent (errors name its arrays) before any heavy work.
        check_conditioning(arrays.get("landmarks"), arrays.get("blendshapes"), None)
        frame = check_head_pose_frame(p.get("head_pose_frame"), "head_pose" in arrays)
        placement = p.get("placement")
        if placement is not None:
            try:
                placement = np.asarray(placement, np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError("placement is not a 4x4 matrix of numbers",
                                 "send placement as 4 rows of 4 numbers") from exc
        cam, mw = camera_from_dict(p.get("camera"))
        cluster = active_cluster()  # the actors pick their own device
        device = p.get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if cluster is None and (device not in ("cpu", "cuda") or (
                device == "cuda" and not torch.cuda.is_available())):
            raise InputError(f"device {device!r} is not available", "use cpu or auto")
        if "subject" not in p:
            raise InputError("no subject given", "pass params.subject (name or folder)")
        if cluster is None:
            subject = load_subject(p["subject"], device)
            folder, manifest = subject.folder, subject.manifest
        else:
            folder = resolve_subject(p["subject"])
            manifest = read_manifest(folder)
        cond = render_conditioning(arrays, manifest, head_pose_frame=frame,
                                   placement=placement, body_pose=arrays.get("body_pose"))
        views = camera_views(cam, mw, len(cond))
        n = len(cond)
        fp16 = bool(p.get("fp16", True))
        stamp = RenderStamp.for_render(manifest, views, cond)
        if cluster is None:
            frames = render_sequence(subject.model, subject.grid, views, cond, fp16=fp16,
                                     payload=stamp.payload)
        else:
            for i, view in enumerate(views):  # camera errors now, not after some frames
                head_to_camera(view, cond.head_pose[i])
            frames = cluster.render(folder, views, cond, fp16=fp16, payload=stamp.payload,
                                    cancelled=lambda: ctx.cancelled)
        signer = Signer(stamp) if p.get("signed_png") else None
        try:
            with closing(frames):  # a cancelled or failed job frees its actors at once
                for i, rgba, depth in frames:
                    ctx.check_cancelled()
                    out = [rgba, depth]
                    if signer is not None:
                        png = signer.sign_bytes(encode_png(rgba), "image/png", f"{i:06d}.png")
                        out.append(np.frombuffer(png, np.uint8))
                    ctx.frame({"index": i, "depth_units": "mm"}, out)
                    ctx.progress((i + 1) / n, f"frame {i + 1}/{n}")
        finally:
            if signer is not None:
                signer.close()
        w, h = cam.image_size
        body = {"frames": n, "width": w, "height": h, "depth_units": "mm",
                "subject": stamp.subject_name, "consent": consent_line(manifest),
                "provenance": {**stamp.to_dict(), "watermark": stamp.assertion()["watermark"],
                               "c2pa": "signed PNG per frame" if signer else "not asked"}}
        if cluster is not None:
            body["cluster"] = frames.stats.to_dict()
        return body
