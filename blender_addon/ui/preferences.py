"""Add-on preferences: where the backend lives and how long to wait for it.

Stored in Blender's user preferences (not the .blend) because they describe this
machine's setup, not a project. Spawning the local backend lives in ``backend_link``
(``LocalBackend``, driven through ``backend_session``); this module holds the settings,
hands them over as a :class:`BackendSettings`, and shows the backend's
running/stopped/error state with Start/Stop buttons.

No ``from __future__ import annotations`` here: Blender reads the property
annotations of registered classes as live objects, not strings.
"""

import os
import shutil

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from ..core.backend_session import DEFAULT_ADDRESS, BackendSettings
from ..shared.net import is_loopback
from .widgets import draw_backend_status

BACKEND_COMMAND = "facecast"


def addon_package() -> str:
    """The add-on's module name (``bl_ext.<repo>.facecast``), the preferences' key.

    This module is ``<add-on>.ui.preferences``: the add-on is its package's parent.
    """
    return (__package__ or "facecast.ui").rpartition(".")[0] or "facecast"


def get_preferences(context: bpy.types.Context | None = None) -> "FacecastPreferences | None":
    """Return this add-on's preferences, or None when it is not enabled (e.g. in tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_package())
    return addon.preferences if addon else None  # type: ignore[return-value]


def backend_settings(context: bpy.types.Context | None = None) -> BackendSettings:
    """The preferences as plain values (defaults when the add-on is not enabled)."""
    prefs = get_preferences(context)
    online = bool(bpy.app.online_access)
    if prefs is None:
        return BackendSettings(online_access=online)
    return BackendSettings(
        address=prefs.backend_address,
        key_file=bpy.path.abspath(prefs.key_file) if prefs.key_file else "",
        timeout_s=float(prefs.connect_timeout),
        executable=bpy.path.abspath(prefs.backend_executable)
        if prefs.backend_executable else "",
        online_access=online,
        job_timeout_s=float(prefs.job_timeout),
        start_local=bool(prefs.start_local_backend))


def resolve_backend_executable(configured: str) -> str | None:
    """Return the executable to start the local backend with, or None if none is found.

    An empty setting means "the ``facecast`` command on PATH", resolved when needed
    rather than stored, so installing the backend later just works.
    """
    if configured:
        path = bpy.path.abspath(configured)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(BACKEND_COMMAND)


class FacecastPreferences(bpy.types.AddonPreferences):
    """Connection and local-backend settings for Facecast."""

    bl_idname = addon_package()

    backend_address: StringProperty(
        name="Backend Address",
        description="ZeroMQ address of the Facecast backend, e.g. tcp://127.0.0.1:5557",
        default=DEFAULT_ADDRESS,
    )
    key_file: StringProperty(
        name="Key File",
        description=(
            "File holding the shared secret that signs messages to the backend; "
            "empty uses the backend's default key file"
        ),
        subtype="FILE_PATH",
        default="",
    )
    connect_timeout: FloatProperty(
        name="Connect Timeout",
        description="Seconds to wait for the backend to answer before reporting it is not running",
        default=5.0,
        min=0.1,
        soft_max=60.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    job_timeout: FloatProperty(
        name="Job Timeout",
        description="Seconds without progress from the backend before a job is reported as stalled",
        default=120.0,
        min=1.0,
        soft_max=3600.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    start_local_backend: BoolProperty(
        name="Start a Local Backend",
        description=(
            "When no backend answers at a local address, start one on this machine "
            "with the executable below"
        ),
        default=True,
    )
    backend_executable: StringProperty(
        name="Backend Executable",
        description=(
            "The facecast command (or a wrapper script, or a Python interpreter that has "
            "the backend installed: it runs 'python -m backend.cli serve') used to start "
            "the local backend; empty uses 'facecast' found on PATH"
        ),
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False

        col = layout.column(heading="Connection")
        col.prop(self, "backend_address")
        col.prop(self, "key_file")
        col.prop(self, "connect_timeout")
        col.prop(self, "job_timeout")

        if not bpy.app.online_access and not is_loopback(self.backend_address):
            box = col.box()
            box.alert = True
            box.label(text="Online access is disabled: only a backend on this machine "
                      "can be used", icon="ERROR")

        col = layout.column(heading="Local Backend")
        col.prop(self, "start_local_backend")
        sub = col.column()
        sub.active = self.start_local_backend
        sub.prop(self, "backend_executable")
        # Show what will actually run, so a missing install is visible before a job fails.
        resolved = resolve_backend_executable(self.backend_executable)
        if resolved:
            sub.label(text=f"Will run: {resolved}", icon="CHECKMARK")
        elif self.backend_executable:
            sub.label(text="That file does not exist or is not executable", icon="ERROR")
        else:
            sub.label(text=f"'{BACKEND_COMMAND}' not found on PATH; set it above", icon="ERROR")
        draw_backend_status(layout.box())


_CLASSES = (FacecastPreferences,)


register, unregister = bpy.utils.register_classes_factory(_CLASSES)
