"""The ``animate`` job's answer as typed values: one :class:`AnimateChunk` per RESULT and
an :class:`AnimateDone` for DONE, read once where they arrive (the add-on's handler).

On the wire a chunk is body ``{"chunk": i, "start": frame offset, "n_frames": n}`` with
arrays in :data:`RESULT_ARRAYS` order, ``landmarks`` last and only when the request
asked for them. Long audio arrives as several chunks, so one message never holds a whole
scene and what arrived is kept if the backend dies. DONE carries no arrays: the frame
count, the exact fps, the array names, where the phones came from, warnings and, when
the recogniser ran, the ``transcript`` (``{"text", "report", "words"}``).

``from_wire`` checks every array's shape against the chunk's frame count and names the
array and the fix; the add-on then reads arrays by name, never by position or shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .blendshapes import ARKIT_BLENDSHAPES
from .emotions import EMOTIONS
from .errors import InputError
from .frame_rate import parse_fps

#: The arrays of one chunk, in wire order; ``landmarks`` is optional (the last one).
RESULT_ARRAYS = ("blendshapes", "head_pose", "blink", "emotion_weights", "emotion_intensity",
                 "landmarks")
#: Each array's shape after its frame axis (None: any size).
_TRAILING: dict[str, tuple[int | None, ...]] = {
    "blendshapes": (len(ARKIT_BLENDSHAPES),), "head_pose": (4, 4), "blink": (),
    "emotion_weights": (len(EMOTIONS),), "emotion_intensity": (), "landmarks": (None, 3)}
_UPDATE = "update the backend and the add-on to the same Facecast version"


def _count(body: Mapping[str, Any], key: str, low: int) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InputError(f"The backend's animate result has {key}={value!r}", _UPDATE)
    return value


def _frames(name: str, array: Any, n: int) -> np.ndarray:
    """``array`` as float32 of shape ``(n, *trailing)``, else an InputError naming it."""
    arr = np.asarray(array)
    want = _TRAILING[name]
    if arr.ndim != 1 + len(want) or arr.shape[0] != n or any(
            w is not None and s != w for s, w in zip(arr.shape[1:], want, strict=True)):
        shape = ", ".join("K" if w is None else str(w) for w in (n, *want))
        raise InputError(f"The backend sent {name} of shape {tuple(arr.shape)}, expected "
                         f"({shape})", _UPDATE)
    return np.array(arr, dtype=np.float32)  # a copy: the message's buffer is not kept


@dataclass(frozen=True)
class AnimateChunk:
    """Frames ``start .. start + n_frames - 1`` of the request (0 = ``first_frame``)."""

    index: int
    start: int
    blendshapes: np.ndarray  # [n, 52] ARKit weights
    head_pose: np.ndarray  # [n, 4, 4] head frame, +Y up
    blink: np.ndarray  # [n]
    emotion_weights: np.ndarray  # [n, 8] in EMOTIONS order
    emotion_intensity: np.ndarray  # [n]
    landmarks: np.ndarray | None = None  # [n, K, 3] head frame, when asked for

    @property
    def n_frames(self) -> int:
        return len(self.blendshapes)

    def arrays(self) -> dict[str, np.ndarray]:
        """The chunk's arrays by name (``landmarks`` only when sent)."""
        return {n: getattr(self, n) for n in RESULT_ARRAYS if getattr(self, n) is not None}

    def to_wire(self) -> tuple[dict, list[np.ndarray]]:
        """(body, arrays) for the job's ``ctx.result``."""
        return ({"chunk": self.index, "start": self.start, "n_frames": self.n_frames},
                [np.ascontiguousarray(a, dtype=np.float32) for a in self.arrays().values()])

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], arrays: Sequence[Any]) -> AnimateChunk:
        """The RESULT the backend sent, checked; InputError naming the array otherwise."""
        n = _count(body, "n_frames", 0)
        if len(arrays) not in (len(RESULT_ARRAYS) - 1, len(RESULT_ARRAYS)):
            raise InputError(f"The backend's animate result has {len(arrays)} arrays, "
                             f"expected {len(RESULT_ARRAYS) - 1} or {len(RESULT_ARRAYS)}",
                             _UPDATE)
        named = {name: _frames(name, a, n) for name, a in zip(RESULT_ARRAYS, arrays,
                                                               strict=False)}
        return cls(_count(body, "chunk", 0), _count(body, "start", 0), **named)


@dataclass(frozen=True)
class AnimateDone:
    """The job's DONE: how many frames, at what rate, and what the backend heard."""

    n_frames: int
    fps: Fraction | None = None
    first_frame: int = 0
    phones: str | None = None  # "text", "transcript" or "acoustic model"
    warnings: tuple[str, ...] = ()
    transcript_text: str = ""  # the recogniser's words, when it ran
    transcript_report: str = ""  # its one-line report
    array_names: tuple[str, ...] = field(default=RESULT_ARRAYS[:-1])

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> AnimateDone:
        """DONE as sent; its reports are read leniently (a missing one is left empty)."""
        tr = body.get("transcript")
        tr = tr if isinstance(tr, Mapping) else {}
        fps, names, warnings = body.get("fps"), body.get("arrays"), body.get("warnings")
        first = body.get("first_frame", 0)
        return cls(
            n_frames=_count(body, "n_frames", 0),
            fps=parse_fps(fps) if isinstance(fps, str) else None,
            first_frame=first if isinstance(first, int) else 0,
            phones=_text(body.get("phones")) or None,
            warnings=tuple(map(str, warnings)) if isinstance(warnings, list) else (),
            transcript_text=_text(tr.get("text")).strip(),
            transcript_report=_text(tr.get("report")),
            array_names=tuple(map(str, names)) if isinstance(names, list)
            else RESULT_ARRAYS[:-1])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""

def join_chunks(chunks: Iterable[AnimateChunk]) -> dict[str, np.ndarray]:
    """The chunks' arrays by name, joined along time in ``start`` order (whatever order
    they arrived in); an array only some chunks carry is left out."""
    ordered = sorted(chunks, key=lambda c: c.start)
    names = [n for n in RESULT_ARRAYS if ordered and all(getattr(c, n) is not None
                                                         for c in ordered)]
    return {n: np.concatenate([getattr(c, n) for c in ordered]) for n in names}
