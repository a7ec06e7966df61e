"""``render`` job: stream a subject's RGBA + depth frames to the add-on under credit.

The request is ``shared.render_request.RenderJobRequest`` on both sides. Params:
``subject`` (name or folder), ``camera`` (the cam.json dict), ``array_names`` naming the
input arrays in order (any of ``landmarks`` [T,478,3], ``blendshapes``
[T,52], ``head_pose`` [T,4,4], ``body_pose`` [T,4,4]), ``head_pose_frame`` (required with
a head pose: ``"world"`` = canonical head frame -> Blender world, what the add-on sends;
``"motion"`` = motion relative to the rest pose, what the ``animate`` job returns),
optional ``placement`` (4x4, rest head frame -> world for ``"motion"``; default: at the
origin facing -Y), ``device`` ("cpu"/"cuda"/"auto"), ``fp16``. The conditioning contract
is ``backend.subject.contract``; the backend retargets the animation onto the
subject's own face on receipt (``backend.subject.conditioning``). Each frame goes out
as a ``shared.render_result.RenderedFrame`` (body ``{"index", "depth_units"}``, arrays
rgba uint8 [H,W,4], depth uint16 mm [H,W](, png uint8 [N])) through ``ctx.frame``, which
blocks until the client grants credit, so a slow client never makes the
backend buffer a whole sequence. ``signed_png`` (feature ``signed_png``): each frame also
carries its PNG file, C2PA-signed, as a third array of bytes - write it as is to keep
the credentials. Every RGBA frame carries the render's invisible watermark (applied by
the render service, locally or in the cluster's actors); the final reply, a
``shared.render_result.RenderDone``, names the subject, its consent line and the
render's provenance (``backend.provenance``).

The render itself is the render service's (:mod:`backend.render`); this job only maps
the wire onto a ``RenderRequest`` and streams what it yields. Under ``facecast serve
--cluster`` the frames come from Ray render actors instead (:mod:`backend.cluster`), in
the same order and with the same bytes; the job still sends each one through
``ctx.frame``, so credit flow control holds the actors back.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from shared.render_result import RenderDone

from . import registry
from .base import Job, JobContext


@registry.register
class RenderJob(Job):
    kind = "render"
    description = "Render a subject (tri-plane NeRF) as RGBA + depth frames at a camera"
    features = ("head_pose_frame", "torso", "signed_png")

    def run(self, ctx: JobContext) -> dict[str, Any]:
        from backend.cluster.runtime import active_cluster
        from backend.provenance.consent import consent_line
        from backend.render import RenderRequest, prepare_render

        request = RenderRequest.from_wire(ctx.params, ctx.arrays)  # shared.render_request
        cluster = active_cluster()  # the actors pick their own device
        render = prepare_render(request, cluster, cancelled=lambda: ctx.cancelled)
        n = len(render)
        with closing(render.frames()) as frames:  # a cancelled job frees its actors at once
            for f in frames:
                ctx.check_cancelled()
                ctx.frame(*f.to_wire())  # shared.render_result.RenderedFrame
                ctx.progress((f.index + 1) / n, f"frame {f.index + 1}/{n}")
        stamp = render.stamp
        return RenderDone(
            n, render.width, render.height, stamp.subject_name, consent_line(render.manifest),
            {**stamp.to_dict(), "watermark": stamp.assertion()["watermark"],
             "c2pa": "signed PNG per frame" if request.signed_png else "not asked"},
            None if cluster is None else render.remote_stats.to_dict()).to_wire()
