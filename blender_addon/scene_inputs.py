"""What a job reads from the scene: audio, emotion keys, dialogue text, the face's
mapping, and a render's conditioning and camera — as typed values, validated.

Sampling evaluates F-curves at each frame instead of stepping the scene
(``frame_set``), which would re-evaluate the whole dependency graph per frame; only
when something can only be resolved by Blender's own evaluation (an NLA stack,
parents, constraints) is the scene stepped, and the playhead is restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bpy
import numpy as np

from . import compat
from .core.animate_job import dialogue_text, scene_fps
from .core.rig_mapping import POSES, SHAPE_KEYS, RigMapping, map_rig
from .shared.blendshapes import ARKIT_BLENDSHAPES
from .shared.camera import camera_dict_from_blender
from .shared.emotions import EMOTIONS
from .shared.errors import InputError
from .shared.landmarks import HEAD_TO_BLENDER
from .writers import pose_library
from .writers.take_writer import key_data_path


@dataclass(frozen=True)
class AudioInput:
    """The dialogue: a file, the scene frame where its sample 0 plays, and (for a sound
    strip) the strip's visible span and name."""

    path: str
    start_frame: float
    visible: tuple[int, int] | None = None
    strip: str = ""


@dataclass
class RenderInputs:
    """Per-frame conditioning, camera and head transform for a render."""

    frames: np.ndarray  # scene frames [T]
    arrays: dict[str, np.ndarray]  # blendshapes [T, 52], head_pose [T, 4, 4], landmarks?
    camera: dict  # shared/camera.py's dict; matrix_world [4, 4] or [T, 4, 4]
    static_camera: bool
    target: str  # face object name
    subject: str


@dataclass(frozen=True)
class LastAnimation:
    """The last Animate result of a face, kept for "Render: Generated" in this session."""

    frames: np.ndarray
    blendshapes: np.ndarray
    landmarks: np.ndarray | None
    take: int


# --------------------------------------------------------------------------------------
# The face and its mapping


def face_object(settings: object) -> bpy.types.Object:
    obj = settings.target  # type: ignore[attr-defined]
    if obj is None:
        raise InputError("No face is chosen",
                         "pick a mesh with shape keys or a bone rig as Face (or use "
                         "Create Demo Rig)")
    return obj


def mapping_overrides(settings: object) -> dict[str, str]:
    rows = settings.mapping_overrides  # type: ignore[attr-defined]
    return {o.arkit: o.target_name for o in rows if o.arkit.strip()}


def face_mapping(obj: bpy.types.Object, overrides: dict[str, str]) -> RigMapping:
    """ARKit channels -> the face's shape keys (mesh) or pose actions (armature)."""
    if obj.type == "ARMATURE":
        candidates = pose_library.pose_candidates(obj)
        if not candidates:
            raise InputError(f"'{obj.name}' is a bone rig with no pose actions",
                             "make a pose library: one action per ARKit channel (e.g. "
                             "'jawOpen'), or per viseme/expression with a "
                             "'facecast_channels' property")
        return map_rig(list(candidates), POSES, overrides,
                       pose_library.declared_groups(candidates))
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        raise InputError(f"'{obj.name}' has no shape keys",
                         "pick a face mesh with ARKit-style shape keys or a bone rig with "
                         "pose actions, or use Create Demo Rig")
    reference = keys.reference_key.name if keys.reference_key else ""
    names = [k.name for k in keys.key_blocks if k.name != reference]
    return map_rig(names, SHAPE_KEYS, overrides)


# --------------------------------------------------------------------------------------
# Audio, emotions, text


def audio_input(scene: bpy.types.Scene) -> AudioInput:
    """The dialogue the panel points at: a file, or a sound strip of the sequencer."""
    settings = scene.facecast
    fps = scene_fps(scene.render.fps, scene.render.fps_base)
    if settings.audio_source == "FILE":
        if not settings.audio_file:
            raise InputError("No audio file is chosen", "pick the dialogue recording")
        return AudioInput(bpy.path.abspath(settings.audio_file),
                          float(settings.audio_start_frame))
    strips = compat.sequencer_strips_all(scene) if scene.sequence_editor else {}
    strip = strips.get(settings.sound_strip) if settings.sound_strip else None
    if strip is None:
        sounds = [s for s in strips if s.type == "SOUND"] if scene.sequence_editor else []
        if len(sounds) == 1 and not settings.sound_strip:
            strip = sounds[0]  # the obvious choice: one sound strip in the edit
        else:
            raise InputError(f"Sound strip {settings.sound_strip!r} not found" if
                             settings.sound_strip else "No sound strip is chosen",
                             "pick the dialogue's sound strip (or switch Audio to File)")
    if strip.type != "SOUND" or strip.sound is None:
        raise InputError(f"Strip {strip.name!r} is not a sound strip", "pick a sound strip")
    path = bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)
    offset_frames = float(getattr(strip, "sound_offset", 0.0)) * fps
    visible = (int(strip.frame_final_start), int(strip.frame_final_end))
    return AudioInput(path, float(strip.frame_start) - offset_frames, visible, strip.name)


def sound_strip(scene: bpy.types.Scene) -> object | None:
    """The dialogue's sound strip, if the audio comes from one (else None)."""
    try:
        audio = audio_input(scene)
    except InputError:
        return None
    return compat.sequencer_strips_all(scene).get(audio.strip) if audio.strip else None


def dialogue(settings: object) -> str:
    """The dialogue text: the chosen Text datablock wins over the field."""
    block = settings.dialogue_text_block  # type: ignore[attr-defined]
    raw = block.as_string() if block is not None else settings.dialogue_text  # type: ignore
    return dialogue_text(raw)


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


# --------------------------------------------------------------------------------------
# Render conditioning


def _has_nla(id_data: bpy.types.ID) -> bool:
    anim = id_data.animation_data
    return anim is not None and any(not t.mute for t in anim.nla_tracks)


def sample_shape_keys(scene: bpy.types.Scene, obj: bpy.types.Object, mapping: RigMapping,
                      frames: np.ndarray) -> np.ndarray:
    """``blendshapes[T, 52]`` as the face's shape keys play now (takes on the NLA and
    the animator's keys included); channels without a key are 0."""
    keys = obj.data.shape_keys
    out = np.zeros((len(frames), len(ARKIT_BLENDSHAPES)), dtype=np.float32)
    single = mapping.single()
    if not _has_nla(keys):
        for arkit, key_name in single.items():
            out[:, ARKIT_BLENDSHAPES.index(arkit)] = sample_property(
                keys, key_data_path(key_name), frames, keys.key_blocks[key_name].value)
        return np.clip(out, 0.0, 1.0)
    columns = [(ARKIT_BLENDSHAPES.index(a), keys.key_blocks[k]) for a, k in single.items()]
    current, sub = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(int(frame))
            for col, block in columns:
                out[i, col] = block.value
    finally:
        scene.frame_set(current, subframe=sub)
    return np.clip(out, 0.0, 1.0)


def _is_animated(obj: bpy.types.Object | None) -> bool:
    while obj is not None:
        anim = obj.animation_data
        if anim is not None and (anim.action is not None or len(anim.drivers)
                                 or _has_nla(obj)):
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


def scene_frames(scene: bpy.types.Scene, last: LastAnimation | None,
                 generated: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The frames to render: the scene's frame range, always (whatever was animated
    before). With Last Take, only the part of the range the take covers, and the rows
    of the take those frames are (``None`` for Rig)."""
    frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.int64)
    if not generated or last is None:
        return frames, None
    take = np.asarray(last.frames, dtype=np.int64)
    rows = np.searchsorted(take, frames).clip(0, len(take) - 1)
    inside = take[rows] == frames
    if not inside.any():
        raise InputError(f"The scene's frames {frames[0]}-{frames[-1]} lie outside the last "
                         f"take (frames {take[0]}-{take[-1]})",
                         "set the scene's frame range inside the take, Animate again, or set "
                         "Conditioning to Rig")
    return frames[inside], rows[inside]


# --------------------------------------------------------------------------------------
# The head anchor

#: A bone's axes -> the anchor's: the bone points up the head (its +Y is the head's up,
#: Blender +Z) and its +Z points where the face looks (the anchor's -Y). A vertical
#: bone with roll 0 in an unrotated armature therefore faces the Front view, like an
#: unrotated empty.
BONE_TO_ANCHOR = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


def _descends_from(obj: bpy.types.Object | None, ancestor: bpy.types.Object) -> bool:
    while obj is not None:
        if obj == ancestor:
            return True
        obj = obj.parent
    return False


def head_placer(settings: object) -> tuple[bpy.types.Object, str | None]:
    """The object (and bone) whose world matrix places the rendered head.

    No anchor: the face object, as before. An anchor: the anchor — or, when the
    Animate's head motion goes to an object under the anchor ("Head Pose To" = the
    anchor's child, what Add Head Anchor sets up), that object, so the generated head
    motion plays on top of wherever the anchor is moved, turned or parented.
    """
    anchor = settings.head_anchor  # type: ignore[attr-defined]
    if anchor is None:
        return face_object(settings), None
    bone = settings.head_anchor_bone.strip()  # type: ignore[attr-defined]
    if bone:
        if anchor.type != "ARMATURE" or bone not in anchor.pose.bones:
            raise InputError(f"Head anchor '{anchor.name}' has no bone {bone!r}",
                             "pick one of its bones as Anchor Bone, or clear the field to "
                             "use the object itself")
        return anchor, bone
    motion = settings.head_target  # type: ignore[attr-defined]
    if motion is not None and _descends_from(motion, anchor):
        return motion, None
    return anchor, None


def bone_matrices(scene: bpy.types.Scene, rig: bpy.types.Object, bone: str,
                  frames: np.ndarray) -> np.ndarray:
    """``[T, 4, 4]`` anchor matrices of a pose bone (world, bone axes -> anchor axes),
    the scene stepped when the rig moves (poses need Blender's evaluation)."""
    def read() -> np.ndarray:
        return (np.array(rig.matrix_world) @ np.array(rig.pose.bones[bone].matrix)
                @ BONE_TO_ANCHOR)

    if not _is_animated(rig):
        return np.broadcast_to(read(), (len(frames), 4, 4)).copy()
    out = np.empty((len(frames), 4, 4))
    current, sub = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(int(frame))
            out[i] = read()
    finally:
        scene.frame_set(current, subframe=sub)
    return out


def render_inputs(scene: bpy.types.Scene, last: LastAnimation | None) -> RenderInputs:
    """Conditioning (the face as it plays now, or the last Animate result), camera and
    head transform over the scene's frame range."""
    settings = scene.facecast
    obj = face_object(settings)
    generated = settings.render_source == "LAST_TAKE"
    if generated and last is None:
        raise InputError(f"Nothing was animated for '{obj.name}' in this session",
                         "press Animate first, or set Conditioning to Rig")
    if not generated and obj.type != "MESH":
        raise InputError(f"'{obj.name}' is a bone rig: its poses cannot be read back as "
                         "ARKit weights", "set Conditioning to Last Take")
    frames, rows = scene_frames(scene, last, generated)
    arrays: dict[str, np.ndarray] = {}
    if generated:
        arrays["blendshapes"] = np.asarray(last.blendshapes, np.float32)[rows]  # type: ignore
        if last.landmarks is not None:  # type: ignore[union-attr]
            arrays["landmarks"] = np.asarray(last.landmarks, np.float32)[rows]  # type: ignore
    else:
        mapping = face_mapping(obj, mapping_overrides(settings))
        arrays["blendshapes"] = sample_shape_keys(scene, obj, mapping, frames)
    camera = scene.camera
    if camera is None:
        raise InputError("The scene has no active camera",
                         "add a camera and make it active (Ctrl+Numpad 0)")
    placer, bone = head_placer(settings)
    cam_m, head_m = world_matrices(scene, [camera, placer], frames)
    if bone is not None:
        head_m = bone_matrices(scene, placer, bone, frames)
    cam_dict = camera_dict_from_blender(camera, scene)
    static_cam = bool(np.allclose(cam_m, cam_m[:1]))
    cam_dict["matrix_world"] = (cam_m[0] if static_cam else cam_m).tolist()
    # The render job wants canonical head frame (+Y up) -> world: through the placing
    # object's local Blender axes (Z up, face looking down -Y), then its world matrix.
    arrays["head_pose"] = (head_m @ HEAD_TO_BLENDER).astype(np.float32)
    return RenderInputs(frames, arrays, cam_dict, static_cam, obj.name,
                        settings.subject.strip())
