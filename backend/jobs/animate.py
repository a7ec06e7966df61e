"""``animate`` job: PCM + fps + emotion -> per-frame blendshapes, landmarks, head pose.

Input arrays: ``[pcm float32[N]]`` or ``[pcm, emotion_weights float32[T, 8],
emotion_intensity float32[T]]``. Params: ``fps`` (number or "30000/1001"),
``sample_rate``, ``first_frame``, ``start_offset`` (seconds, number or fraction string),
``n_frames`` (default: to the end of the audio; required with emotion arrays, which must
cover exactly that many frames), ``emotion`` (a track string, or "auto"), ``seed``,
``variation``, ``head_motion``, ``articulation``, ``blinks``, ``landmarks`` (send
landmarks, default true), ``text`` (the dialogue as a UTF-8 string, aligned for exact
phone timing; feature ``"text"``; blank = none), ``transcribe`` (default true: without
a text, an offline recogniser writes one; feature ``"transcript"``).

Results stream as one RESULT per chunk, body ``{"chunk": i, "start": frame offset,
"n_frames": n}`` with arrays ``[blendshapes[n, 52], head_pose[n, 4, 4], blink[n],
emotion_weights[n, 8], emotion_intensity[n], landmarks[n, 478, 3]?]``, so a long line
never builds one huge message and the add-on keeps what arrived if the backend dies.
DONE carries the timing metadata, the array names, where the phones came from
(``phones``: "text", "transcript" or "acoustic model"), ``warnings`` (e.g. why a text was
not used) and, when the recogniser ran, ``transcript``: ``{"text", "report", "words":
[[word, start s, end s, confidence], ...]}`` (the add-on shows the text as the dialogue).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.blendshapes import ARKIT_BLENDSHAPES
from shared.emotions import EMOTIONS
from shared.errors import InputError

from . import registry
from .base import Job, JobContext
from .params import integer

RESULT_ARRAYS = ("blendshapes", "head_pose", "blink", "emotion_weights", "emotion_intensity",
                 "landmarks")
CHUNK_FRAMES = 512
#: Blender's frame numbers lie within +-1048574; audio offsets within a day.
MAX_FRAME = 1_048_574
MAX_OFFSET_S = 86_400
_MODEL = None


def _model():
    """Load the default motion model once per server process (1 MB, ~50 ms)."""
    global _MODEL
    if _MODEL is None:
        from backend.motion.model import load_model

        _MODEL = load_model()
    return _MODEL


def frame_limit(fps: Any, audio: Any, first_frame: int, start_offset: Any) -> int:
    """The most frames an animation of ``audio`` may ask for: what the audio covers at
    this fps and offset, plus one second (the mouth settles after the last sound)."""
    import math

    from backend.audio.timing import FrameClock, parse_fps, parse_seconds

    offset = parse_seconds(start_offset)
    if abs(offset) > MAX_OFFSET_S:
        raise InputError(f"start_offset={float(offset):g} s is out of range",
                         f"send seconds between -{MAX_OFFSET_S} and {MAX_OFFSET_S}")
    clock = FrameClock.create(parse_fps(fps), audio.sample_rate, first_frame, offset)
    return max(0, clock.n_frames_for(audio.n_samples)) + math.ceil(clock.fps)


@registry.register
class AnimateJob(Job):
    kind = "animate"
    description = "Voice + emotion -> ARKit-52 blendshapes, landmarks, head pose, blinks"
    features = ("text", "transcript")

    def run(self, ctx: JobContext) -> dict[str, Any]:
        from backend.audio import load_audio
        from backend.motion.performance import fps_text, iter_animation

        p = ctx.params
        arrays = ctx.arrays
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
        audio = load_audio((pcm, rate))
        limit = frame_limit(p.get("fps", 24), audio, first_frame, p.get("start_offset", 0))
        emotion: Any = p.get("emotion")
        if len(arrays) == 3:
            emotion = (arrays[1], arrays[2])
            n_frames = int(np.asarray(arrays[1]).shape[0]) if n_frames is None else n_frames
        elif emotion is not None and not isinstance(emotion, str):
            raise InputError("params.emotion must be a track string",
                             'send e.g. "0:neutral,40:angry@0.7" or per-frame arrays')
        if n_frames is not None and n_frames > limit:
            raise InputError(f"n_frames={n_frames} is more than the audio covers ({limit} "
                             "frames at this fps and start_offset, with 1 s to spare)",
                             "send the frame count of the audio's span (and emotion arrays "
                             "of that length)")
        text = p.get("text")
        if text is not None and not isinstance(text, str):
            raise InputError("params.text must be a string", "send the dialogue as text")
        send_landmarks = bool(p.get("landmarks", True))
        n_sent = 0
        fps_out = None
        info: dict = {}
        for i, chunk in enumerate(iter_animation(
                audio, p.get("fps", 24), emotion, first_frame=first_frame,
                start_offset=p.get("start_offset", 0), n_frames=n_frames,
                seed=seed, variation=p.get("variation", 0.0),
                head_motion_amount=p.get("head_motion", 1.0),
                articulation=p.get("articulation", 1.0),
                blinks=bool(p.get("blinks", True)), model=_model(),
                chunk_frames=CHUNK_FRAMES, text=text,
                transcribe=bool(p.get("transcribe", True)),
                progress=lambda f: ctx.progress(f, "animating"))):
            info = chunk.meta
            ctx.check_cancelled()
            out = [chunk.blendshapes, chunk.head_pose, chunk.blink, chunk.emotion_weights,
                   chunk.emotion_intensity]
            if send_landmarks:
                out.append(chunk.landmarks)
            ctx.result({"chunk": i, "start": n_sent, "n_frames": chunk.n_frames},
                       [np.ascontiguousarray(a, dtype=np.float32) for a in out])
            n_sent += chunk.n_frames
            fps_out = chunk.fps
        return {"n_frames": n_sent, "fps": fps_text(fps_out) if fps_out else None,
                "first_frame": first_frame, "blendshape_names": list(ARKIT_BLENDSHAPES),
                "emotion_names": list(EMOTIONS), "phones": info.get("phones"),
                "warnings": [info["warning"]] if info.get("warning") else [],
                **({"transcript": info["transcript"].to_json()}
                   if info.get("transcript") else {}),
                "arrays": list(RESULT_ARRAYS if send_landmarks else RESULT_ARRAYS[:-1])}
