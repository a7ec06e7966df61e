"""What the demo says, feels and looks through when the user gives nothing.

The emotion track is keyed at fractions of the line so it changes visibly whatever the
length of the speech: neutral, then happy, surprised, angry and sad, each held a while.
The camera is ``backend.subject.framing.front_camera`` (the head and neck from the front),
the same one ``facecast render --camera front`` uses.
"""

from __future__ import annotations

DEFAULT_LINE = ("Hello! I'm a Facecast demo. I can smile when I'm happy, look surprised, "
                "get a little angry, and then feel sad about it.")
QUICK_LINE = "Hello! I can smile, look surprised, and get angry."

#: (fraction of the line, emotion mix, intensity)
EMOTION_KEYS = ((0.0, "neutral", 1.0), (0.15, "happy", 0.9), (0.4, "surprised", 0.8),
                (0.62, "angry", 0.8), (0.85, "sad", 0.8))


def default_emotion_track(n_frames: int) -> str:
    """The demo's emotion track in the ``frame:emotion@intensity`` grammar. On a line
    too short for every key to get a frame of its own, a key that lands on an earlier
    key's frame replaces it (one key per frame, whatever the length)."""
    keys: dict[int, str] = {}
    for frac, emo, inten in EMOTION_KEYS:
        keys[round(frac * max(n_frames - 1, 0))] = f"{emo}@{inten:g}"
    return ",".join(f"{frame}:{key}" for frame, key in keys.items())
