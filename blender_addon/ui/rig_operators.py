"""Operators that create or inspect rigs (for now: "Create Demo Rig")."""

from __future__ import annotations

import bpy

from ..writers.demo_rig import create_demo_rig


class FACECAST_OT_create_demo_rig(bpy.types.Operator):
    """Add a face mesh with the 52 ARKit shape keys, for trying Facecast without a rig"""

    bl_idname = "facecast.create_demo_rig"
    bl_label = "Create Demo Rig"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        # Adding objects needs Object Mode; otherwise the new object would join an edit session.
        return context.mode == "OBJECT" and context.scene is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        collection = context.collection or context.scene.collection
        location = tuple(context.scene.cursor.location)
        obj = create_demo_rig(collection, location)
        # Make the new head the active, only selected object, as Blender's Add menu does.
        for other in context.view_layer.objects.selected:
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        n_keys = len(obj.data.shape_keys.key_blocks) - 1
        self.report({"INFO"}, f"Created '{obj.name}' with {n_keys} ARKit shape keys")
        return {"FINISHED"}


def _draw_add_menu(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.separator()
    self.layout.operator(FACECAST_OT_create_demo_rig.bl_idname, icon="USER")


_CLASSES = (FACECAST_OT_create_demo_rig,)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.VIEW3D_MT_mesh_add.append(_draw_add_menu)


def unregister() -> None:
    bpy.types.VIEW3D_MT_mesh_add.remove(_draw_add_menu)
    _unregister_classes()
