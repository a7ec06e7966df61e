"""Rendered frames into the Video Sequence Editor: one image strip per render.

The strip starts at its first frame's scene frame, sits on the first channel above the
dialogue's sound strip that is free over its span, and blends with Alpha Over so the
NeRF subject composites over whatever is below. Frames arrive while the render runs,
so the strip is refreshed as they land (an image strip cannot have holes: it shows the
run of consecutive frames from the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy

from .. import compat
from ..core.frame_writer import frame_file
from ..shared.errors import InputError


def _overlaps(strip: object, start: int, end: int) -> bool:
    return strip.frame_final_start < end and strip.frame_final_end > start  # type: ignore[attr-defined]


def free_channel(scene: bpy.types.Scene, start: int, end: int, lowest: int,
                 ignore: object = None) -> int:
    """The lowest channel >= ``lowest`` with no strip over ``[start, end)``."""
    strips = [s for s in compat.sequencer_strips(scene) if s != ignore]
    channel = max(1, lowest)
    while channel < 128:
        if not any(s.channel == channel and _overlaps(s, start, end) for s in strips):
            return channel
        channel += 1
    raise InputError("No free sequencer channel for the rendered frames",
                     "remove some strips above the sound strip")


def contiguous_run(frames: Sequence[int]) -> list[int]:
    """The run of consecutive frames starting at the smallest (an image strip cannot
    have holes; frames arrive in order, so a half-finished render is one run)."""
    have = set(frames)
    if not have:
        return []
    run = [min(have)]
    while run[-1] + 1 in have:
        run.append(run[-1] + 1)
    return run


def place_image_strip(scene: bpy.types.Scene, name: str, folder: Path, frames: Sequence[int],
                      above: object = None) -> object:
    """Add or refresh the image-sequence strip ``name`` showing ``frames`` from ``folder``.

    It starts at its first frame's scene frame, sits on the first channel above the
    sound strip (``above``) that is free over its span, and blends with Alpha Over so
    the NeRF subject composites over whatever is below. Refreshing replaces the strip
    (a new folder or more frames) but keeps its channel when that is still free.
    """
    run = contiguous_run(frames)
    if not run:
        return None
    start, end = run[0], run[-1] + 1
    strips = compat.sequencer_strips(scene)
    old = strips.get(name)
    wanted = old.channel if old is not None else 0
    lowest = (above.channel + 1) if above is not None else 1  # type: ignore[attr-defined]
    if old is not None:
        strips.remove(old)
    channel = free_channel(scene, start, end, max(lowest, wanted) if wanted else lowest)
    if wanted and channel != wanted:  # our old channel got taken: search from the bottom
        channel = free_channel(scene, start, end, lowest)
    strip = compat.new_image_strip(scene, name, str(frame_file(folder, start)), channel, start)
    for frame in run[1:]:
        strip.elements.append(frame_file(folder, frame).name)
    strip.blend_type = "ALPHA_OVER"
    strip["facecast_folder"] = str(folder)
    return strip
