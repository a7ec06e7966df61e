"""The Facecast sidebar panel, in the 3D View (animators) and the Sequencer (editors).

One draw function serves both editors; the panel classes for each space are made by
:func:`_panel_classes` so the two can never drift apart. Errors are drawn in the panel
in red, because the console is where nobody looks.
"""

from __future__ import annotations

import bpy

from .. import job_session, scene_inputs
from ..core.animate_job import ANIMATE_KIND, TEXT_FEATURE, TEXT_UNSUPPORTED
from ..shared.emotions import EMOTIONS
from . import hybrid_operators
from .widgets import draw_backend_status, wrapped


def draw_panel(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    scene = context.scene
    s = scene.facecast
    layout.use_property_split = True
    layout.use_property_decorate = False

    draw_backend_status(layout.box())

    col = layout.column()
    col.prop(s, "audio_source", expand=True)
    if s.audio_source == "STRIP":
        col.prop(s, "sound_strip", icon="SOUND")
    else:
        col.prop(s, "audio_file")
        col.prop(s, "audio_start_frame")
    col.prop(s, "scene_range_only")
    col.prop(s, "target")
    col.prop(s, "subject", icon="USER")
    consent = job_session.SESSION.backend.subject_consent.get(s.subject.strip())
    if consent:
        wrapped(col, consent, icon="INFO")
    coverage = job_session.SESSION.backend.subject_coverage.get(s.subject.strip())
    if coverage:
        wrapped(col, coverage, icon="INFO")

    draw_dialogue(layout.box(), s)
    draw_mapping(layout.box(), s)

    box = layout.box()
    box.label(text="Emotions (animatable)", icon="KEYINGSET")
    col = box.column(align=True)
    col.use_property_decorate = True  # the keyframe dots: key them right here
    for name in EMOTIONS:
        col.prop(s, name, slider=True)
    col.separator()
    col.prop(s, "intensity", slider=True)
    box.operator("facecast.key_emotion", icon="KEY_HLT")

    box = layout.box()
    box.label(text="Options", icon="PREFERENCES")
    col = box.column()
    col.prop(s, "seed")
    col.prop(s, "variation", slider=True)
    col.prop(s, "head_motion")
    col.prop(s, "articulation", slider=True)
    col.prop(s, "blinks")
    col.prop(s, "head_target")
    col.prop(s, "landmark_empties")
    col.prop(s, "render_source")

    hybrid_operators.draw_hybrid(layout.box(), context)

    col = layout.column(align=True)
    col.scale_y = 1.3
    busy = job_session.SESSION.busy
    row = col.row(align=True)
    row.enabled = not busy
    row.operator("facecast.animate", icon="SHAPEKEY_DATA")
    row = col.row(align=True)
    row.enabled = not busy
    row.operator("facecast.render_to_sequencer", icon="SEQUENCE")

    if s.job_kind or busy:
        box = layout.box()
        label = f"{s.job_kind.title()}: {s.status}" if s.job_kind else s.status
        if hasattr(box, "progress"):  # UILayout.progress exists from Blender 4.0
            box.progress(factor=s.progress, type="BAR", text=f"{s.progress * 100:.0f}%")
        else:
            box.label(text=f"{s.progress * 100:.0f}%")
        wrapped(box, label)
        stalled = job_session.stall_note()
        if stalled:
            wrapped(box, stalled, icon="TIME", alert=True)
        if busy:
            box.operator("facecast.cancel", icon="CANCEL")
    if s.last_error:
        wrapped(layout.box(), s.last_error, icon="ERROR", alert=True)
    draw_takes(layout.box(), s)


def draw_dialogue(layout: bpy.types.UILayout, s: object) -> None:
    """The dialogue text, and a warning when the connected backend cannot use it."""
    layout.label(text="Dialogue (optional)", icon="TEXT")
    layout.prop(s, "dialogue_text", text="")
    layout.prop(s, "dialogue_text_block", text="Text")
    has_text = bool(s.dialogue_text.strip()) or s.dialogue_text_block is not None
    backend = job_session.SESSION.backend
    if has_text and backend.ready and not backend.supports(ANIMATE_KIND, TEXT_FEATURE):
        wrapped(layout, TEXT_UNSUPPORTED, icon="ERROR")


def draw_mapping(layout: bpy.types.UILayout, s: object) -> None:
    layout.label(text="Mapping (shape keys or pose actions)", icon="SHAPEKEY_DATA")
    row = layout.row()
    row.template_list("FACECAST_UL_overrides", "", s, "mapping_overrides", s,
                      "mapping_index", rows=2)
    sub = row.column(align=True)
    sub.operator("facecast.mapping_add", text="", icon="ADD")
    sub.operator("facecast.mapping_remove", text="", icon="REMOVE")
    layout.operator("facecast.check_mapping", icon="VIEWZOOM")
    if s.mapping_report:
        wrapped(layout, s.mapping_report, icon="INFO")


def draw_takes(layout: bpy.types.UILayout, s: object) -> None:
    """The face's takes on the NLA (newest plays) and Bake."""
    from ..shared.errors import FacecastError
    from ..writers.take_writer import face_id
    from ..writers.takes import takes_of

    layout.label(text="Takes (NLA)", icon="NLA")
    try:
        takes = takes_of(face_id(scene_inputs.face_object(s)))
    except FacecastError:  # no face yet, or one without shape keys: nothing to list
        takes = []
    if not takes:
        layout.label(text="Each Animate adds a take here")
    for take in reversed(takes):
        layout.label(text=f"{take.track}: frames {take.start:.0f}-{take.end:.0f}"
                     f"{' (muted)' if take.muted else ' (playing)'}",
                     icon="HIDE_ON" if take.muted else "PLAY")
    layout.operator("facecast.bake_takes", icon="ACTION")


class FACECAST_UL_overrides(bpy.types.UIList):
    """ARKit channel(s) -> shape key or pose action; an empty target leaves it unmapped."""

    def draw_item(self, context: bpy.types.Context, layout: bpy.types.UILayout,
                  data: object, item: object, icon: int, active_data: object,
                  active_propname: str, index: int = 0, flt_flag: int = 0) -> None:
        row = layout.row(align=True)
        row.prop(item, "arkit", text="", emboss=True)
        row.label(icon="FORWARD")
        row.prop(item, "target_name", text="", emboss=True)


def _panel_classes() -> tuple[type, ...]:
    classes = []
    for space, suffix in (("VIEW_3D", "view3d"), ("SEQUENCE_EDITOR", "sequencer")):
        attrs = {
            "bl_idname": f"FACECAST_PT_{suffix}",
            "bl_label": "Facecast",
            "bl_space_type": space,
            "bl_region_type": "UI",
            "bl_category": "Facecast",
            "__doc__": "Speech + emotion keys -> face animation and NeRF frames",
            "draw": lambda self, context: draw_panel(self.layout, context),
            "poll": classmethod(lambda cls, context: context.scene is not None and
                                hasattr(context.scene, "facecast")),
        }
        classes.append(type(f"FACECAST_PT_{suffix}", (bpy.types.Panel,), attrs))
    return tuple(classes)


_CLASSES = (FACECAST_UL_overrides, *_panel_classes())


register, unregister = bpy.utils.register_classes_factory(_CLASSES)
