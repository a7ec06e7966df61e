"""A camera that frames a subject's head from the front, without Blender.

The demo renders through it, and ``facecast render --camera front`` gives it to users
who have no add-on to export a ``cam.json``. The head rests at the world origin looking
down Blender's -Y (the contract's default placement, ``backend.subject.contract``),
so the camera stands on -Y looking along +Y (Blender cameras look down their -Z). It
frames a fixed region of the canonical head frame (hair to neck) with the horizontal
field of view the subject was captured with, so the field is seen close to how it was
trained.
"""

from __future__ import annotations

import math

import numpy as np

from shared.camera import BlenderCamera, camera_to_dict

#: The canonical-frame region the camera frames (metres; +Y up): hair to neck.
HEAD_FRAME_LO = (-0.13, -0.2, -0.12)
HEAD_FRAME_HI = (0.13, 0.16, 0.11)


def front_camera(manifest: dict, width: int, height: int | None = None) -> dict:
    """A ``cam.json`` dict (``shared.camera`` format) of ``width`` x ``height`` pixels
    (square by default) looking at the head region from the front."""
    height = width if height is None else height
    captured = manifest["camera"]
    fx = float(np.asarray(captured["k"])[0][0])
    hfov = 2 * math.atan(float(captured["width"]) / (2 * fx))
    box_lo = np.maximum(HEAD_FRAME_LO, manifest["canonical_space"]["box_lo"])
    box_hi = np.minimum(HEAD_FRAME_HI, manifest["canonical_space"]["box_hi"])
    # The field of view applies to the image's longer side (sensor fit AUTO); the region
    # must fit the shorter one, so widen the distance by the aspect.
    aspect = max(width, height) / min(width, height)
    half = 0.5 * max(box_hi[1] - box_lo[1], box_hi[0] - box_lo[0]) * 1.05 * aspect
    distance = half / math.tan(hfov / 2) + float(box_hi[2])
    centre_up = 0.5 * float(box_lo[1] + box_hi[1])
    matrix_world = [[1.0, 0.0, 0.0, 0.0],
                    [0.0, 0.0, -1.0, -distance],
                    [0.0, 1.0, 0.0, centre_up],
                    [0.0, 0.0, 0.0, 1.0]]
    lens = 36.0 / (2 * math.tan(hfov / 2))
    cam = BlenderCamera(lens=lens, sensor_width=36.0, sensor_height=36.0,
                        sensor_fit="AUTO", clip_start=0.01, resolution_x=int(width),
                        resolution_y=int(height))
    return camera_to_dict(cam.validated(), np.asarray(matrix_world))
