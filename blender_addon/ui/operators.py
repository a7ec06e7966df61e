"""Operators behind the Facecast panel.

Each one only *starts* something and returns at once; :func:`job_session.step` (timer
in Blender, a loop in tests) does the waiting. Errors are written to
``scene.facecast.last_error`` as well as reported, because the panel, not the console,
is where animators look.
"""

from __future__ import annotations

import bpy

from .. import job_session, scene_inputs
from ..shared.emotions import EMOTIONS
from ..shared.errors import FacecastError
from .preferences import backend_settings


def fail(op: bpy.types.Operator, context: bpy.types.Context, exc: FacecastError) -> set[str]:
    settings = getattr(context.scene, "facecast", None)
    if settings is not None:
        settings.last_error = exc.message
        settings.status = "failed"
    op.report({"ERROR"}, exc.message)
    return {"CANCELLED"}


class FACECAST_OT_start_backend(bpy.types.Operator):
    """Start a local Facecast backend (facecast serve) with the executable from the preferences"""

    bl_idname = "facecast.start_backend"
    bl_label = "Start Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            settings = backend_settings(context)
            job_session.start_local_backend(settings)
            job_session.connect(settings)
        except FacecastError as exc:
            return fail(self, context, exc)
        self.report({"INFO"}, "Starting the Facecast backend")
        return {"FINISHED"}


class FACECAST_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender started (a backend started elsewhere keeps running)"""

    bl_idname = "facecast.stop_backend"
    bl_label = "Stop Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_session.stop_local_backend()
        return {"FINISHED"}


class FACECAST_OT_connect(bpy.types.Operator):
    """Connect to the backend at the address in the preferences and list its subjects"""

    bl_idname = "facecast.connect"
    bl_label = "Connect"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job_session.connect(backend_settings(context))
        except FacecastError as exc:
            return fail(self, context, exc)
        return {"FINISHED"}


class FACECAST_OT_check_mapping(bpy.types.Operator):
    """Match the face's shape keys or pose actions to the 52 ARKit channels and show what
    drives what and what is missing"""

    bl_idname = "facecast.check_mapping"
    bl_label = "Check Mapping"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.facecast
        try:
            obj = scene_inputs.face_object(settings)
            mapping = scene_inputs.face_mapping(obj, scene_inputs.mapping_overrides(settings))
        except FacecastError as exc:
            settings.mapping_report = exc.message
            return fail(self, context, exc)
        settings.mapping_report = mapping.report()
        settings.last_error = ""
        self.report({"WARNING"} if mapping.missing or mapping.ambiguous else {"INFO"},
                    settings.mapping_report[:200])
        return {"FINISHED"}


class FACECAST_OT_mapping_add(bpy.types.Operator):
    """Add a mapping override (ARKit name, or names joined by +, -> shape key or pose
    action)"""

    bl_idname = "facecast.mapping_add"
    bl_label = "Add Override"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.facecast
        settings.mapping_overrides.add()
        settings.mapping_index = len(settings.mapping_overrides) - 1
        return {"FINISHED"}


class FACECAST_OT_mapping_remove(bpy.types.Operator):
    """Remove the selected shape-key override"""

    bl_idname = "facecast.mapping_remove"
    bl_label = "Remove Override"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.facecast.mapping_overrides) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.facecast
        settings.mapping_overrides.remove(settings.mapping_index)
        settings.mapping_index = max(0, settings.mapping_index - 1)
        return {"FINISHED"}


class FACECAST_OT_key_emotion(bpy.types.Operator):
    """Insert keyframes for every emotion slider and the intensity at the current frame"""

    bl_idname = "facecast.key_emotion"
    bl_label = "Key Emotion Here"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        settings = scene.facecast
        frame = scene.frame_current
        for name in (*EMOTIONS, "intensity"):
            settings.keyframe_insert(name, frame=frame, group="Facecast Emotions")
        self.report({"INFO"}, f"Keyed the emotion mix at frame {frame}")
        return {"FINISHED"}


class FACECAST_OT_animate(bpy.types.Operator):
    """Send the dialogue and the keyed emotions to the backend; the face gets a new take on
    the NLA (shape keys or blended poses; earlier takes and your keys are kept)"""

    bl_idname = "facecast.animate"
    bl_label = "Animate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not job_session.SESSION.busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job_session.start_animate(context.scene, backend_settings(context))
        except FacecastError as exc:
            return fail(self, context, exc)
        return {"FINISHED"}


class FACECAST_OT_render(bpy.types.Operator):
    """Render the performance as photoreal frames of the subject into the sequencer"""

    bl_idname = "facecast.render_to_sequencer"
    bl_label = "Render to Sequencer"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not job_session.SESSION.busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job_session.start_render(context.scene, backend_settings(context))
        except FacecastError as exc:
            return fail(self, context, exc)
        return {"FINISHED"}


class FACECAST_OT_cancel(bpy.types.Operator):
    """Stop the running Facecast job (frames already rendered are kept)"""

    bl_idname = "facecast.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return job_session.SESSION.busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_session.cancel()
        return {"FINISHED"}


class FACECAST_OT_step(bpy.types.Operator):
    """Advance Facecast's network polling once (for scripts; the UI does this on a timer)"""

    bl_idname = "facecast.step"
    bl_label = "Facecast Step"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        job_session.step()
        return {"FINISHED"}


_CLASSES = (
    FACECAST_OT_start_backend, FACECAST_OT_stop_backend, FACECAST_OT_connect,
    FACECAST_OT_check_mapping, FACECAST_OT_mapping_add, FACECAST_OT_mapping_remove,
    FACECAST_OT_key_emotion, FACECAST_OT_animate, FACECAST_OT_render, FACECAST_OT_cancel,
    FACECAST_OT_step,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_CLASSES)
register = _register_classes


def unregister() -> None:
    job_session.shutdown()
    _unregister_classes()
