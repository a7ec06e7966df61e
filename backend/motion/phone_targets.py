"""Real speech recordings with phone-derived mouth targets (pocketsphinx + visemes).

Why: of the five real talking clips only d6 and d11 carry the speaker's voice; the sound
tracks of d12 and d14 are music and d9's is near silence (no voice activity, music
spectra), so their mouths cannot be learnt from their sound. ``../shared/data/speech``
holds 82 s of real human speech without video. pocketsphinx recognises its phones, and
the viseme table turns them into the same 27 mouth channels the real clips are solved
into: real voices, real rooms, with a rule-based (not tracked) mouth.

Each recording is split like the clips: the first 80 % trains, the last 20 % is held out
for ``facecast bench motion`` (lip sync of unseen real speech against its phones).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.audio import SAMPLE_RATE

from .data import HOLDOUT, real_data_file
from .face_basis import MOUTH_CHANNELS, channel_index

SPEECH_RECORDINGS: dict[str, Fraction] = {"eng": Fraction(30), "sun": Fraction(25)}
MOUTH_IDS = channel_index(MOUTH_CHANNELS)


@dataclass
class PhoneSpeechClip:
    """A real recording shaped like ``data.ClipData`` where the trainer reads it."""

    name: str
    fps: Fraction
    phones: list[tuple[str, float]]  # (espeak mnemonic, start s) over the whole recording
    mel: np.ndarray  # [T, W, 80]
    prosody: np.ndarray  # [T, 4]
    vad: np.ndarray  # [T] bool
    blendshapes: np.ndarray  # [T, 52]: viseme targets on the mouth channels, 0 elsewhere
    split: int  # first held-out frame
    evidence: np.ndarray  # [T, 29] the phone evidence the model reads (same phones)

    @property
    def n_frames(self) -> int:
        return int(self.blendshapes.shape[0])

    def part(self, held_out: bool) -> PhoneSpeechClip:
        s = slice(self.split, None) if held_out else slice(0, self.split)
        return PhoneSpeechClip(self.name, self.fps, self.phones, self.mel[s],
                               self.prosody[s], self.vad[s], self.blendshapes[s],
                               0 if held_out else self.split, self.evidence[s])


def speech_path(name: str, data_dir: str | Path | None = None) -> Path:
    return real_data_file("speech", name, ".wav", data_dir, "speech recording")


def prepare_speech(name: str, fps: Fraction | None = None,
                   data_dir: str | Path | None = None) -> PhoneSpeechClip:
    """Load, recognise phones, featurise and build targets for one recording (~4 s/min)."""
    from backend.audio import compute_audio_features, compute_frame_features, load_audio
    from backend.speech.phone_recognition import recognise_phones

    from .features import model_inputs
    from .phones import evidence_from_phones
    from .visemes import viseme_track

    fps = fps or SPEECH_RECORDINGS.get(name, Fraction(30))
    audio = load_audio(speech_path(name, data_dir), sample_rate=SAMPLE_RATE)
    phones = recognise_phones(audio.samples, audio.sample_rate)
    feats = compute_frame_features(audio, fps, features=compute_audio_features(audio))
    mel, pros = model_inputs(feats)
    weights = np.zeros((feats.n_frames, 52), np.float32)
    duration = len(audio.samples) / audio.sample_rate
    weights[:, MOUTH_IDS] = viseme_track(phones, duration, feats.frame_times)
    split = round(feats.n_frames * (1.0 - HOLDOUT))
    ev = evidence_from_phones(phones, duration, "phone loop").at_frames(
        feats.frame_times, float(fps))
    return PhoneSpeechClip(name, fps, phones, mel, pros, feats.vad.copy(), weights, split, ev)


def load_speech(names: tuple[str, ...] = tuple(SPEECH_RECORDINGS),
                data_dir: str | Path | None = None) -> list[PhoneSpeechClip]:
    return [prepare_speech(n, data_dir=data_dir) for n in names]
