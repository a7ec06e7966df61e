"""Drawing pieces the panel and the preferences share: wrapped text and the backend's
status line with its Start/Stop/Connect buttons.

Its own module so the preferences and the panel both read the session's state from here
and neither imports the other (the preferences -> panel -> session -> preferences
loop it replaces).
"""

from __future__ import annotations

import textwrap

import bpy

from .. import job_session

_STATE_ICONS = {"connected": "CHECKMARK", "running": "CHECKMARK", "starting": "TIME",
                "connecting": "TIME", "stopped": "RADIOBUT_OFF", "error": "ERROR"}


def wrapped(layout: bpy.types.UILayout, text: str, icon: str = "NONE", width: int = 48,
             alert: bool = False) -> None:
    col = layout.column(align=True)
    col.alert = alert
    for i, line in enumerate(textwrap.wrap(text, width) or [""]):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def draw_backend_status(layout: bpy.types.UILayout) -> None:
    """Running/stopped/error line plus Start/Stop/Connect (shared with the preferences)."""
    state, text = job_session.backend_status()
    row = layout.row(align=True)
    row.alert = state == "error"
    row.label(text=f"Backend: {state}", icon=_STATE_ICONS.get(state, "NONE"))
    if job_session.SESSION.backend.local.proc is not None:
        row.operator("facecast.stop_backend", text="", icon="PAUSE")
    else:
        row.operator("facecast.start_backend", text="", icon="PLAY")
    row.operator("facecast.connect", text="", icon="FILE_REFRESH")
    if state == "error" and text:
        wrapped(layout, text, alert=True)
