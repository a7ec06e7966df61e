"""``render`` job: stream a subject's RGBA + depth frames to the add-on under credit.

Params: ``subject`` (name or folder), ``camera`` (the cam.json dict), ``array_names``
naming the input arrays in order (any of ``landmarks`` [T,478,3], ``blendshapes``
[T,52], ``head_pose`` [T,4,4] mapping the canonical head frame (+Y up, +Z out of the
face) to the Blender world; default ``HEAD_TO_BLENDER``: head at the origin facing -Y),
optional ``device`` ("cpu"/"cuda"/"auto"),
``fp16``. Each frame goes out with ``ctx.frame({"index": i}, [rgba uint8 [H,W,4],
depth uint16 mm [H,W]])``, which blocks until the client grants credit, so a slow
client never makes the backend buffer a whole sequence.
"""

from __future__ import annotations

from typing import Any

from shared.errors import InputError

from . import registry
from .base import Job, JobContext

_NAMES = ("landmarks", "blendshapes", "head_pose")


@registry.register
class RenderJob(Job):
    kind = "render"
    description = "Render a subject (tri-plane NeRF) as RGBA + depth frames at a camera"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        import torch

        from backend.nerf.pipeline import check_conditioning, render_sequence
        from backend.subject.retarget import retarget
        from backend.subject.store import load_subject
        from shared.camera import camera_from_dict, camera_views

        p = ctx.params
        names = p.get("array_names", [])
        if (not isinstance(names, list) or len(names) != len(ctx.arrays)
                or any(n not in _NAMES for n in names) or len(set(names)) != len(names)):
            raise InputError(f"array_names {names!r} does not describe the "
                             f"{len(ctx.arrays)} arrays sent",
                             f"name each array once, in order, from {_NAMES}")
        arrays = dict(zip(names, ctx.arrays, strict=True))
        # Validate what the client sent (errors name its arrays) before any heavy work.
        check_conditioning(arrays.get("landmarks"), arrays.get("blendshapes"),
                           arrays.get("head_pose"))
        cam, mw = camera_from_dict(p.get("camera"))
        device = p.get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda") or (device == "cuda"
                                            and not torch.cuda.is_available()):
            raise InputError(f"device {device!r} is not available", "use cpu or auto")
        if "subject" not in p:
            raise InputError("no subject given", "pass params.subject (name or folder)")
        subject = load_subject(p["subject"], device)
        arrays = retarget(arrays, subject.manifest)  # the animation on this subject's face
        cond = check_conditioning(arrays.get("landmarks"), arrays.get("blendshapes"),
                                  arrays.get("head_pose"))
        views = camera_views(cam, mw, len(cond))
        n = len(cond)
        for i, rgba, depth in render_sequence(subject.model, subject.grid, views, cond,
                                              fp16=bool(p.get("fp16", True))):
            ctx.check_cancelled()
            ctx.frame({"index": i, "depth_units": "mm"}, [rgba, depth])
            ctx.progress((i + 1) / n, f"frame {i + 1}/{n}")
        w, h = cam.image_size
        return {"frames": n, "width": w, "height": h, "depth_units": "mm"}
