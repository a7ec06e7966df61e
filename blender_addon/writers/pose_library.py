"""A bone rig's pose library as Facecast reads it: the animator's pose actions.

A pose action holds one pose: keys on the rig's pose bones (location, rotation in any
mode, scale) and possibly custom properties, all at one frame — what Blender's pose
library makes, or what an animator keys at frame 1 and names ``jawOpen``. Which ARKit
channels a pose answers to is decided by :mod:`rig_mapping` (by its name, by its
``facecast_channels`` property, or by an override); this module finds the candidates
and reads their values. It never changes them: the animator's actions are theirs.

Facecast's own takes and bakes are never candidates (they carry ``facecast_take`` /
``facecast_baked``), nor are actions that animate no bone of this rig.
"""

from __future__ import annotations

import re

import bpy
import numpy as np

from .. import compat
from ..core.pose_blend import BonePose, Pose, rotation_to_quat
from ..core.rig_mapping import GROUP_PROPERTY
from .takes import is_facecast_action

_BONE_PATH = re.compile(r'^pose\.bones\["((?:[^"\\]|\\.)*)"\]\.(location|rotation_quaternion|'
                        r'rotation_euler|rotation_axis_angle|scale)$')


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def pose_candidates(rig: bpy.types.Object) -> dict[str, bpy.types.Action]:
    """Actions that pose at least one bone of ``rig`` (name -> action), excluding
    Facecast's own takes and bakes and the rig's active action (the animator's work in
    progress, not a pose)."""
    bones = set(rig.pose.bones.keys()) if rig.pose else set()
    anim = rig.animation_data
    active = anim.action if anim is not None else None
    out: dict[str, bpy.types.Action] = {}
    for action in bpy.data.actions:
        if action == active or is_facecast_action(action):
            continue
        for fc in compat.action_fcurves(action, "OBJECT"):
            m = _BONE_PATH.match(fc.data_path)
            if m and _unescape(m.group(1)) in bones:
                out[action.name] = action
                break
    return out


def declared_groups(candidates: dict[str, bpy.types.Action]) -> dict[str, str]:
    """Pose name -> its ``facecast_channels`` group ("mouthSmileLeft+mouthSmileRight")."""
    return {name: str(a[GROUP_PROPERTY]) for name, a in candidates.items()
            if GROUP_PROPERTY in a and str(a[GROUP_PROPERTY]).strip()}


def pose_frame(action: bpy.types.Action) -> float:
    """The frame a pose is read at: its first key (a pose library pose has only one)."""
    frames = [k.co.x for fc in compat.action_fcurves(action, "OBJECT")
              for k in fc.keyframe_points]
    return float(min(frames)) if frames else float(action.frame_range[0])


def read_pose(action: bpy.types.Action, rig: bpy.types.Object) -> Pose:
    """The pose's values at :func:`pose_frame`, per bone of ``rig``; other animated
    properties of the rig (custom properties...) as ``(data_path, index) -> value``."""
    frame = pose_frame(action)
    raw: dict[str, dict[str, dict[int, float]]] = {}
    pose = Pose(action.name)
    for fc in compat.action_fcurves(action, "OBJECT"):
        if fc.mute or len(fc.keyframe_points) == 0:
            continue
        value = float(fc.evaluate(frame))
        m = _BONE_PATH.match(fc.data_path)
        if m is None:
            try:  # only properties that exist on this rig and hold a number
                rig.path_resolve(fc.data_path)
            except ValueError:
                continue
            pose.properties[(fc.data_path, int(fc.array_index))] = value
            continue
        bone = _unescape(m.group(1))
        if bone not in rig.pose.bones:
            continue
        raw.setdefault(bone, {}).setdefault(m.group(2), {})[int(fc.array_index)] = value
    for bone, props in raw.items():
        bp = BonePose()
        pb = rig.pose.bones[bone]
        for axis, v in props.get("location", {}).items():
            bp.location[axis] = v
        for axis, v in props.get("scale", {}).items():
            bp.scale[axis] = v
        bp.rotation = _pose_rotation(props, pb.rotation_mode)
        pose.bones[bone] = bp
    return pose


def _pose_rotation(props: dict[str, dict[int, float]], mode: str) -> np.ndarray | None:
    """The keyed rotation as a quaternion. When a pose keys several rotation channels,
    the one matching the bone's mode wins (that is the one Blender plays)."""
    kinds = {"rotation_quaternion": ("quaternion", 4), "rotation_euler": ("euler", 3),
             "rotation_axis_angle": ("axis_angle", 4)}
    preferred = {"QUATERNION": "rotation_quaternion",
                 "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")
    order = [preferred, *(k for k in kinds if k != preferred)]
    for prop in order:
        if prop in props:
            kind, n = kinds[prop]
            values = np.full(n, np.nan)
            for axis, v in props[prop].items():
                values[axis] = v
            euler_order = mode if len(mode) == 3 else "XYZ"
            return rotation_to_quat(kind, values, euler_order)
    return None


def rotation_modes(rig: bpy.types.Object) -> dict[str, str]:
    return {pb.name: pb.rotation_mode for pb in rig.pose.bones}


def property_rest(rig: bpy.types.Object, keys: list[tuple[str, int]]) -> dict[tuple[str, int],
                                                                               float]:
    """Rest values of non-transform properties: an RNA property's default, a custom
    property's UI default, else 0."""
    out: dict[tuple[str, int], float] = {}
    for path, index in keys:
        out[(path, index)] = _default(rig, path, index)
    return out


def _default(rig: bpy.types.Object, path: str, index: int) -> float:
    owner_path, _, prop = path.rpartition(".")
    try:
        if path.endswith('"]'):  # a custom property: owner["name"]
            owner_path, _, key = path.rpartition("[")
            owner = rig.path_resolve(owner_path) if owner_path else rig
            ui = owner.id_properties_ui(key.strip('[]"')).as_dict()
            default = ui.get("default", 0.0)
        else:
            owner = rig.path_resolve(owner_path) if owner_path else rig
            rna = owner.bl_rna.properties[prop]
            default = rna.default_array if getattr(rna, "is_array", False) else rna.default
        if isinstance(default, (list, tuple)) or hasattr(default, "__len__"):
            return float(default[index])
        return float(default)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return 0.0
