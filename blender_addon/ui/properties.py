"""Per-scene Facecast settings (``scene.facecast``): inputs, emotion sliders, job state.

Why on the scene: the emotion sliders must be keyframable on the timeline and in the
graph editor like any other property, and a scene is what owns the dialogue's timeline
(its sound strips, frame rate and range). Each emotion is its own animatable float
(``scene.facecast.happy`` ...), so an animator keys "angry 0.7 at frame 40" with the
I key or the "Key Emotion Here" button, and Animate samples those curves per frame.

No ``from __future__ import annotations``: Blender reads these annotations as live
property definitions.
"""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .. import compat, job_session
from ..shared.blendshapes import ARKIT_BLENDSHAPES
from ..shared.emotion_profiles import EMOTION_PROFILES
from ..shared.emotions import EMOTIONS
from ..writers import pose_library

# The sliders' tooltips: each profile's ``description`` in the one emotion table.
EMOTION_DESCRIPTIONS = {p.name: p.description for p in EMOTION_PROFILES}


def _arkit_search(self: bpy.types.PropertyGroup, context: bpy.types.Context,
                  edit_text: str) -> list[str]:
    text = edit_text.lower()
    return [n for n in ARKIT_BLENDSHAPES if text in n.lower()]


def _target_search(self: bpy.types.PropertyGroup, context: bpy.types.Context,
                   edit_text: str) -> list[str]:
    """Shape keys of a face mesh, or pose actions of a bone rig."""
    settings = getattr(context.scene, "facecast", None)
    obj = settings.target if settings else None
    text = edit_text.lower()
    if obj is not None and obj.type == "ARMATURE":
        return sorted(n for n in pose_library.pose_candidates(obj) if text in n.lower())
    keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if keys is None:
        return []
    return [k.name for k in keys.key_blocks[1:] if text in k.name.lower()]


def _sound_strip_search(self: bpy.types.PropertyGroup, context: bpy.types.Context,
                        edit_text: str) -> list[str]:
    scene = context.scene
    if scene.sequence_editor is None:
        return []
    text = edit_text.lower()
    return sorted(s.name for s in compat.sequencer_strips_all(scene)
                  if s.type == "SOUND" and text in s.name.lower())


def _subject_search(self: bpy.types.PropertyGroup, context: bpy.types.Context,
                    edit_text: str) -> list[str]:
    # Filled from the backend's `info` answer when connected; any typed name still works.
    text = edit_text.lower()
    return [s for s in job_session.SESSION.backend.subjects if text in s.lower()]


def _is_face(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE" or (obj.type == "MESH" and obj.data.shape_keys is not None)


class FacecastMappingOverride(bpy.types.PropertyGroup):
    """One override: what an ARKit channel (or a group of them) drives; empty = nothing."""

    arkit: StringProperty(
        name="ARKit Channels", search=_arkit_search,
        description="ARKit channel to override, or several joined by + for a group pose "
                    "(weight = their mean; name*0.5 sets a share), e.g. "
                    "mouthSmileLeft+mouthSmileRight")
    target_name: StringProperty(
        name="Target",
        description="Shape key (face mesh) or pose action (bone rig) that these channels "
                    "drive; empty means the channel drives nothing",
        search=_target_search)


class FacecastSettings(bpy.types.PropertyGroup):
    """Everything the Facecast panel shows for one scene."""

    # -- inputs --
    audio_source: EnumProperty(
        name="Audio Source",
        items=[("STRIP", "Sound Strip", "Use a sound strip of the sequencer: its position "
                "on the timeline sets where the lip sync lands"),
               ("FILE", "File", "Use an audio file that starts at a chosen frame")],
        default="STRIP")
    sound_strip: StringProperty(name="Sound Strip", description="Sound strip with the dialogue",
                                search=_sound_strip_search)
    audio_file: StringProperty(name="Audio File", subtype="FILE_PATH",
                               description="Dialogue recording (WAV, FLAC, MP3, ...)")
    audio_start_frame: IntProperty(name="Start Frame", default=1,
                                   description="Scene frame where the audio file starts")
    scene_range_only: BoolProperty(
        name="Scene Range Only", default=False,
        description="Animate only the part of the audio inside the scene's frame range")
    subject: StringProperty(
        name="Subject", search=_subject_search,
        description="Captured person to render (listed from the backend once connected)")
    target: PointerProperty(
        name="Face", type=bpy.types.Object, poll=_is_face,
        description="A mesh whose shape keys receive the animation, or a bone rig (armature) "
                    "whose pose actions are blended into it")
    dialogue_text: StringProperty(
        name="Dialogue",
        description="What is said in the recording (optional): a backend that supports it "
                    "aligns the lips to the words; left empty, Animate fills it with the "
                    "words the backend heard (edit them and Animate again to re-align)")
    dialogue_text_block: PointerProperty(
        name="Dialogue Text", type=bpy.types.Text,
        description="A text datablock holding the dialogue (wins over the field above)")

    # -- mapping --
    mapping_overrides: CollectionProperty(type=FacecastMappingOverride)
    mapping_index: IntProperty(name="Override", default=0)
    mapping_report: StringProperty(name="Mapping Report", default="")

    # -- emotions: animatable, one per emotion (annotations added below) --
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, max=1.0,
                             description="Scales the whole emotion mix (key it to fade in/out)",
                             options={"ANIMATABLE"}, subtype="FACTOR")

    # -- options --
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="Same seed + same inputs = same performance")
    variation: FloatProperty(name="Variation", default=0.5, min=0.0, max=1.0,
                             subtype="FACTOR",
                             description="How much the performance varies from the mean")
    head_motion: FloatProperty(name="Head Motion", default=1.0, min=0.0, soft_max=2.0,
                               description="Amplitude of generated head motion (0 = still)")
    articulation: FloatProperty(name="Articulation", default=1.0, min=0.0, max=3.0,
                                soft_max=2.0,
                                description="How much speech moves the mouth (1 = as "
                                            "trained, more for a clearer, wider delivery)")
    blinks: BoolProperty(name="Blinks", default=True, description="Generate eye blinks")
    landmark_empties: BoolProperty(
        name="Landmark Empties", default=False,
        description="Also create one animated empty per 3D face landmark (slow for long shots)")
    head_target: PointerProperty(name="Head Pose To", type=bpy.types.Object,
                                 description="Object that receives the generated head motion "
                                             "(empty: no head motion is written)")
    head_anchor: PointerProperty(
        name="Head Anchor", type=bpy.types.Object,
        description="Object (or one of an armature's bones) whose world transform places "
                    "the rendered head: its origin is the head's, -Y is where the face "
                    "looks, +Z is up. Move, turn or parent it to move the head in the shot. "
                    "Empty: the face object places the head")
    head_anchor_bone: StringProperty(
        name="Anchor Bone", default="",
        description="A bone of the anchor armature (e.g. the head bone): the head sits at "
                    "its base, up along the bone, the face looking along the bone's +Z")
    nerf_frames: StringProperty(
        name="NeRF Frames", subtype="DIR_PATH", default="",
        description="Folder of the rendered head (NNNNNN.png + depth/NNNNNN.exr) that "
                    "Composite with Scene combines with the CG; set by Render to Sequencer")
    render_source: EnumProperty(
        name="Conditioning",
        items=[("RIG", "Rig", "The face's shape keys as they play now: the takes on the NLA "
                "and the animator's edits (shape-key faces only)"),
               ("LAST_TAKE", "Last Take", "The last Animate result of this session, unedited, "
                "with its 3D landmarks (any face, bone rigs included)")],
        default="RIG")

    # -- job state (written by the step function) --
    job_kind: StringProperty(name="Job", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(name="Status", default="")
    last_error: StringProperty(name="Last Error", default="")


for _name in EMOTIONS:
    FacecastSettings.__annotations__[_name] = FloatProperty(
        name=_name.title(), default=1.0 if _name == "neutral" else 0.0, min=0.0, max=1.0,
        subtype="FACTOR", options={"ANIMATABLE"}, description=EMOTION_DESCRIPTIONS[_name])


_CLASSES = (FacecastMappingOverride, FacecastSettings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.facecast = PointerProperty(type=FacecastSettings)


def unregister() -> None:
    del bpy.types.Scene.facecast
    _unregister_classes()
