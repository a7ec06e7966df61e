"""Animate, minus Blender: frame-range maths, the ``animate`` request, and a handler
that collects the job's events into arrays.

Kept free of bpy so the timing rules (the part most likely to be subtly wrong, e.g. at
29.97 fps) are plain functions, and so the add-on's step function and the tests share
one implementation. The bpy side reads the scene (``scene_inputs``) and writes the
result as a take (``take_writer``).

The request is the shared ``AnimateJobRequest`` (``shared/animate_request.py``, which
the backend's job reads with ``from_wire``): :func:`animate_request` fills it with the
span's audio (whole samples, the sub-sample remainder as ``start_offset``), the scene's
exact frame rate (a ``Fraction``, from fps / fps_base), the frame range and the emotion
arrays, checked once where the sliders were sampled (an ``EmotionArrays``). The dialogue
``text`` goes only to a backend whose animate job declares the ``"text"`` feature
(:func:`submission`; an older one would silently ignore it). The answer is typed too
(``shared/animate_result.py``): one ``AnimateChunk`` per RESULT, arrays by name, and an
``AnimateDone`` whose transcript (when no text was sent, the recogniser's words) the
add-on writes into the empty Dialogue field so the animator can correct it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from ..shared.animate_request import AnimateJobRequest
from ..shared.animate_result import AnimateChunk, AnimateDone, join_chunks
from ..shared.emotions import EmotionArrays
from ..shared.errors import FacecastError, InputError
from ..shared.frame_rate import parse_fps, parse_seconds
from ..shared.protocol import Event, MsgType
from .job_events import apply_lifecycle

ANIMATE_KIND = "animate"
TEXT_FEATURE = "text"
MAX_TEXT_CHARS = 20_000  # a scene's dialogue, not a screenplay
TEXT_UNSUPPORTED = ("this backend aligns audio only; update it for dialogue text")


@dataclass(frozen=True)
class FrameSpan:
    """Scene frames ``first .. first + count - 1`` and where ``first`` sits in the audio."""

    first: int
    count: int
    audio_offset_s: float  # seconds into the audio file at the start of frame ``first``

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def frames(self) -> np.ndarray:
        return np.arange(self.first, self.first + self.count, dtype=np.int64)


def scene_fps(fps: int, fps_base: float) -> Fraction:
    """Blender's frame rate, exact: ``render.fps / render.fps_base``.

    Blender keeps fps_base as a 32-bit float, so 29.97 (30 / 1.001) arrives as
    30 / 1.00100004...; ``parse_fps`` snaps it to 30000/1001, the rate the backend keeps
    end to end (a float would drift by a frame over a long line).
    """
    if fps <= 0 or not fps_base > 0:
        raise InputError(f"The scene frame rate {fps}/{fps_base} is not positive",
                         "set Output Properties > Frame Rate to a positive value")
    return parse_fps((int(fps), float(fps_base)))


def audio_span(audio_start: float, duration_s: float, fps: float | Fraction,
               visible: tuple[int, int] | None = None,
               scene_range: tuple[int, int] | None = None) -> FrameSpan:
    """Frames to animate for audio that starts playing at frame ``audio_start``.

    Every frame the sound covers even partly is included (``ceil``), so the last
    syllable gets a mouth shape. ``visible`` is a sound strip's trimmed
    ``[frame_final_start, frame_final_end)``; ``scene_range`` (inclusive) clips to the
    scene's frame range when the user asked for that.
    """
    if duration_s <= 0:
        raise InputError("The audio has no duration", "choose a recording with sound in it")
    fps = float(fps)
    start = math.ceil(audio_start - 1e-9)
    end = math.ceil(audio_start + duration_s * fps - 1e-9)  # exclusive
    if visible is not None:
        start, end = max(start, visible[0]), min(end, visible[1])
    if scene_range is not None:
        start, end = max(start, scene_range[0]), min(end, scene_range[1] + 1)
    if end <= start:
        raise InputError("The audio does not overlap the frames to animate",
                         "move the sound strip into the scene's frame range, or turn off "
                         "'Scene Range Only'")
    return FrameSpan(start, end - start, (start - audio_start) / fps)


def dialogue_text(raw: str) -> str:
    """The dialogue as sent: surrounding whitespace dropped, line breaks kept; "" = none."""
    text = (raw or "").strip()
    if "\x00" in text:
        raise InputError("The dialogue text contains a NUL character",
                         "paste the dialogue as plain text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The dialogue text is {len(text)} characters long",
                         f"keep it under {MAX_TEXT_CHARS} (the lines of this recording)")
    return text


def animate_request(pcm: np.ndarray, sample_rate: int, fps: Fraction, span: FrameSpan,
                    emotion: EmotionArrays, text: str = "", **options: Any
                    ) -> AnimateJobRequest:
    """The job's request for ``span``: only the span's audio (whole samples from its
    start) goes, so a 3-second line cut from a long recording stays cheap; the
    sub-sample remainder is the ``start_offset``, so frame alignment stays exact instead
    of rounding to a sample. ``options`` are the request's motion fields (seed,
    variation, head_motion, articulation, blinks, landmarks)."""
    first = max(0, math.floor(span.audio_offset_s * sample_rate))
    seconds = span.count / float(fps)
    stop = math.ceil((span.audio_offset_s + seconds) * sample_rate) + 1
    remainder = parse_seconds(span.audio_offset_s - first / sample_rate)
    return AnimateJobRequest(np.ascontiguousarray(pcm[first:stop], dtype=np.float32),
                             int(sample_rate), fps, span.first, remainder, span.count,
                             emotion, text=text or None, **options)


def submission(request: AnimateJobRequest, send_text: bool) -> tuple[dict, list[np.ndarray]]:
    """(params, arrays) to send; the dialogue ``text`` only when ``send_text`` (the
    backend declared the feature)."""
    return (request if send_text else replace(request, text=None)).to_wire()


class AnimateTask:
    """Collects one ``animate`` job's events; the step function reads its fields.

    ``state`` goes ``running`` -> ``done`` | ``error`` | ``cancelled`` exactly once.
    Each RESULT is read once as an ``AnimateChunk`` (its arrays checked and named) and
    DONE as an ``AnimateDone``; a chunk that does not match this add-on ends the task
    with the error naming the array. Chunks are joined along time by their ``start``.
    """

    def __init__(self, request: AnimateJobRequest, span: FrameSpan,
                 kind: str = ANIMATE_KIND) -> None:
        self.request = request
        self.span = span  # the scene frames the request animates
        self.kind = kind
        self.job = ""
        self.state = "running"
        self.progress = 0.0
        self.message = "waiting for the backend"
        self.error = ""
        self.chunks: list[AnimateChunk] = []
        self.done: AnimateDone | None = None
        self.done_body: dict = {}  # DONE as sent (tests' job doubles echo into it)

    def on_event(self, event: Event) -> None:
        if self.state != "running" or apply_lifecycle(self, event, "animating"):
            return
        try:
            if event.kind == MsgType.RESULT:
                self.chunks.append(AnimateChunk.from_wire(event.body, event.arrays))
                self.message = f"received {self.frames_received()} frames"
            elif event.kind == MsgType.DONE:
                self.done = AnimateDone.from_wire(event.body)
                self.done_body = dict(event.body)
                self.state, self.progress, self.message = "done", 1.0, "done"
        except FacecastError as exc:
            self.state, self.error = "error", exc.message

    def outputs(self) -> dict[str, np.ndarray]:
        """The arrays received so far by name, joined along time."""
        return join_chunks(self.chunks)

    def frames_received(self) -> int:
        return sum(c.n_frames for c in self.chunks)

    def transcript(self) -> tuple[str, str]:
        """(the words the recogniser heard, its report line); ("", "") when it did not
        run (a dialogue was given)."""
        if self.done is None:
            return "", ""
        return self.done.transcript_text[:MAX_TEXT_CHARS], self.done.transcript_report

    def blendshapes(self) -> np.ndarray:
        """``[T, 52]`` float32 weights in [0, 1], checked against the request's span."""
        got = self.outputs().get("blendshapes")
        t = self.span.count
        if got is None or len(got) != t:
            raise InputError(f"The backend sent {0 if got is None else len(got)} frames of "
                             f"blendshapes, expected {t}", "update the backend")
        if not np.all(np.isfinite(got)):
            raise InputError("The backend sent NaN blendshape weights", "report this bug")
        return np.clip(got, 0.0, 1.0)
