"""Operators on takes: bake what plays into one action.

Switching takes needs no operator of ours: the takes are ordinary NLA tracks (unmute or
solo one in the NLA editor). Baking is what needs care — see :func:`takes.bake_takes`.
"""

from __future__ import annotations

import bpy

from .. import scene_inputs
from ..shared.errors import FacecastError
from ..writers.take_writer import face_id
from ..writers.takes import bake_takes


class FACECAST_OT_bake_takes(bpy.types.Operator):
    """Bake the playing take and your keys on top into one new action (the active action);
    the takes are muted and kept, your previous action is kept too"""

    bl_idname = "facecast.bake_takes"
    bl_label = "Bake to One Action"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = getattr(context.scene, "facecast", None)
        return settings is not None and settings.target is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.facecast
        try:
            target = face_id(scene_inputs.face_object(settings))
            action, n = bake_takes(context.scene, target)
        except FacecastError as exc:
            settings.last_error, settings.status = exc.message, "failed"
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        settings.last_error = ""
        settings.status = f"baked {n} frames into '{action.name}' (takes muted, kept)"
        self.report({"INFO"}, settings.status)
        return {"FINISHED"}


_CLASSES = (FACECAST_OT_bake_takes,)


register, unregister = bpy.utils.register_classes_factory(_CLASSES)
