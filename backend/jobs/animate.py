"""``animate`` job: PCM + fps + emotion -> per-frame blendshapes, landmarks, head pose.

The request is ``shared.animate_request.AnimateJobRequest`` (its docstring lists the
params and arrays), read and checked once by ``from_wire``; ``text`` is feature
``"text"``, ``transcribe`` (default true: without a text, an offline recogniser writes
one) feature ``"transcript"``. Here only the frame count is checked against the audio.

Results stream as one RESULT per chunk, a ``shared.animate_result.AnimateChunk``: body
``{"chunk": i, "start": frame offset, "n_frames": n}`` with arrays ``[blendshapes[n,
52], head_pose[n, 4, 4], blink[n], emotion_weights[n, 8], emotion_intensity[n],
landmarks[n, 478, 3]?]``, so a long line never builds one huge message and the add-on
keeps what arrived if the backend dies (clients read it with ``AnimateChunk.from_wire``).
DONE carries the timing metadata, the array names, where the phones came from
(``phones``: "text", "transcript" or "acoustic model"), ``warnings`` (e.g. why a text was
not used) and, when the recogniser ran, ``transcript``: ``{"text", "report", "words":
[[word, start s, end s, confidence], ...]}`` (the add-on shows the text as the dialogue).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from shared.animate_request import AnimateJobRequest
from shared.animate_result import RESULT_ARRAYS, AnimateChunk
from shared.blendshapes import ARKIT_BLENDSHAPES
from shared.emotions import EMOTIONS
from shared.errors import InputError
from shared.frame_rate import fps_text

from . import registry
from .base import Job, JobContext

CHUNK_FRAMES = 512
_MODEL = None


def _model():
    """Load the default motion model once per server process (1 MB, ~50 ms)."""
    global _MODEL
    if _MODEL is None:
        from backend.motion.model import load_model

        _MODEL = load_model()
    return _MODEL


def frame_limit(fps: Fraction, audio: Any, first_frame: int, start_offset: Fraction
                ) -> int:
    """The most frames an animation of ``audio`` may ask for: what the audio covers at
    this fps and offset, plus one second (the mouth settles after the last sound)."""
    import math

    from backend.audio.timing import FrameClock

    clock = FrameClock.create(fps, audio.sample_rate, first_frame, start_offset)
    return max(0, clock.n_frames_for(audio.n_samples)) + math.ceil(clock.fps)


@registry.register
class AnimateJob(Job):
    kind = "animate"
    description = "Voice + emotion -> ARKit-52 blendshapes, landmarks, head pose, blinks"
    features = ("text", "transcript")

    def run(self, ctx: JobContext) -> dict[str, Any]:
        from backend.audio import load_audio
        from backend.motion.performance import AnimationOptions, iter_animation

        req = AnimateJobRequest.from_wire(ctx.params, ctx.arrays)
        audio = load_audio((req.pcm, req.sample_rate))
        limit = frame_limit(req.fps, audio, req.first_frame, req.start_offset)
        if req.n_frames is not None and req.n_frames > limit:
            raise InputError(f"n_frames={req.n_frames} is more than the audio covers ({limit} "
                             "frames at this fps and start_offset, with 1 s to spare)",
                             "send the frame count of the audio's span (and emotion arrays "
                             "of that length)")
        n_sent = 0
        fps_out = None
        info: dict = {}
        options = AnimationOptions(
            first_frame=req.first_frame, start_offset=req.start_offset,
            n_frames=req.n_frames, seed=req.seed, variation=req.variation,
            head_motion_amount=req.head_motion, articulation=req.articulation,
            blinks=req.blinks, chunk_frames=CHUNK_FRAMES, text=req.text,
            transcribe=req.transcribe)
        for i, chunk in enumerate(iter_animation(
                audio, req.fps, req.emotion, model=_model(), options=options,
                progress=lambda f: ctx.progress(f, "animating"))):
            info = chunk.meta
            ctx.check_cancelled()
            ctx.result(*AnimateChunk(
                i, n_sent, chunk.blendshapes, chunk.head_pose, chunk.blink,
                chunk.emotion_weights, chunk.emotion_intensity,
                chunk.landmarks if req.landmarks else None).to_wire())
            n_sent += chunk.n_frames
            fps_out = chunk.fps
        return {"n_frames": n_sent, "fps": fps_text(fps_out) if fps_out else None,
                "first_frame": req.first_frame, "blendshape_names": list(ARKIT_BLENDSHAPES),
                "emotion_names": list(EMOTIONS), "phones": info.get("phones"),
                "warnings": [info["warning"]] if info.get("warning") else [],
                **({"transcript": info["transcript"].to_json()}
                   if info.get("transcript") else {}),
                "arrays": list(RESULT_ARRAYS if req.landmarks else RESULT_ARRAYS[:-1])}
