"""The ``render`` job's answer as typed values: one :class:`RenderedFrame` per FRAME and a
:class:`RenderDone` for DONE, built by the backend's job and read once where they arrive
(the add-on's :mod:`render_job` handler, the demo).

On the wire a frame is body ``{"index": row of the request, "depth_units": "mm"}`` with
arrays ``rgba`` (``uint8 [H, W, 4]``, straight alpha, watermarked), ``depth`` (``uint16
[H, W]``, planar millimetres, 0 = no surface) and, when the request asked
``signed_png``, ``png``: the frame's C2PA-signed PNG file as ``uint8 [N]`` bytes, to be
written byte for byte (re-encoding would break the signature). DONE carries no arrays:
the frame count and size, the subject, its consent line and the render's provenance
(``backend.provenance``), plus the cluster's stats under ``--cluster``.

``RenderedFrame.from_wire`` checks every array's shape and dtype and names the array and
the fix; readers then use the fields by name, never by position. Its arrays view the
message's buffers: copy one to keep it past the handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

#: A frame's arrays, in wire order; ``png`` only when the request asked ``signed_png``.
FRAME_ARRAYS = ("rgba", "depth", "png")
_UPDATE = "update the backend and the add-on to the same Facecast version"


def _checked(name: str, array: Any, dtype: type, shape: tuple[int | str, ...]) -> np.ndarray:
    """``array`` as ``dtype`` of ``shape`` (a str: any size), else an InputError naming it."""
    arr = np.asarray(array)
    if arr.dtype != dtype or arr.ndim != len(shape) or any(
            isinstance(w, int) and s != w for s, w in zip(arr.shape, shape, strict=True)):
        want = ", ".join(map(str, shape))
        raise InputError(f"The backend sent {name} as {arr.dtype} of shape {tuple(arr.shape)}, "
                         f"expected {np.dtype(dtype)} of shape ({want})", _UPDATE)
    return arr


@dataclass
class RenderedFrame:
    """Row ``index`` of the request, rendered."""

    index: int
    rgba: np.ndarray  # uint8 [H, W, 4], straight alpha, watermarked
    depth: np.ndarray  # uint16 [H, W], planar millimetres (0 = no subject)
    png: bytes | None = None  # the signed PNG of ``rgba`` when the request asked for it
    depth_units: str = "mm"

    def to_wire(self) -> tuple[dict, list[np.ndarray]]:
        """(body, arrays) for the job's ``ctx.frame``."""
        arrays = [self.rgba, self.depth]
        if self.png is not None:
            arrays.append(np.frombuffer(self.png, np.uint8))
        return {"index": self.index, "depth_units": self.depth_units}, arrays

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], arrays: Sequence[Any]) -> RenderedFrame:
        """The FRAME the backend sent, checked; InputError naming the array otherwise."""
        index = body.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise InputError(f"The backend's render frame has index={index!r}", _UPDATE)
        units = body.get("depth_units", "mm")
        if units != "mm":
            raise InputError(f"The backend's render frame has depth in {units!r}, expected "
                             "'mm'", _UPDATE)
        if len(arrays) not in (2, 3):
            raise InputError(f"The backend's render frame has {len(arrays)} arrays, expected "
                             f"2 ({', '.join(FRAME_ARRAYS[:2])}) or 3 (and png)", _UPDATE)
        rgba = _checked("rgba", arrays[0], np.uint8, ("H", "W", 4))
        depth = _checked("depth", arrays[1], np.uint16, rgba.shape[:2])
        png = _checked("png", arrays[2], np.uint8, ("N",)).tobytes() if len(arrays) > 2 \
            else None
        return cls(index, rgba, depth, png, units)


@dataclass(frozen=True)
class RenderDone:
    """The job's DONE: what was rendered, of whom, under which consent and provenance."""

    frames: int
    width: int = 0
    height: int = 0
    subject: str = ""
    consent: str = ""
    provenance: dict = field(default_factory=dict)  # backend.provenance's RenderStamp dict
    cluster: dict | None = None  # the actors' stats under ``facecast serve --cluster``
    depth_units: str = "mm"

    def to_wire(self) -> dict[str, Any]:
        """The body the job returns."""
        body = {"frames": self.frames, "width": self.width, "height": self.height,
                "depth_units": self.depth_units, "subject": self.subject,
                "consent": self.consent, "provenance": self.provenance}
        if self.cluster is not None:
            body["cluster"] = self.cluster
        return body

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> RenderDone:
        """DONE as sent; read leniently (a missing or odd field is left empty), since it
        only reports: the frames themselves were checked as they arrived."""
        def number(key: str) -> int:
            v = body.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else 0

        def text(key: str) -> str:
            v = body.get(key)
            return v if isinstance(v, str) else ""

        prov, cluster = body.get("provenance"), body.get("cluster")
        return cls(number("frames"), number("width"), number("height"), text("subject"),
                   text("consent"), dict(prov) if isinstance(prov, Mapping) else {},
                   dict(cluster) if isinstance(cluster, Mapping) else None,
                   text("depth_units") or "mm")
