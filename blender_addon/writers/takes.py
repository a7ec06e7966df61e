"""Takes on the NLA: every Animate is a new take; earlier takes stay; bake on request.

A take is one generated action, pushed onto the animated ID's NLA stack as its own
track (``Facecast Take N``) with one strip (``Take N``) at the frames it was made for.
The newest take plays; earlier takes are kept, muted, one click away in the NLA
editor (unmute or solo a track to compare deliveries). The ID's *active action* is
never touched: the animator's own keys keep playing on top of the NLA (set the action's
blending to Combine or Add to make them corrections on top of the take).

**Bake to one action** evaluates what plays now (the playing takes plus the animator's
keys) frame by frame into one new action, makes it the active action, and mutes the
take tracks so nothing plays twice. The previous active action is kept (fake user) and
named on the baked action, so nothing is ever lost. On Blender 4.4+ the takes are
slotted actions (one slot per ID); ``compat`` hides the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bpy
import numpy as np

from .. import compat
from ..shared.errors import InputError

TAKE_PROPERTY = "facecast_take"  # on a take's action: its take number
BAKED_PROPERTY = "facecast_baked"  # on a baked action: the takes it holds
REPLACED_PROPERTY = "facecast_replaced_action"  # the active action a bake replaced
TRACK_PREFIX = "Facecast Take"
GROUP = "Facecast"


@dataclass(frozen=True)
class TakeTrack:
    """One take as it sits on an ID's NLA stack."""

    number: int
    track: str
    action: str
    muted: bool
    start: float
    end: float


def is_facecast_action(action: bpy.types.Action) -> bool:
    return TAKE_PROPERTY in action or BAKED_PROPERTY in action


def takes_of(id_data: bpy.types.ID) -> list[TakeTrack]:
    """The take tracks of ``id_data``, bottom (oldest) to top."""
    anim = id_data.animation_data
    if anim is None:
        return []
    out = []
    for track in anim.nla_tracks:
        for strip in track.strips:
            action = strip.action
            if action is not None and TAKE_PROPERTY in action:
                out.append(TakeTrack(int(action[TAKE_PROPERTY]), track.name, action.name,
                                     bool(track.mute), strip.frame_start, strip.frame_end))
                break
    return out


def next_take_number(ids: Sequence[bpy.types.ID]) -> int:
    """One more than the highest take on any of ``ids`` (numbers are never reused, so
    "Take 3" always means the same performance)."""
    numbers = [t.number for i in ids if i is not None for t in takes_of(i)]
    return max(numbers, default=0) + 1


def new_take_action(name: str, number: int, notes: str) -> bpy.types.Action:
    """An empty action marked as take ``number`` (``notes``: what made it)."""
    action = bpy.data.actions.new(name)
    action[TAKE_PROPERTY] = int(number)
    action["facecast_notes"] = notes
    return action


def push_take(id_data: bpy.types.ID, action: bpy.types.Action, number: int,
              start: int) -> TakeTrack:
    """Put ``action`` on top of ``id_data``'s NLA as take ``number``; earlier takes are
    muted (kept). Refuses while the ID is in NLA tweak mode (its stack is locked)."""
    anim = id_data.animation_data
    if anim is not None and anim.use_tweak_mode:
        raise InputError(f"'{id_data.name}' is being edited in the NLA (tweak mode)",
                         "leave tweak mode (Tab in the NLA editor) and animate again")
    for take in takes_of(id_data):
        anim.nla_tracks[take.track].mute = True
    track, strip = compat.push_nla_strip(id_data, action, f"{TRACK_PREFIX} {number}",
                                         f"Take {number}", start)
    strip.blend_type = "REPLACE"
    strip.extrapolation = "HOLD_FORWARD"
    return TakeTrack(number, track.name, action.name, False, strip.frame_start,
                     strip.frame_end)


# --------------------------------------------------------------------------------------
# Bake


def _playing_actions(id_data: bpy.types.ID) -> list[bpy.types.Action]:
    anim = id_data.animation_data
    if anim is None:
        return []
    actions = [s.action for t in anim.nla_tracks if not t.mute for s in t.strips
               if s.action is not None and not s.mute]
    if anim.action is not None:
        actions.append(anim.action)
    return actions


def _channels(id_data: bpy.types.ID, actions: list[bpy.types.Action]) -> list[tuple[str, int]]:
    id_type = id_data.id_type
    seen: dict[tuple[str, int], None] = {}
    for action in actions:
        for fc in compat.action_fcurves(action, id_type):
            try:
                id_data.path_resolve(fc.data_path)
            except ValueError:
                continue
            seen[(fc.data_path, int(fc.array_index))] = None
    return list(seen)


def _read(id_data: bpy.types.ID, path: str, index: int) -> float:
    value = id_data.path_resolve(path)
    return float(value[index]) if hasattr(value, "__len__") else float(value)


def bake_takes(scene: bpy.types.Scene, id_data: bpy.types.ID) -> tuple[bpy.types.Action, int]:
    """Bake what plays on ``id_data`` (playing takes + active action) into one new
    action over the takes' frames; returns (action, frames baked)."""
    takes = [t for t in takes_of(id_data) if not t.muted] or takes_of(id_data)[-1:]
    if not takes:
        raise InputError(f"'{id_data.name}' has no Facecast takes to bake",
                         "press Animate first")
    anim = id_data.animation_data
    if anim.use_tweak_mode:
        raise InputError(f"'{id_data.name}' is being edited in the NLA (tweak mode)",
                         "leave tweak mode (Tab in the NLA editor) and bake again")
    for t in takes:  # a muted newest take (nothing playing) is what the user means
        anim.nla_tracks[t.track].mute = False
    actions = _playing_actions(id_data)
    channels = _channels(id_data, actions)
    first = int(np.floor(min(t.start for t in takes)))
    last = int(np.ceil(max(t.end for t in takes)))
    if anim.action is not None:
        lo, hi = anim.action.frame_range
        first, last = min(first, int(np.floor(lo))), max(last, int(np.ceil(hi)))
    frames = np.arange(first, last + 1)
    values = np.empty((len(frames), len(channels)), np.float32)
    current, sub = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(int(frame))
            for j, (path, index) in enumerate(channels):
                values[i, j] = _read(id_data, path, index)
    finally:
        scene.frame_set(current, subframe=sub)
    baked = bpy.data.actions.new(f"Facecast Baked {id_data.name}")
    baked[BAKED_PROPERTY] = ", ".join(f"Take {t.number}" for t in takes)
    fcurves = compat.fcurves_for(baked, id_data)
    for j, (path, index) in enumerate(channels):
        compat.write_fcurve(fcurves, path, frames, values[:, j], index=index,
                            group=_group(path))
    previous = compat.assign_action(id_data, baked)
    if previous is not None:
        baked[REPLACED_PROPERTY] = previous.name
    for t in takes_of(id_data):
        anim.nla_tracks[t.track].mute = True
    return baked, len(frames)


def _group(path: str) -> str:
    """Pose-bone curves are grouped by bone (as Blender does); the rest under Facecast."""
    if path.startswith('pose.bones["'):
        return path[len('pose.bones["'):].split('"]', 1)[0]
    return GROUP
