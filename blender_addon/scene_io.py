"""Blender-side reading and writing for Facecast jobs: sample the scene, write results.

Reading samples animation by *evaluating F-curves* at each frame instead of stepping the
scene (``frame_set``), which would re-evaluate the whole dependency graph per frame and
take seconds for a minute of dialogue. Writing always goes through ``compat`` so the
same code runs on 4.2 (``Action.fcurves``) and on 4.4+/5.x (slots + channelbags).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from . import compat
from .render_job import frame_file
from .shared.emotions import EMOTIONS
from .shared.errors import InputError
from .shared.shape_key_mapping import ShapeKeyMapping, match_shape_keys

GROUP = "Facecast"
LANDMARK_COLLECTION = "Facecast Landmarks"


# --------------------------------------------------------------------------------------
# Reading


def sample_property(id_data: bpy.types.ID, data_path: str, frames: np.ndarray,
                    current: float) -> np.ndarray:
    """Per-frame values of an animatable property: its F-curve, else its current value."""
    fcurve = compat.find_assigned_fcurve(id_data, data_path)
    if fcurve is None or fcurve.mute or len(fcurve.keyframe_points) == 0:
        return np.full(len(frames), current, dtype=np.float32)
    return compat.evaluate_fcurve(fcurve, frames)


def sample_emotions(scene: bpy.types.Scene, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(weights[T, 8], intensity[T])`` from the scene's keyed emotion sliders."""
    settings = scene.facecast
    weights = np.stack([sample_property(scene, f"facecast.{name}", frames,
                                        getattr(settings, name)) for name in EMOTIONS], axis=1)
    intensity = sample_property(scene, "facecast.intensity", frames, settings.intensity)
    # Bezier keys can overshoot slightly between keys; the backend wants [0, 1].
    return np.clip(weights, 0.0, 1.0), np.clip(intensity, 0.0, 1.0)


def target_mapping(obj: bpy.types.Object, overrides: dict[str, str]) -> ShapeKeyMapping:
    """Match the object's shape keys (minus its reference key) to ARKit names."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        raise InputError(f"'{obj.name}' has no shape keys",
                         "pick a face mesh with ARKit-style shape keys, or use Create Demo Rig")
    reference = keys.reference_key.name if keys.reference_key else ""
    names = [k.name for k in keys.key_blocks if k.name != reference]
    return match_shape_keys(names, overrides)


def key_data_path(key_name: str) -> str:
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def sample_shape_keys(obj: bpy.types.Object, mapping: ShapeKeyMapping,
                      frames: np.ndarray) -> np.ndarray:
    """``blendshapes[T, 52]`` as the target's shape keys play now (animator edits included);
    ARKit channels without a key are 0."""
    from .shared.blendshapes import ARKIT_BLENDSHAPES

    keys = obj.data.shape_keys
    out = np.zeros((len(frames), len(ARKIT_BLENDSHAPES)), dtype=np.float32)
    for arkit, key_name in mapping.mapping.items():
        block = keys.key_blocks[key_name]
        out[:, ARKIT_BLENDSHAPES.index(arkit)] = sample_property(
            keys, key_data_path(key_name), frames, block.value)
    return np.clip(out, 0.0, 1.0)


def _is_animated(obj: bpy.types.Object | None) -> bool:
    while obj is not None:
        if obj.animation_data is not None and (obj.animation_data.action is not None
                                               or len(obj.animation_data.drivers)):
            return True
        if obj.constraints:
            return True
        obj = obj.parent
    return False


def world_matrices(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object],
                   frames: np.ndarray) -> list[np.ndarray]:
    """Per-object ``[T, 4, 4]`` world matrices over ``frames``.

    Static objects (no animation, constraints or animated parents) are read once. Only
    when one moves is the scene stepped frame by frame, because parents, constraints and
    drivers can only be resolved by Blender's own evaluation; the frame is restored.
    """
    if not any(_is_animated(o) for o in objects):
        return [np.broadcast_to(np.array(o.matrix_world, dtype=np.float64),
                                (len(frames), 4, 4)).copy() for o in objects]
    out = [np.empty((len(frames), 4, 4)) for _ in objects]
    current, sub = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(int(frame))
            for j, obj in enumerate(objects):
                out[j][i] = np.array(obj.matrix_world)
    finally:
        scene.frame_set(current, subframe=sub)
    return out


# --------------------------------------------------------------------------------------
# Writing


def write_shape_key_animation(obj: bpy.types.Object, blendshapes: np.ndarray,
                              frames: np.ndarray, mapping: ShapeKeyMapping,
                              replace: bool) -> bpy.types.Action:
    """One F-curve per mapped shape key, in a NEW action unless ``replace``.

    New action: the animator's previous action stays (with a fake user, see
    ``compat.assign_action``) and can be re-assigned in the Action editor. ``replace``
    writes into the current action, overwriting only the mapped keys' curves.
    """
    keys = obj.data.shape_keys
    anim = keys.animation_data
    action = anim.action if (replace and anim is not None and anim.action) else None
    if action is None:
        action = bpy.data.actions.new(f"Facecast {obj.name}")
    fcurves = compat.fcurves_for(action, keys)
    for key_name, column in mapping.key_columns().items():
        compat.write_fcurve(fcurves, key_data_path(key_name), frames, blendshapes[:, column],
                            group=GROUP, replace=True)
    compat.assign_action(keys, action)
    return action


def write_transform_animation(obj: bpy.types.Object, head_pose: np.ndarray,
                              frames: np.ndarray, replace: bool) -> bpy.types.Action:
    """Head motion onto ``obj``: its current transform times each frame's pose.

    The pose is relative (identity = the rest pose), so the head keeps wherever the
    animator placed it. Euler angles are made continuous frame to frame so the curves
    never jump by 360 degrees.
    """
    base = obj.matrix_basis.copy()
    n = len(frames)
    loc = np.empty((n, 3), np.float32)
    mode = obj.rotation_mode
    quat_mode = mode == "QUATERNION"
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
        elif mode in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"):
            euler = quat.to_euler(mode, prev) if prev is not None else quat.to_euler(mode)
            prev = euler
            rot[i] = euler
        else:
            raise InputError(f"'{obj.name}' uses {mode} rotation",
                             "set its rotation mode to XYZ Euler or Quaternion")
    anim = obj.animation_data
    action = anim.action if (replace and anim is not None and anim.action) else None
    if action is None:
        action = bpy.data.actions.new(f"Facecast Head {obj.name}")
    fcurves = compat.fcurves_for(action, obj)
    for axis in range(3):
        compat.write_fcurve(fcurves, "location", frames, loc[:, axis], index=axis,
                            group=GROUP, replace=True)
    rot_path = "rotation_quaternion" if quat_mode else "rotation_euler"
    for axis in range(rot.shape[1]):
        compat.write_fcurve(fcurves, rot_path, frames, rot[:, axis], index=axis,
                            group=GROUP, replace=True)
    compat.assign_action(obj, action)
    return action


def write_landmark_empties(obj: bpy.types.Object, landmarks: np.ndarray,
                           frames: np.ndarray) -> bpy.types.Collection:
    """One animated empty per landmark, parented to the face (landmarks are head-local).

    The empties live in their own collection named after the face, reused (and their
    keys replaced) on the next Generate: they are Facecast's output, not user work.
    """
    name = f"{LANDMARK_COLLECTION} {obj.name}"
    coll = bpy.data.collections.get(name)
    if coll is None:
        coll = bpy.data.collections.new(name)
        bpy.context.scene.collection.children.link(coll)
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


# --------------------------------------------------------------------------------------
# Sequencer


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
