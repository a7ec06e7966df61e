"""Phone timings of real speech with pocketsphinx's English phone-loop decoder.

Why: espeak-ng gives exact phone timings but a robotic voice; real recordings have real
voices but no labels. pocketsphinx (its wheel ships the en-us acoustic model and a phone
language model, no download) decodes a recording into ARPAbet phones with 10 ms
boundaries, no transcript needed. Phone recognition is imperfect (a phone-loop decoder
confuses neighbouring vowels or stops), but *where* a stop closes the lips and *where* a
vowel opens the jaw is what the mouth curves need, and that it gets mostly right.

The phones are returned in the espeak-ng mnemonics :mod:`.viseme_classes` groups into
viseme classes, so one table serves synthetic and real speech.
"""

from __future__ import annotations

import threading

import numpy as np

from shared.audio import SAMPLE_RATE
from shared.errors import FacecastError

FRAME_S = 0.01  # pocketsphinx frames are 10 ms

# ARPAbet (CMU) -> espeak-ng English mnemonic with the same mouth shape.
ARPABET_TO_ESPEAK: dict[str, str] = {
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E",
    "ER": "3:", "EY": "eI", "IH": "I", "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U",
    "UW": "u:",
    "B": "b", "P": "p", "M": "m", "F": "f", "V": "v", "TH": "T", "DH": "D", "T": "t",
    "D": "d", "N": "n", "L": "l", "S": "s", "Z": "z", "SH": "S", "ZH": "Z", "CH": "tS",
    "JH": "dZ", "K": "k", "G": "g", "NG": "N", "HH": "h", "R": "r", "W": "w", "Y": "j",
}
PAUSE = "_"  # silence and noise fillers (SIL, +NSN+, +SPN+, ...) read as a closed mouth
QUIET_DB = -50.0  # a phone quieter than this (RMS dBFS) ...
QUIET_BELOW_PEAK_DB = 40.0  # ... or this far below the loudest 10 ms is a pause

HOP_SAMPLES = round(FRAME_S * SAMPLE_RATE)
PIECE_FRAMES = 3000  # decode at most 30 s at a time ...
CUT_SEARCH_FRAMES = 500  # ... cut at the quietest 10 ms of its last 5 s

# A fixed seed: with the default (-1) pocketsphinx seeds its generator from the clock,
# which also made espeak-ng's noise sources differ between runs of the same training.
SEED = 1

_lock = threading.Lock()  # one decoder at a time: model loading is not free, keep it simple


def _decoder():
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError as exc:  # pragma: no cover - a dependency of the data engine
        raise FacecastError("pocketsphinx is not installed; install the data-engine extra: "
                            "pip install -e '.[tracking]'") from exc
    # Wide beams: a phone loop has no words to prune with, and 60 s decodes in ~3 s anyway.
    return Decoder(hmm=get_model_path("en-us/en-us"),
                   allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                   lw=2.0, beam=1e-20, pbeam=1e-20, loglevel="FATAL", seed=SEED)


def _frame_db(pcm: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each 10 ms frame."""
    hop = round(FRAME_S * SAMPLE_RATE)
    n = max(1, -(-len(pcm) // hop))
    x = np.zeros(n * hop, np.float32)
    x[: len(pcm)] = pcm / 32768.0
    rms = np.sqrt(np.mean(x.reshape(n, hop) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def _pieces(level: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) frame ranges of at most PIECE_FRAMES, cut in the quietest place."""
    out, a, n = [], 0, len(level)
    while n - a > PIECE_FRAMES:
        lo = a + PIECE_FRAMES - CUT_SEARCH_FRAMES
        cut = lo + int(np.argmin(level[lo:a + PIECE_FRAMES]))
        out.append((a, cut))
        a = cut
    out.append((a, n))
    return out


def recognise_phones(samples: np.ndarray, sample_rate: int = SAMPLE_RATE
                     ) -> list[tuple[str, float]]:
    """Phones of 16 kHz mono speech (see ``decode_phone_loop``)."""
    return decode_phone_loop(samples, sample_rate)[0]


def decode_phone_loop(samples: np.ndarray, sample_rate: int = SAMPLE_RATE
                      ) -> tuple[list[tuple[str, float]], float]:
    """Phones of 16 kHz mono speech as ``[(espeak mnemonic, start seconds)]``.

    Pauses, noise and phones in near silence come back as ``"_"`` so the mouth rests
    there. Deterministic. Also returns the acoustic score per 10 ms frame of the best
    phone path (pocketsphinx's log units): the yardstick a forced alignment of a text is
    measured against.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"phone recognition needs {SAMPLE_RATE} Hz audio, got {sample_rate}")
    pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
    if pcm.size == 0:
        return [], 0.0
    level = _frame_db(pcm)
    segs: list[tuple[str, int]] = []
    ascore = 0
    with _lock:
        dec = _decoder()
        for a, b in _pieces(level):  # bounded decoder memory for long recordings
            dec.start_utt()
            dec.process_raw(pcm[a * HOP_SAMPLES:b * HOP_SAMPLES].tobytes(), full_utt=True)
            dec.end_utt()
            found = list(dec.seg())
            segs += [(s.word, a + s.start_frame) for s in found]
            ascore += sum(s.ascore for s in found)
    floor = max(QUIET_DB, float(level.max()) - QUIET_BELOW_PEAK_DB)
    out: list[tuple[str, float]] = []
    for i, (word, start) in enumerate(segs):
        stop = segs[i + 1][1] if i + 1 < len(segs) else len(level)
        phone = ARPABET_TO_ESPEAK.get(word.upper().rstrip("012"), PAUSE)
        if level[start:max(stop, start + 1)].max(initial=-200.0) < floor:
            phone = PAUSE  # the phone loop always emits phones, even for digital silence
        if out and out[-1][0] == PAUSE and phone == PAUSE:
            continue  # merge runs of silence/noise
        out.append((phone, start * FRAME_S))
    return out, ascore / max(len(level), 1)
