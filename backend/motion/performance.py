"""The performance: audio + fps + emotion -> per-frame blendshapes, landmarks, head pose, blinks.

The one implementation behind ``facecast animate`` and the server's ``animate`` job.
Audio features are computed once per hop (small); frames are then processed in chunks of
``chunk_frames`` with ``CONTEXT`` frames of audio context on each side, so the temporal
convolutions see the same neighbourhood as in one long pass and 10 minutes of audio run
in bounded working memory. Randomness (VAE style, blinks, head motion) is keyed to the
global frame index / time and the seed, so chunking never changes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
import torch

from backend.audio import Audio, compute_audio_features, compute_frame_features, parse_fps
from backend.audio.timing import FrameClock
from shared.blendshapes import ARKIT_BLENDSHAPES, BLENDSHAPE_INDEX
from shared.emotions import (
    EMOTIONS,
    EmotionArrays,
    EmotionKey,
    load_emotion_track,
    sample_emotion_track,
)
from shared.errors import InputError
from shared.frame_rate import fps_text

from .blinks import BlinkGenerator, rate_multiplier
from .delivery import constrain, deliver, effort_gain, emotion_delivery
from .emotion import estimate_emotion_from_prosody
from .face_basis import MOUTH_CHANNELS, channel_index, landmarks_from_blendshapes
from .features import model_inputs, prosody
from .head import head_motion
from .model import MotionModel, load_model
from .phones import PhoneEvidence, phone_evidence
from .speech_vae import LATENT_DIM, LATENT_FRAMES, expand_latent

CONTEXT = 32  # frames of audio context each side of a chunk (> the models' reach)
MAX_TEXT_CHARS = 20000
DEFAULT_CHUNK = 1024
SILENCE_RAMP_FRAMES = 2
MOUTH_IDS = channel_index(MOUTH_CHANNELS)
BLINK_IDS = [BLENDSHAPE_INDEX["eyeBlinkLeft"], BLENDSHAPE_INDEX["eyeBlinkRight"]]
EmotionInput = (str | Sequence[EmotionKey] | EmotionArrays | tuple[np.ndarray, np.ndarray]
                | None)


@dataclass
class Animation:
    """Per-frame results; every array has the same first dimension T."""

    blendshapes: np.ndarray  # [T, 52] float32, ARKIT_BLENDSHAPES order
    landmarks: np.ndarray  # [T, 478, 3] float32, face space, metres
    head_pose: np.ndarray  # [T, 4, 4] float32, face space -> rig head rest frame
    blink: np.ndarray  # [T] float32 lid closure from the blink generator
    emotion_weights: np.ndarray  # [T, 8] float32 (used, after "auto" if asked)
    emotion_intensity: np.ndarray  # [T] float32
    frame_numbers: np.ndarray  # [T] int64
    frame_times: np.ndarray  # [T] float64, audio seconds at each frame centre
    fps: Fraction
    first_frame: int
    names: tuple[str, ...] = ARKIT_BLENDSHAPES
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.blendshapes.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as named numpy arrays (the .npz layout)."""
        return {"blendshapes": self.blendshapes, "blendshape_names": np.array(self.names),
                "landmarks": self.landmarks, "head_pose": self.head_pose,
                # The render contract's name for this head pose's frame (relative motion
                # in the head frame): backend.subject.contract.HEAD_POSE_MOTION.
                "head_pose_frame": np.array("motion"),
                "blink": self.blink, "emotion_weights": self.emotion_weights,
                "emotion_intensity": self.emotion_intensity, "emotion_names":
                np.array(EMOTIONS), "frame_numbers": self.frame_numbers,
                "frame_times": self.frame_times, "fps": np.array(fps_text(self.fps)),
                "first_frame": np.array(self.first_frame),
                **(self.meta["transcript"].to_arrays() if self.meta.get("transcript")
                   else {})}


def _concat(parts: list[Animation], meta: dict) -> Animation:
    first = parts[0]
    cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in (
        "blendshapes", "landmarks", "head_pose", "blink", "emotion_weights",
        "emotion_intensity", "frame_numbers", "frame_times")}
    return Animation(**cat, fps=first.fps, first_frame=first.first_frame, meta=meta)


def _check_float(value: object, name: str, lo: float, hi: float) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}",
                         f"pass a number between {lo:g} and {hi:g}") from None
    if not np.isfinite(x) or not lo <= x <= hi:
        raise InputError(f"{name} is {value!r}, outside [{lo:g}, {hi:g}]",
                         f"pass a number between {lo:g} and {hi:g}")
    return x


class _EmotionSource:
    """Serves per-frame emotion (weights, intensity) for any frame block."""

    def __init__(self, emotion: EmotionInput, first_frame: int, total: int) -> None:
        self.first = first_frame
        self.auto = isinstance(emotion, str) and emotion.strip().lower() == "auto"
        self.keys: list[EmotionKey] | None = None
        self.arrays: tuple[np.ndarray, np.ndarray] | None = None
        if emotion is None or self.auto:
            self.keys = [EmotionKey(0, {"neutral": 1.0}, 1.0)]
        elif isinstance(emotion, EmotionArrays):  # checked where it arrived
            self.arrays = (emotion.weights, emotion.intensity)
        elif isinstance(emotion, tuple) and len(emotion) == 2 and not isinstance(
                emotion[0], EmotionKey):
            checked = EmotionArrays.checked(emotion[0], emotion[1], total)
            self.arrays = (checked.weights, checked.intensity)
        elif isinstance(emotion, str):
            self.keys = load_emotion_track(emotion)
        else:
            self.keys = list(emotion)  # type: ignore[arg-type]

    def block(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames start..start+count-1; frames outside given arrays hold the nearest."""
        if self.arrays is not None:
            i = np.clip(np.arange(start, start + count) - self.first, 0,
                        len(self.arrays[0]) - 1)
            return self.arrays[0][i], self.arrays[1][i]
        return sample_emotion_track(self.keys or [], start, count)


def _silence_gate(vad: np.ndarray) -> np.ndarray:
    """1 where the trained VAD hears speech, ramping to 0 over a few frames elsewhere:
    the mouth rests in pauses, music and tones."""
    from scipy.ndimage import uniform_filter1d

    g = vad.astype(np.float32)
    k = 2 * SILENCE_RAMP_FRAMES + 1
    from scipy.ndimage import maximum_filter1d

    g = maximum_filter1d(g, SILENCE_RAMP_FRAMES, mode="nearest")  # open just before speech
    return np.clip(uniform_filter1d(g, k, mode="nearest"), 0.0, 1.0)


def _check_text(text: object) -> str | None:
    """Dialogue text: a string (blank = none given), at most MAX_TEXT_CHARS."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InputError(f"the dialogue text must be a string, got {type(text).__name__}",
                         "send the line as UTF-8 text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the dialogue text has {len(text)} characters (limit "
                         f"{MAX_TEXT_CHARS})", "give the text of this recording only")
    return text if text.strip() else None


def _auto_emotion(audio: Audio, fps: Fraction, clock: FrameClock, total: int, feats_all
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``auto`` emotion for every frame, from the prosody of the whole recording (so the
    result cannot depend on how frames are chunked)."""
    whole = compute_frame_features(audio, fps, first_frame=clock.first_frame, n_frames=total,
                                   start_offset=clock.start_offset, context_hops=0,
                                   features=feats_all)
    return estimate_emotion_from_prosody(prosody(whole), float(fps))


def _latents(seed: int, variation: float, block_lo: int, block_hi: int) -> torch.Tensor:
    """Per-block latents for global blocks [lo, hi): seeded per block, chunk-invariant."""
    z = np.zeros((max(block_hi - block_lo, 1), LATENT_DIM), np.float32)
    if variation > 0:
        for j, b in enumerate(range(block_lo, block_hi)):
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, b & 0xFFFFFFFF])
            z[j] = rng.standard_normal(LATENT_DIM)
        z *= variation
    return torch.from_numpy(z)[None]


@dataclass(frozen=True)
class AnimationOptions:
    """How to perform a line: everything but the audio, frame rate, emotion and model.
    ``animate`` documents each field; :meth:`checked` refuses bad values by name."""

    first_frame: int = 0
    start_offset: object = 0  # audio seconds at the start of first_frame
    n_frames: int | None = None  # default: to the end of the audio
    seed: int = 0
    variation: float = 0.0
    head_motion_amount: float = 1.0
    blinks: bool = True
    articulation: float = 1.0
    neutral: np.ndarray | None = None
    chunk_frames: int = DEFAULT_CHUNK
    text: str | None = None
    transcribe: bool = False

    def checked(self) -> AnimationOptions:
        variation = _check_float(self.variation, "variation", 0.0, 3.0)
        head = _check_float(self.head_motion_amount, "head motion", 0.0, 5.0)
        articulation = _check_float(self.articulation, "articulation", 0.0, 3.0)
        seed, chunk = self.seed, self.chunk_frames
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InputError(f"seed must be a whole number, got {seed!r}", "pass e.g. --seed 0")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise InputError(f"chunk_frames must be a positive integer, got {chunk!r}",
                             "use e.g. 1024")
        return replace(self, variation=variation, head_motion_amount=head,
                       articulation=articulation, text=_check_text(self.text))


@dataclass(frozen=True)
class _Span:
    """Stage 1, timing: the frames to animate and where they sit in the audio."""

    fps: Fraction
    clock: FrameClock
    total: int

    @classmethod
    def of(cls, audio: Audio, fps: Fraction, opts: AnimationOptions) -> _Span:
        clock = FrameClock.create(fps, audio.sample_rate, opts.first_frame, opts.start_offset)
        n = opts.n_frames
        total = clock.n_frames_for(audio.n_samples) if n is None else n
        if isinstance(total, bool) or not isinstance(total, int | np.integer) or total < 0:
            raise InputError(f"n_frames must be a whole number >= 0, got {n!r}",
                             "pass the number of frames to animate")
        if total == 0:
            raise InputError("the audio is shorter than one frame at this frame rate and "
                             "offset", "check --start-offset and that the audio has sound")
        return cls(fps, clock, int(total))


def _phones(audio: Audio, opts: AnimationOptions) -> tuple[PhoneEvidence, dict]:
    """Stage 2, phones: from the dialogue text, else the recogniser's transcript (when
    asked), else the acoustic model; and what the chunks' ``meta`` says about them."""
    transcript = None
    if opts.text is None and opts.transcribe:  # no dialogue given: the recogniser writes one
        from backend.speech.transcribe import transcribe as recognise

        from .transcript_evidence import transcript_evidence

        transcript = recognise(audio.samples)
        evidence, transcript = transcript_evidence(audio.samples, transcript)
    else:
        evidence = phone_evidence(audio.samples, opts.text)
    return evidence, {"phones": evidence.source, "warning": evidence.warning,
                      "transcript": transcript}


def _speech_face(model: MotionModel, mel: np.ndarray, pros: np.ndarray, ev: np.ndarray,
                 vad: np.ndarray, effort: np.ndarray, weights: np.ndarray,
                 intensity: np.ndarray, lo: int, fps: Fraction, opts: AnimationOptions
                 ) -> np.ndarray:
    """Stage 3, the speaking mouth [n, 52] over frames from ``lo``: the speech VAE (style
    latents seeded per block), delivery (vocal effort and emotion drive jaw and lip
    activation, JALI; the articulation dial scales both; sad slows), then the lips meet
    on p/b/m and tuck on f/v whatever the delivery; silent where no one speaks."""
    n = len(mel)
    with torch.inference_mode():
        h = model.speech.encode_audio(torch.from_numpy(mel)[None],
                                      torch.from_numpy(pros)[None],
                                      torch.from_numpy(ev)[None])
        b_lo = lo // LATENT_FRAMES - 1
        b_hi = (lo + n) // LATENT_FRAMES + 2
        z = expand_latent(_latents(opts.seed, opts.variation, b_lo, b_hi), n,
                          offset=lo - b_lo * LATENT_FRAMES)
        mouth = model.speech.decode(h, z)[0].numpy()
    emo_d = emotion_delivery(weights, intensity)
    mouth = deliver(np.clip(mouth * opts.articulation, 0.0, 1.0), effort * emo_d[:, 0],
                    emo_d[:, 1], emo_d[:, 2], float(fps))
    mouth = constrain(mouth, ev[:, -2:])
    speech = np.zeros((n, 52), np.float32)
    speech[:, MOUTH_IDS] = mouth * _silence_gate(vad)[:, None]
    return speech


def _expression(model: MotionModel, speech: np.ndarray, weights: np.ndarray,
                intensity: np.ndarray, ev: np.ndarray) -> np.ndarray:
    """Stage 4, emotion: the landmark deformation model adds the emotion's face to the
    speaking one. Intensity 0 or pure neutral means "no expression": the speech face
    exactly (and a neutral chunk skips the model)."""
    strength = (weights[:, 1:] * intensity[:, None]).max(axis=1, initial=0.0)
    mix = np.clip(strength / 0.05, 0.0, 1.0)[:, None]
    if not mix.any():  # the same final seal as below (the gate narrowed the jaw after the
        # first one), so a chunk without emotion matches one with it frame for frame
        out = speech.copy()
        out[:, MOUTH_IDS] = constrain(out[:, MOUTH_IDS], ev[:, -2:])
        return out
    with torch.inference_mode():
        sp = torch.from_numpy(speech)[None]
        emb = model.bank(torch.from_numpy(weights)[None], torch.from_numpy(intensity)[None])
        out = (sp + model.ldm(sp, emb)).clamp(0, 1)[0].numpy()
    out = speech + (out - speech) * mix
    out[:, MOUTH_IDS] = constrain(out[:, MOUTH_IDS], ev[:, -2:])
    return out


def iter_animation(audio: Audio, fps: object, emotion: EmotionInput = None, *,
                   model: MotionModel | None = None,
                   progress: Callable[[float], None] | None = None,
                   options: AnimationOptions | None = None, **option_fields
                   ) -> Iterator[Animation]:
    """Yield the animation chunk by chunk. ``options`` (or its fields as keywords: see
    ``animate``) says how. Every chunk's ``meta`` says where the phones came from and why
    a text was not used.

    The stages: timing (``_Span``), phones (``_phones``), then per chunk of frames with
    ``CONTEXT`` frames of context on each side: audio features, emotion, the speaking
    mouth (``_speech_face``), the emotion's face (``_expression``), blinks and head
    motion."""
    fps_exact = parse_fps(fps)
    opts = (options or AnimationOptions(**option_fields)).checked()
    span = _Span.of(audio, fps_exact, opts)
    clock, total = span.clock, span.total
    emo = _EmotionSource(emotion, clock.first_frame, total)
    model = model or load_model()
    feats_all = compute_audio_features(audio)
    evidence, info = _phones(audio, opts)
    effort = effort_gain(feats_all.energy_db, feats_all.vad, 100.0)
    auto = _auto_emotion(audio, fps_exact, clock, total, feats_all) if emo.auto else None
    blinker = BlinkGenerator(opts.seed)
    stats = model.meta.get("head_stats", {})
    rot_std = stats.get("rot_std_deg", (3.0, 3.5, 1.8))
    trans_std = stats.get("trans_std_m", (0.004, 0.003, 0.004))
    offset = Fraction(clock.start_offset)
    for start in range(0, total, opts.chunk_frames):
        count = min(opts.chunk_frames, total - start)
        lo = start - CONTEXT  # symmetric context; frames before the audio read as silence
        ctx_count = count + 2 * CONTEXT
        f0 = clock.first_frame + lo
        feats = compute_frame_features(audio, fps_exact, first_frame=f0,
                                       n_frames=ctx_count,
                                       start_offset=offset + Fraction(lo) / fps_exact,
                                       features=feats_all)
        mel, pros = model_inputs(feats)
        inner = slice(CONTEXT, CONTEXT + count)
        # Emotion over the padded range too: the LDM mixes over time and must see the same
        # neighbourhood whatever the chunking.
        weights, intensity = emo.block(f0, ctx_count)
        if auto is not None:  # estimated once over the whole recording: chunk-invariant
            i = np.clip(np.arange(lo, lo + ctx_count), 0, total - 1)
            weights, intensity = auto[0][i], auto[1][i]
        ev = evidence.at_frames(feats.frame_times, float(fps_exact))
        hop = np.clip(np.round(feats.frame_times * 100).astype(int), 0,
                      max(len(effort) - 1, 0))
        speech = _speech_face(model, mel, pros, ev, feats.vad, effort[hop], weights,
                              intensity, lo, fps_exact, opts)
        out = _expression(model, speech, weights, intensity, ev)
        out, weights, intensity = out[inner], weights[inner], intensity[inner]
        times = feats.frame_times[inner]
        blink = (blinker.sample(times, rate_multiplier(weights, intensity)) if opts.blinks
                 else np.zeros(count, np.float32))
        out[:, BLINK_IDS] = np.maximum(out[:, BLINK_IDS], blink[:, None])
        out = out.astype(np.float32)
        poses = head_motion(times, opts.seed, opts.head_motion_amount, rot_std, trans_std)
        yield Animation(
            blendshapes=out, landmarks=landmarks_from_blendshapes(out, opts.neutral),
            head_pose=poses, blink=blink, emotion_weights=weights.astype(np.float32),
            emotion_intensity=intensity.astype(np.float32),
            frame_numbers=feats.frame_numbers[inner], frame_times=times, fps=fps_exact,
            first_frame=clock.first_frame, meta=dict(info))
        if progress is not None:
            progress((start + count) / total)


def animate(audio: Audio, fps: object, emotion: EmotionInput = None, **kwargs) -> Animation:
    """Animate ``audio`` at ``fps``.

    ``emotion``: a track string/JSON/path (``shared.emotions``), a list of EmotionKey,
    per-frame arrays ``(weights[T, 8], intensity[T])``, ``"auto"`` (estimated from the
    voice, see ``emotion.estimate_emotion_from_prosody``) or None (neutral).
    Keywords: ``first_frame``, ``start_offset`` (audio seconds at the start of
    first_frame), ``n_frames`` (default: to the end of the audio), ``seed``,
    ``variation`` (0 = deterministic mean performance), ``head_motion_amount``
    (0 = still), ``blinks``, ``articulation`` (scales speech mouth motion: 0 = closed,
    1 = as trained, 2 = twice as wide), ``neutral`` (a subject's [478, 3] face; default canonical),
    ``model``, ``chunk_frames``, ``text`` (the dialogue, aligned for exact phone timing;
    a text that does not fit the speech falls back to the phones heard, and
    ``meta["warning"]`` says why), ``transcribe`` (no text: an offline recogniser writes
    one, ``backend.speech.transcribe``; ``meta["transcript"]`` holds its words, which
    ``to_arrays`` saves as ``transcript_*``), ``progress``. The fields of
    :class:`AnimationOptions` may come as one ``options=`` instead.
    """
    parts = list(iter_animation(audio, fps, emotion, **kwargs))
    opts = kwargs.get("options")
    asked = kwargs if opts is None else {f: getattr(opts, f) for f in (
        "seed", "variation", "articulation")}
    meta = {"seed": asked.get("seed", 0), "variation": asked.get("variation", 0.0),
            "articulation": asked.get("articulation", 1.0),
            "chunks": len(parts), **parts[0].meta}
    return _concat(parts, meta)
