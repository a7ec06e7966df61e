"""Synthetic paired speech data: espeak-ng audio + viseme targets from its phone timings.

Why: the real clips hold ~2 minutes of speech from five people, so the speech VAE
memorises them: it follows their training parts closely and their held-out tails
barely (docs/SPEECH.md).
espeak-ng (bundled in a wheel, no download) speaks any sentence with exact phone times,
and ``visemes`` turns those into mouth curves, giving as many varied (audio, mouth)
pairs as training wants. Variety comes from a generator of English sentences built from
word lists (seeded, no corpus), several espeak voices/variants (pitch and timbre),
speaking rates, a small speed/pitch resample, and the audio degradations of
``augment``. Its audio is robotic; the real clips keep the model anchored to real voices.

Voices are split: ``TRAIN_VOICES`` for training, ``EVAL_VOICES`` (other accents and
variants) with other seeds for the bench's held-out synthetic row.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from shared.audio import SAMPLE_RATE

from .face_basis import MOUTH_CHANNELS, channel_index
from .visemes import viseme_track

MOUTH_IDS = channel_index(MOUTH_CHANNELS)
TRAIN_VOICES: tuple[str, ...] = (
    "en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-us-nyc",
    "en-us+f1", "en-us+f2", "en-us+m3", "en+f3", "en+m1", "en-gb-x-rp+f2",
    "en-gb-scotland+m4", "en-us-nyc+f3", "en+m7", "en-us+klatt")
EVAL_VOICES: tuple[str, ...] = ("en-029", "en-gb-x-gbcwmd+f2", "en-us+m2", "en+f1")
EVAL_SEED = 1_000_003  # held-out sentences: a seed no training run uses

_DET = ("the", "a", "my", "your", "his", "her", "our", "their", "this", "that", "every",
        "one", "some")
_ADJ = ("big", "small", "old", "new", "blue", "bright", "warm", "cold", "happy", "quiet",
        "loud", "famous", "purple", "wooden", "broken", "beautiful", "heavy", "pale",
        "open", "round", "yellow", "smooth", "funny", "modern", "empty", "perfect")
_NOUN = ("apple", "boat", "window", "mother", "father", "bottle", "paper", "music",
         "village", "morning", "garden", "pillow", "doctor", "machine", "table", "voice",
         "river", "mountain", "bubble", "puppy", "book", "phone", "movie", "office",
         "ocean", "baby", "museum", "kitchen", "money", "forest", "umbrella", "piano",
         "shoe", "moon", "wave", "fish", "face", "judge", "church", "measure", "juice")
_NAME = ("Peter", "Mary", "Bob", "Emma", "Oliver", "Sophie", "Paul", "Maya", "Victor",
         "Wendy", "Hugo", "Fiona", "Jim", "Olivia", "Mohammed", "Bella", "Arthur", "Zoe")
_VERB = ("bought", "opened", "moved", "found", "painted", "watched", "pushed", "played",
         "fixed", "made", "saw", "loved", "borrowed", "carried", "forgot", "wanted",
         "visited", "chose", "wrapped", "fed", "threw", "showed", "remembered", "washed")
_ADV = ("quickly", "slowly", "happily", "very often", "almost", "never", "maybe",
        "probably", "always", "suddenly", "really", "perhaps", "finally")
_PREP = ("by the", "on the", "under the", "from the", "behind the", "over the",
         "with the", "above the", "into the", "past the", "beyond the")
_OPEN = ("Well,", "Oh,", "So,", "Look,", "Hey,", "Yes,", "No,", "Honestly,", "Wow,",
         "Of course,", "Now,", "Okay,")
_Q = ("Why did", "How could", "When will", "Where would", "Who made", "What if")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def make_sentence(rng: np.random.Generator) -> str:
    """One random English sentence (statements, questions, exclamations, numbers)."""
    np_ = f"{_pick(rng, _DET)} {_pick(rng, _ADJ)} {_pick(rng, _NOUN)}"
    np2 = f"{_pick(rng, _PREP)} {_pick(rng, _ADJ)} {_pick(rng, _NOUN)}"
    kind = int(rng.integers(6))
    if kind == 0:
        s = f"{_pick(rng, _NAME)} {_pick(rng, _ADV)} {_pick(rng, _VERB)} {np_} {np2}."
    elif kind == 1:
        s = f"{_pick(rng, _Q)} {_pick(rng, _NAME)} want {np_}?"
    elif kind == 2:
        s = f"{_pick(rng, _OPEN)} {np_} was {_pick(rng, _ADJ)}, and {np2} was not!"
    elif kind == 3:
        s = (f"I {_pick(rng, _VERB)} {int(rng.integers(2, 99))} {_pick(rng, _NOUN)}s "
             f"{np2}.")
    elif kind == 4:
        s = f"Please, {_pick(rng, _NAME)}, bring {np_} to {_pick(rng, _NAME)}."
    else:
        s = (f"{_pick(rng, _OPEN)} {_pick(rng, _NAME)} and {_pick(rng, _NAME)} "
             f"{_pick(rng, _VERB)} {np_}.")
    return s[0].upper() + s[1:]


@dataclass
class SynthClip:
    """A synthetic training/eval item, shaped like ``data.ClipData`` where the trainer
    reads it (``mel``, ``prosody``, ``blendshapes``, ``n_frames``)."""

    name: str
    fps: Fraction
    text: str
    voice: str
    samples: np.ndarray  # float32 16 kHz (after augmentation)
    mel: np.ndarray  # [T, W, 80]
    prosody: np.ndarray  # [T, 4]
    vad: np.ndarray  # [T] bool
    blendshapes: np.ndarray  # [T, 52]: the viseme targets on the mouth channels
    evidence: np.ndarray  # [T, 29] phone evidence the model reads (``phones``)

    @property
    def n_frames(self) -> int:
        return int(self.blendshapes.shape[0])

    @property
    def mouth(self) -> np.ndarray:
        return self.blendshapes[:, MOUTH_IDS]


def speak(rng: np.random.Generator, voice: str, n_sentences: int
          ) -> tuple[np.ndarray, list[tuple[str, float]], str]:
    """Sentences spoken one after another with random pauses and a speed/pitch resample:
    (16 kHz samples, phones [(mnemonic, start s)], text)."""
    from backend.audio.loading import resample
    from backend.speech.espeak import synthesize

    pieces, phones, texts, t = [], [], [], 0.0
    sr_out = SAMPLE_RATE
    lead = np.zeros(int(rng.uniform(0.05, 0.6) * sr_out), np.float32)
    pieces.append(lead)
    t += len(lead) / sr_out
    for _ in range(n_sentences):
        text = make_sentence(rng)
        wpm = int(rng.integers(120, 230))
        clip = synthesize(text, voice, wpm)
        factor = float(rng.uniform(0.92, 1.08))  # >1: faster and higher
        pcm = resample(clip.samples, round(clip.sample_rate * factor), sr_out)
        phones += [(e.phoneme, t + e.time / factor) for e in clip.phonemes]
        pieces.append(pcm.astype(np.float32))
        t += len(pcm) / sr_out
        gap = np.zeros(int(rng.uniform(0.0, 0.5) * sr_out), np.float32)
        pieces.append(gap)
        t += len(gap) / sr_out
        texts.append(text)
    return np.concatenate(pieces), phones, " ".join(texts)


def make_clip(rng: np.random.Generator, voice: str, n_sentences: int = 2,
              augment: bool = True, name: str = "synth", exact: bool = False) -> SynthClip:
    """Speak, degrade (optionally) and featurise one synthetic clip at 25 or 30 fps.

    The phone evidence the model reads is what the phone loop hears in the (degraded)
    audio, or with ``exact`` espeak's own phones (what aligned dialogue text gives)."""
    from backend.audio import Audio, compute_audio_features, compute_frame_features

    from .augment import augment_audio
    from .features import model_inputs
    from .phones import evidence_from_phones, loop_evidence

    samples, phones, text = speak(rng, voice, n_sentences)
    if augment:
        samples = augment_audio(samples, SAMPLE_RATE, rng)
    fps = Fraction(int(rng.choice([25, 30])))
    audio = Audio(np.ascontiguousarray(samples), SAMPLE_RATE, name)
    feats = compute_frame_features(audio, fps, features=compute_audio_features(audio))
    mel, pros = model_inputs(feats)
    weights = np.zeros((feats.n_frames, 52), np.float32)
    duration = len(samples) / SAMPLE_RATE
    weights[:, MOUTH_IDS] = viseme_track(phones, duration, feats.frame_times)
    ev = (evidence_from_phones(phones, duration, "text") if exact
          else loop_evidence(audio.samples))
    return SynthClip(name, fps, text, voice, samples, mel, pros, feats.vad.copy(), weights,
                     ev.at_frames(feats.frame_times, float(fps)))


def tone_sounds(rng: np.random.Generator, seconds: float = 3.0) -> dict[str, np.ndarray]:
    """Non-speech sounds at 16 kHz: a sustained sine, a square wave, plucked notes
    (Karplus-Strong), plucks over a square arpeggio, a vibrato tone with a chord. Pitches
    and notes come from ``rng`` (training and the bench use different seeds)."""
    sr = SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr

    def square(f: float) -> np.ndarray:
        return np.sign(np.sin(2 * np.pi * f * t))

    def pluck(f: float, dur: float) -> np.ndarray:
        n, period = int(dur * sr), max(2, round(sr / f))
        buf = rng.uniform(-1, 1, period)
        out = np.empty(n)
        for i in range(n):
            out[i] = buf[i % period]
            buf[i % period] = 0.996 * 0.5 * (buf[i % period] + buf[(i + 1) % period])
        return out

    notes = 110.0 * 2 ** (rng.integers(0, 36, 6) / 12)
    melody = np.concatenate([pluck(f, seconds / len(notes)) for f in notes])
    melody = np.pad(melody, (0, max(0, len(t) - len(melody))))[: len(t)]
    melody /= max(np.abs(melody).max(), 1e-9)
    arp = np.concatenate([square(f)[: len(t) // len(notes)] for f in notes])
    arp = np.pad(arp, (0, len(t) - len(arp)))
    f0 = float(110.0 * 2 ** (rng.integers(0, 36) / 12))
    vib = np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t))
    chord = sum(np.sin(2 * np.pi * f0 * r * t) for r in (1.0, 1.26, 1.5))
    sounds = {"sine": 0.5 * np.sin(2 * np.pi * f0 * 2 * t), "square": 0.3 * square(f0),
              "plucked notes": 0.6 * melody, "plucks + square arpeggio": 0.4 * melody
              + 0.2 * arp, "vibrato tone + chord": 0.3 * vib + 0.15 * chord}
    return {k: v.astype(np.float32) for k, v in sounds.items()}


def make_nonspeech_set(n_clips: int, seed: int) -> list[SynthClip]:
    """Tones and instrumental sounds with a resting mouth: true negatives, so music and
    notes teach "no speech" (the trained VAD also gates them at inference)."""
    from backend.audio import Audio, compute_audio_features, compute_frame_features

    from .features import model_inputs
    from .phones import loop_evidence

    out = []
    for i in range(n_clips):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x70E5, i])
        sounds = tone_sounds(rng, float(rng.uniform(3.0, 5.0)))
        names = sorted(sounds)
        x = sounds[names[int(rng.integers(len(names)))]] * float(rng.uniform(0.3, 1.5))
        fps = Fraction(int(rng.choice([25, 30])))
        audio = Audio(np.ascontiguousarray(np.clip(x, -1, 1)), SAMPLE_RATE, f"tones{i}")
        feats = compute_frame_features(audio, fps, features=compute_audio_features(audio))
        mel, pros = model_inputs(feats)
        ev = loop_evidence(audio.samples).at_frames(feats.frame_times, float(fps))
        out.append(SynthClip(f"tones{i}", fps, "", "", audio.samples, mel, pros,
                             feats.vad.copy(), np.zeros((feats.n_frames, 52), np.float32),
                             ev))
    return out


def make_synthetic_set(n_clips: int, seed: int, voices: tuple[str, ...] = TRAIN_VOICES,
                       augment: bool = True, progress: bool = False,
                       exact_share: float = 0.0) -> list[SynthClip]:
    """``n_clips`` clips of 1-3 sentences each, reproducible for a seed.

    Each clip draws from its own generator, so sentences, voices, rates and degradations
    are the same for a seed whatever else happened. espeak-ng itself jitters its output
    by a few samples from call to call (pause lengths), so the audio and targets of a
    rerun agree closely, not bit for bit.
    """
    out = []
    for i in range(n_clips):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A17, i])
        voice = voices[int(rng.integers(len(voices)))]
        exact = bool(rng.random() < exact_share)
        out.append(make_clip(rng, voice, int(rng.integers(1, 4)), augment, f"synth{i}",
                             exact))
        if progress and (i + 1) % 50 == 0:
            print(f"synthetic clips: {i + 1}/{n_clips}", flush=True)
    return out
