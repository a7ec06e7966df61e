"""What the demo says, feels and looks through when the user gives nothing.

The emotion track is keyed at fractions of the line so it changes visibly whatever the
length of the speech: neutral, then happy, surprised, angry and sad, each held a while.
The camera frames the head and neck (a fixed region of the canonical head frame, inside
the subject's bust box) from the front, with the horizontal field of view the subject
was captured with, so the NeRF is seen close to how it was trained.
"""

from __future__ import annotations

import math

import numpy as np

from shared.camera import BlenderCamera, camera_to_dict

DEFAULT_LINE = ("Hello! I'm a Facecast demo. I can smile when I'm happy, look surprised, "
                "get a little angry, and then feel sad about it.")
QUICK_LINE = "Hello! I can smile, look surprised, and get angry."

#: The canonical-frame region the demo camera frames (metres; +Y up): hair to neck.
HEAD_FRAME_LO = (-0.13, -0.2, -0.12)
HEAD_FRAME_HI = (0.13, 0.16, 0.11)

#: (fraction of the line, emotion mix, intensity)
EMOTION_KEYS = ((0.0, "neutral", 1.0), (0.15, "happy", 0.9), (0.4, "surprised", 0.8),
                (0.62, "angry", 0.8), (0.85, "sad", 0.8))


def default_emotion_track(n_frames: int) -> str:
    """The demo's emotion track in the ``frame:emotion@intensity`` grammar."""
    keys = [f"{round(frac * max(n_frames - 1, 0))}:{emo}@{inten:g}"
            for frac, emo, inten in EMOTION_KEYS]
    return ",".join(keys)


def front_camera(manifest: dict, size: int) -> dict:
    """A Blender camera dict (``shared.camera`` format) looking at the head from the front.

    The head sits at the world origin facing -Y (the renderer's default head pose), so
    the camera stands on -Y looking along +Y (Blender cameras look down their -Z).
    """
    captured = manifest["camera"]
    width = float(captured["width"])
    fx = float(np.asarray(captured["k"])[0][0])
    hfov = 2 * math.atan(width / (2 * fx))
    box_lo = np.maximum(HEAD_FRAME_LO, manifest["canonical_space"]["box_lo"])
    box_hi = np.minimum(HEAD_FRAME_HI, manifest["canonical_space"]["box_hi"])
    # Canonical +Y (up) is Blender +Z; frame the region's height with a small margin.
    half = 0.5 * max(box_hi[1] - box_lo[1], box_hi[0] - box_lo[0]) * 1.05
    distance = half / math.tan(hfov / 2) + float(box_hi[2])
    centre_up = 0.5 * float(box_lo[1] + box_hi[1])
    matrix_world = [[1.0, 0.0, 0.0, 0.0],
                    [0.0, 0.0, -1.0, -distance],
                    [0.0, 1.0, 0.0, centre_up],
                    [0.0, 0.0, 0.0, 1.0]]
    lens = 36.0 / (2 * math.tan(hfov / 2))
    cam = BlenderCamera(lens=lens, sensor_width=36.0, sensor_height=36.0,
                        sensor_fit="HORIZONTAL", clip_start=0.01, resolution_x=size,
                        resolution_y=size)
    return camera_to_dict(cam.validated(), np.asarray(matrix_world))
