"""The ``animate`` job's request as one typed value, read once where it arrives.

On the wire: arrays ``[pcm float32[N]]`` or ``[pcm, emotion_weights float32[T, 8],
emotion_intensity float32[T]]``; params ``fps`` (``"30000/1001"``, or a number),
``sample_rate``, ``first_frame``, ``start_offset`` (seconds, a number or a fraction
string), ``n_frames`` (default: to the end of the audio; with emotion arrays, their
length), ``emotion`` (a track string, or "auto"), ``seed``, ``variation``,
``head_motion``, ``articulation``, ``blinks``, ``landmarks``, ``text``, ``transcribe``.

:meth:`AnimateJobRequest.from_wire` checks the arrays, the frame numbers, the frame rate
(kept as a ``Fraction``) and the emotion arrays (an ``EmotionArrays``), each once, with
the message naming the param; the motion options (variation, head motion, articulation)
are checked by ``iter_animation``, which ``facecast animate`` shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .emotions import EmotionArrays
from .errors import InputError
from .frame_rate import fps_text, parse_fps, parse_seconds
from .protocol.params import integer

#: Blender's frame numbers lie within +-1048574; audio offsets within a day.
MAX_FRAME = 1_048_574
MAX_OFFSET_S = 86_400


@dataclass(frozen=True)
class AnimateJobRequest:
    pcm: np.ndarray  # float32 [N], mono
    sample_rate: int
    fps: Fraction = Fraction(24)
    first_frame: int = 0
    start_offset: Fraction = Fraction(0)  # audio seconds at the start of first_frame
    n_frames: int | None = None
    emotion: str | EmotionArrays | None = None
    seed: int = 0
    variation: Any = 0.0  # the motion options: checked by ``iter_animation``
    head_motion: Any = 1.0
    articulation: Any = 1.0
    blinks: bool = True
    landmarks: bool = True  # send the landmarks with every chunk
    text: str | None = None
    transcribe: bool = True

    def to_wire(self) -> tuple[dict, list[np.ndarray]]:
        """(params, arrays) for ``client.call("animate", ...)``: only what the job reads."""
        params = {"fps": fps_text(self.fps), "sample_rate": int(self.sample_rate),
                  "first_frame": int(self.first_frame), "start_offset": str(self.start_offset),
                  "seed": int(self.seed), "variation": self.variation,
                  "head_motion": self.head_motion, "articulation": self.articulation,
                  "blinks": bool(self.blinks), "landmarks": bool(self.landmarks),
                  "transcribe": bool(self.transcribe)}
        if self.n_frames is not None:
            params["n_frames"] = int(self.n_frames)
        if self.text is not None:
            params["text"] = self.text
        arrays = [np.ascontiguousarray(self.pcm, np.float32)]
        if isinstance(self.emotion, EmotionArrays):
            arrays += [self.emotion.weights, self.emotion.intensity]
        elif self.emotion is not None:
            params["emotion"] = self.emotion
        return params, arrays

    @classmethod
    def from_wire(cls, params: Mapping[str, Any], arrays: Sequence[np.ndarray]
                  ) -> AnimateJobRequest:
        """The request a client sent, checked; InputError naming the param otherwise."""
        p = params
        if len(arrays) not in (1, 3):
            raise InputError(f"animate got {len(arrays)} input arrays",
                             "send [pcm] or [pcm, emotion_weights[T, 8], intensity[T]]")
        pcm = np.asarray(arrays[0])
        if pcm.ndim != 1 or pcm.dtype != np.float32:
            raise InputError(f"pcm must be 1-D float32, got {pcm.dtype} {pcm.shape}",
                             "send mono float32 samples")
        rate = integer(p, "sample_rate", 1, 10**6, default=None)
        if rate is None:
            raise InputError("animate needs params.sample_rate", "send the PCM's rate in Hz")
        first_frame = integer(p, "first_frame", -MAX_FRAME, MAX_FRAME, default=0)
        n_frames = integer(p, "n_frames", 1, 10**9, default=None)
        seed = integer(p, "seed", 0, 2**32 - 1, default=0)
        fps = parse_fps(p.get("fps", 24))
        offset = parse_seconds(p.get("start_offset", 0))
        if abs(offset) > MAX_OFFSET_S:
            raise InputError(f"start_offset={float(offset):g} s is out of range",
                             f"send seconds between -{MAX_OFFSET_S} and {MAX_OFFSET_S}")
        emotion: Any = p.get("emotion")
        if len(arrays) == 3:
            n_frames = int(np.asarray(arrays[1]).shape[0]) if n_frames is None else n_frames
            emotion = EmotionArrays.checked(arrays[1], arrays[2], n_frames)
        elif emotion is not None and not isinstance(emotion, str):
            raise InputError("params.emotion must be a track string",
                             'send e.g. "0:neutral,40:angry@0.7" or per-frame arrays')
        text = p.get("text")
        if text is not None and not isinstance(text, str):
            raise InputError("params.text must be a string", "send the dialogue as text")
        return cls(pcm, rate, fps, first_frame, offset, n_frames, emotion, seed,
                   p.get("variation", 0.0), p.get("head_motion", 1.0),
                   p.get("articulation", 1.0), bool(p.get("blinks", True)),
                   bool(p.get("landmarks", True)), text, bool(p.get("transcribe", True)))
