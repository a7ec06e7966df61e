"""Text-to-speech with the libespeak-ng that ships inside the ``espeakng-loader`` wheel.

Why: ``facecast demo`` must speak a line on a fresh machine with no system packages and
no network, and synthetic training data wants phoneme timings. espeak-ng gives both: PCM
audio and a PHONEME event (with its sample position) for every phone it speaks. It is
called through ctypes in synchronous mode; the library keeps global state, so calls are
serialised with a lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from shared.errors import FacecastError, InputError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_SSML = 0x10
_EVENT_PHONEME = 7
_PARAM_RATE = 1
MAX_TEXT_CHARS = 5000
RAND_SEED = 1


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId))


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhonemeEvent:
    """A phone espeak-ng spoke, starting at ``time`` seconds (espeak's own mnemonic)."""

    phoneme: str
    time: float


@dataclass(frozen=True)
class SpeechClip:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    phonemes: tuple[PhonemeEvent, ...]
    text: str

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class _Engine:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise FacecastError("espeak-ng is not installed",
                                "pip install espeakng-loader (it is a Facecast dependency), "
                                "or pass --audio FILE", code="missing_dependency") from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int)
        self.lib.espeak_Synth.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p)
        self.lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        self.lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        self.lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                                      _INITIALIZE_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise FacecastError("espeak-ng failed to initialise",
                                "reinstall espeakng-loader, or pass --audio FILE")
        self._chunks: list[np.ndarray] = []
        self._events: list[PhonemeEvent] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("ascii", "replace")
                self._events.append(PhonemeEvent(name, ev.sample / self.sample_rate))
            i += 1
        return 0

    def speak(self, text: str, voice: str, words_per_minute: int, ssml: bool) -> SpeechClip:
        self._chunks, self._events = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"espeak-ng has no voice {voice!r}", "use e.g. 'en-us' or 'en'")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(words_per_minute), 0)
        # espeak-ng adds noise (breathy variants, +f voices) from a generator it seeds
        # with the clock at start-up: reseed it for every call, so the same line in the
        # same voice always gives the same samples, whatever was said before.
        self.lib.espeak_ng_SetRandSeed(RAND_SEED)
        raw = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        self.lib.espeak_Synth(raw, len(raw), 0, 0, 0, flags, None, None)
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return SpeechClip((pcm.astype(np.float32) / 32768.0), self.sample_rate,
                          tuple(self._events), text)


_engine: _Engine | None = None
_lock = threading.Lock()


def synthesize(text: str, voice: str = "en-us", words_per_minute: int = 160,
               ssml: bool = False) -> SpeechClip:
    """Speak ``text``; returns PCM and the phoneme timings. ``ssml``: the text is SSML
    (``<speak>`` with ``<prosody pitch range rate volume>``, ``<emphasis>``, ``<break>``)."""
    global _engine
    if not text.strip():
        raise InputError("the text to speak is empty", "give a sentence")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the text is {len(text)} characters (limit {MAX_TEXT_CHARS})",
                         "split it into shorter lines")
    if not 80 <= words_per_minute <= 450:
        raise InputError(f"speaking rate {words_per_minute} wpm is out of range",
                         "use 80..450 words per minute")
    with _lock:
        if _engine is None:
            _engine = _Engine()
        clip = _engine.speak(text, voice, words_per_minute, ssml)
    if clip.samples.size == 0:
        raise FacecastError("espeak-ng produced no audio", "try another text or voice")
    return clip
