"""Write an Animate result into the scene as a take: new actions, never the animator's.

* a face **mesh**: one F-curve per driven shape key (``key_blocks["jawOpen"].value``)
  in a new action on the mesh's shape keys;
* a **bone rig**: the pose library's poses blended by the weights (:mod:`pose_blend`)
  into a new action on the armature: only the channels the poses key are written;
* the **head** object (optional): the generated head motion on top of where the
  animator placed it;
* **landmark empties** (optional): Facecast's own output, reused and replaced.

Each action becomes a take on its ID's NLA (:mod:`takes`). Curves are LINEAR: per-frame
weights are dense samples, and Bezier handles would overshoot between frames.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from .. import compat
from ..core.pose_blend import blend_poses
from ..core.rig_mapping import RigMapping
from ..shared.errors import InputError
from . import pose_library
from .takes import GROUP, TakeTrack, new_take_action, push_take

LANDMARK_COLLECTION = "Facecast Landmarks"


def key_data_path(key_name: str) -> str:
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def bone_data_path(bone: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'


def face_id(obj: bpy.types.Object) -> bpy.types.ID:
    """What a face object's take animates: its shape keys, or the armature itself."""
    if obj.type == "ARMATURE":
        return obj
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        raise InputError(f"'{obj.name}' has no shape keys",
                         "pick a face mesh with shape keys or a bone rig as Face")
    return keys


def write_face_take(obj: bpy.types.Object, mapping: RigMapping, blendshapes: np.ndarray,
                    frames: np.ndarray, number: int, notes: str) -> TakeTrack:
    """The face animation as take ``number`` (shape keys or blended poses)."""
    weights = mapping.target_weights(blendshapes)
    if not weights:
        raise InputError(f"Nothing on '{obj.name}' is driven by an ARKit channel",
                         "see the mapping report: name shape keys / pose actions after "
                         "ARKit channels, or add overrides")
    target = face_id(obj)
    action = new_take_action(f"Facecast Take {number} {obj.name}", number, notes)
    fcurves = compat.fcurves_for(action, target)
    if obj.type == "ARMATURE":
        _write_pose_curves(obj, fcurves, weights, frames)
    else:
        for key_name, values in weights.items():
            compat.write_fcurve(fcurves, key_data_path(key_name), frames, values, group=GROUP)
    return push_take(target, action, number, int(frames[0]))


def _write_pose_curves(rig: bpy.types.Object, fcurves: object, weights: dict[str, np.ndarray],
                       frames: np.ndarray) -> None:
    candidates = pose_library.pose_candidates(rig)
    poses = [pose_library.read_pose(candidates[name], rig) for name in weights]
    w = np.stack(list(weights.values()), axis=1)
    keys = sorted({k for p in poses for k in p.properties})
    channels = blend_poses(poses, w, pose_library.rotation_modes(rig),
                           pose_library.property_rest(rig, keys))
    for (bone, prop, index), values in channels.items():
        path = bone_data_path(bone, prop) if bone else prop
        compat.write_fcurve(fcurves, path, frames, values.astype(np.float32), index=index,
                            group=bone or GROUP)


def write_head_take(obj: bpy.types.Object, head_pose: np.ndarray, frames: np.ndarray,
                    number: int, notes: str) -> TakeTrack:
    """Head motion onto ``obj`` as take ``number``: its current transform times each
    frame's pose (the pose is relative: identity = rest), Euler kept continuous."""
    base = obj.matrix_basis.copy()
    n = len(frames)
    loc = np.empty((n, 3), np.float32)
    mode = obj.rotation_mode
    quat_mode = mode == "QUATERNION"
    if not quat_mode and mode not in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"):
        raise InputError(f"'{obj.name}' uses {mode} rotation",
                         "set its rotation mode to XYZ Euler or Quaternion")
    rot = np.empty((n, 4 if quat_mode else 3), np.float32)
    prev = None
    for i in range(n):
        m = base @ Matrix(np.asarray(head_pose[i], dtype=np.float64).tolist())
        location, quat, _scale = m.decompose()
        loc[i] = location
        if quat_mode:
            if prev is not None:
                quat.make_compatible(prev)
            prev = quat
            rot[i] = quat
        else:
            euler = quat.to_euler(mode, prev) if prev is not None else quat.to_euler(mode)
            prev = euler
            rot[i] = euler
    action = new_take_action(f"Facecast Take {number} Head {obj.name}", number, notes)
    fcurves = compat.fcurves_for(action, obj)
    for axis in range(3):
        compat.write_fcurve(fcurves, "location", frames, loc[:, axis], index=axis, group=GROUP)
    rot_path = "rotation_quaternion" if quat_mode else "rotation_euler"
    for axis in range(rot.shape[1]):
        compat.write_fcurve(fcurves, rot_path, frames, rot[:, axis], index=axis, group=GROUP)
    return push_take(obj, action, number, int(frames[0]))


def write_landmark_empties(scene: bpy.types.Scene, obj: bpy.types.Object,
                           landmarks: np.ndarray, frames: np.ndarray) -> bpy.types.Collection:
    """One animated empty per landmark, parented to the face (landmarks are head-local).

    The empties live in their own collection named after the face, reused (and their
    keys replaced) on the next Animate: they are Facecast's output, not user work.
    """
    name = f"{LANDMARK_COLLECTION} {obj.name}"
    coll = bpy.data.collections.get(name)
    if coll is None:
        coll = bpy.data.collections.new(name)
        scene.collection.children.link(coll)
    existing = {o.name: o for o in coll.objects}
    for i in range(landmarks.shape[1]):
        ename = f"{obj.name} LM{i:03d}"
        empty = existing.get(ename)
        if empty is None:
            empty = bpy.data.objects.new(ename, None)
            empty.empty_display_type = "SPHERE"
            empty.empty_display_size = 0.002
            coll.objects.link(empty)
        empty.parent = obj
        empty.matrix_parent_inverse.identity()
        anim = empty.animation_data
        action = anim.action if anim is not None and anim.action else None
        if action is None:
            action = bpy.data.actions.new(ename)
        fcurves = compat.fcurves_for(action, empty)
        for axis in range(3):
            compat.write_fcurve(fcurves, "location", frames, landmarks[:, i, axis],
                                index=axis, group=GROUP, replace=True)
        compat.assign_action(empty, action)
    return coll
