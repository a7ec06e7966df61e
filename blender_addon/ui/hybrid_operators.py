"""Hybrid CG/NeRF shots: place the rendered head with an anchor, and depth-combine its
frames with the scene's CG render (:mod:`scene_composite`)."""

from __future__ import annotations

import bpy
from mathutils import Matrix

from .. import scene_inputs
from ..shared.errors import FacecastError
from ..writers import scene_composite
from .operators import fail

ANCHOR_NAME = "Facecast Head Anchor"
MOTION_NAME = "Facecast Head Motion"


class FACECAST_OT_add_head_anchor(bpy.types.Operator):
    """Add an empty that places the rendered head (where the face is now) and a child
    that receives the generated head motion, so moving the anchor moves the head"""

    bl_idname = "facecast.add_head_anchor"
    bl_label = "Add Head Anchor"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT" and context.scene is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.facecast
        try:
            face = scene_inputs.face_object(settings)
        except FacecastError as exc:
            return fail(self, context, exc)
        collection = context.collection or context.scene.collection
        anchor = bpy.data.objects.new(ANCHOR_NAME, None)
        anchor.empty_display_type = "SINGLE_ARROW"
        anchor.matrix_world = face.matrix_world.copy()
        collection.objects.link(anchor)
        motion = bpy.data.objects.new(MOTION_NAME, None)
        motion.empty_display_type = "ARROWS"
        motion.empty_display_size = 0.05
        motion.parent = anchor
        motion.matrix_parent_inverse = Matrix.Identity(4)
        collection.objects.link(motion)
        settings.head_anchor, settings.head_anchor_bone = anchor, ""
        settings.head_target = motion
        self.report({"INFO"}, f"'{anchor.name}' places the rendered head; Animate writes "
                              f"head motion to '{motion.name}' under it")
        return {"FINISHED"}


class FACECAST_OT_composite_with_scene(bpy.types.Operator):
    """Depth-combine the rendered head with the scene's CG render in the compositor
    (builds or updates its nodes; your own nodes are left as they are)"""

    bl_idname = "facecast.composite_with_scene"
    bl_label = "Composite with Scene"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            summary = scene_composite.build(scene, context.view_layer,
                                            scene.facecast.nerf_frames)
        except FacecastError as exc:
            return fail(self, context, exc)
        scene.facecast.last_error = ""
        scene.facecast.status = summary
        self.report({"INFO"}, summary)
        return {"FINISHED"}


class FACECAST_OT_composite_off(bpy.types.Operator):
    """Remove the NeRF/CG combine and give the compositor back as it was"""

    bl_idname = "facecast.composite_off"
    bl_label = "Stop Compositing"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and scene_composite.is_active(context.scene)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene_composite.remove(context.scene)
        context.scene.facecast.status = "compositor restored"
        return {"FINISHED"}


def draw_hybrid(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The panel's Hybrid Shot box: the anchor, the frames, the combine."""
    s = context.scene.facecast
    layout.label(text="Hybrid Shot (CG + NeRF)", icon="NODE_COMPOSITING")
    col = layout.column()
    col.prop(s, "head_anchor")
    anchor = s.head_anchor
    if anchor is not None and anchor.type == "ARMATURE":
        col.prop_search(s, "head_anchor_bone", anchor.data, "bones")
    col.operator(FACECAST_OT_add_head_anchor.bl_idname, icon="EMPTY_AXIS")
    col.prop(s, "nerf_frames")
    active = scene_composite.is_active(context.scene)
    row = col.row(align=True)
    row.operator(FACECAST_OT_composite_with_scene.bl_idname,
                 text="Update Composite" if active else "Composite with Scene",
                 icon="NODE_COMPOSITING", depress=active)
    if active:
        row.operator(FACECAST_OT_composite_off.bl_idname, text="", icon="X")


_CLASSES = (FACECAST_OT_add_head_anchor, FACECAST_OT_composite_with_scene,
            FACECAST_OT_composite_off)

register, unregister = bpy.utils.register_classes_factory(_CLASSES)
