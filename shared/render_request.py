"""The ``render`` job's request as one typed value that the add-on, the demo and the
backend all build and read, instead of each writing the params dict by hand.

On the wire (unchanged): params ``subject``, ``camera`` (a ``shared.camera`` dict),
``array_names`` (the arrays' names, in the order they are sent), ``head_pose_frame``
(``backend.subject.contract``), ``placement`` (when given), ``device``, ``fp16``,
``signed_png`` — and nothing else: a client keeps its own bookkeeping (the add-on's
scene frame per row) to itself, so every param sent is one the backend reads.
The arrays travel by name: any of :data:`ARRAY_NAMES`, sent in sorted name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

#: The per-frame arrays a render takes, by name (``backend.subject.contract``).
ARRAY_NAMES = ("landmarks", "blendshapes", "head_pose", "body_pose")


@dataclass
class RenderJobRequest:
    subject: Any
    camera: Any  # a shared.camera dict (checked by the backend's camera parser)
    arrays: Mapping[str, np.ndarray]
    head_pose_frame: str | None = None
    placement: Any = None  # 4x4, rest head frame -> world, for "motion" head poses
    device: str = "auto"
    fp16: bool = True
    signed_png: bool = False

    def to_wire(self) -> tuple[dict, list[np.ndarray]]:
        """(params, arrays) for ``client.call("render", ...)``."""
        names = sorted(self.arrays)
        params = {"subject": self.subject, "camera": self.camera, "array_names": names,
                  "head_pose_frame": self.head_pose_frame, "device": self.device,
                  "fp16": self.fp16, "signed_png": self.signed_png}
        if self.placement is not None:
            params["placement"] = np.asarray(self.placement, np.float64).tolist()
        return params, [np.ascontiguousarray(self.arrays[n]) for n in names]

    @classmethod
    def from_wire(cls, params: Mapping[str, Any], arrays: Sequence[np.ndarray]):
        """The request a client sent; InputError when ``array_names`` does not describe
        the arrays. Values are checked by the render service (errors name them)."""
        names = params.get("array_names", [])
        if (not isinstance(names, list) or len(names) != len(arrays)
                or any(n not in ARRAY_NAMES for n in names) or len(set(names)) != len(names)):
            raise InputError(f"array_names {names!r} does not describe the "
                             f"{len(arrays)} arrays sent",
                             f"name each array once, in order, from {ARRAY_NAMES}")
        return cls(subject=params.get("subject"), camera=params.get("camera"),
                   arrays=dict(zip(names, arrays, strict=True)),
                   head_pose_frame=params.get("head_pose_frame"),
                   placement=params.get("placement"), device=params.get("device", "auto"),
                   fp16=bool(params.get("fp16", True)),
                   signed_png=bool(params.get("signed_png")))
