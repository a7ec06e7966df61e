"""What a job's lifecycle events mean for any task the panel shows (no bpy).

ACCEPTED, PROGRESS, CANCELLED and ERROR update a task the same way whether it animates
or renders; each task handles only its own data events (results, frames, DONE).
"""

from __future__ import annotations

from typing import Any

from ..shared.protocol import Event, MsgType


def apply_lifecycle(task: Any, event: Event, working: str, *, track_progress: bool = True
                    ) -> bool:
    """Update ``task``'s state/progress/message/error; True if ``event`` was handled.

    ``track_progress=False`` leaves ``task.progress`` to the task (a render counts the
    frames on disk, including reused ones, not the backend's fraction of the rest).
    """
    body = event.body or {}
    if event.kind == MsgType.ACCEPTED:
        task.message = "queued" if body.get("queued") else working
    elif event.kind == MsgType.PROGRESS:
        if track_progress:
            task.progress = float(body.get("fraction", task.progress))
        task.message = str(body.get("message") or working)
    elif event.kind == MsgType.CANCELLED:
        task.state, task.message = "cancelled", "cancelled"
    elif event.kind == MsgType.ERROR:
        task.state = "error"
        task.error = str(body.get("message") or "the backend reported an error")
    else:
        return False
    return True
