"""Phone evidence for the speech model: what was said and when, per video frame.

Three roads to the phones of a recording, one representation:

* **The acoustic model's 1-best phones** (no text, the default): pocketsphinx's English
  acoustic model, trained on far more speech than we have, scored per 10 ms frame our
  own way (``backend.speech.acoustic.heard_phones``), the
  best phone per frame after 30 ms smoothing; the lips must also meet (tuck) where the
  bilabial (labiodental) class outscores the other mouth classes.
* **Dialogue text**: the text's own phones placed on the recording
  (``backend.speech.alignment``); a text that does not fit the speech changes nothing:
  the evidence is the no-text road's, with a warning that says why.
* **The phone loop**: pocketsphinx's own decoder with a search over the same model
  (``backend.speech.phone_recognition``), which the text alignment
  needs; it was the road without text until the acoustic 1-best followed real speech
  more closely at a fraction of the cost (docs/SPEECH.md).

Why a 1-best timed phone sequence and not the per-frame posteriors themselves: a mouth
needs *which viseme when*, the shipped network was trained on timed phones (the phone
loop's, and espeak's own), and a network retrained on posteriors followed real speech
worse (see docs/INTERNALS.md, 'How the mouth is made'). The phones become the evidence
the model reads per frame:

* the coarticulated viseme curve of the phones (27 mouth channels, ``visemes``), and
* two "must" curves, 1 where a bilabial (p/b/m: the lips must meet) or a labiodental
  (f/v: the lower lip must tuck) is sounding, which the JALI-style layer in
  ``speech_vae`` enforces after the network.

Everything is computed once per recording on the 100 Hz hop grid and sampled per frame,
so chunked animation sees exactly what one long pass would.

``acoustic_evidence``: each frame's phone posteriors summed into viseme class
probabilities and coarticulated like phones (no 1-best choice); ``facecast bench motion``
prints it as a no-network baseline. Only its "must" rule (``class_must``) joins the
no-text evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from shared.audio import SAMPLE_RATE

from ..speech.viseme_classes import CLASSES, viseme_class
from .visemes import ANTICIPATE_MS, GRID_HZ, N_MOUTH, coarticulate, viseme_grid

if TYPE_CHECKING:
    from backend.speech.acoustic import PhoneScores

N_PHONE_FEATURES = N_MOUTH + 2  # viseme curve + bilabial + labiodental
MIN_CLOSURE_S = 0.06  # the lips stay shut at least this long on a p/b/m
WORD_SOURCES = ("text", "transcript")  # phones from words: their p/b/m are said


@dataclass(frozen=True)
class PhoneEvidence:
    """Phones of one recording and their curves on the 100 Hz grid."""

    phones: tuple[tuple[str, float], ...]  # (espeak mnemonic or "_", start seconds)
    source: str  # "acoustic model", "phone loop" or "text"
    warning: str  # why the text was not used ("" when it was, or none was given)
    visemes: np.ndarray  # [H, 27] coarticulated viseme curve (grid time i/100 - lead)
    must: np.ndarray  # [H, 2] bilabial, labiodental sounding (grid time i/100 - lead)

    def at_frames(self, frame_times: np.ndarray, fps: float) -> np.ndarray:
        """float32[T, 29] evidence at video frames centred on ``frame_times``.

        The "must" curves take the maximum over each frame's whole span, so a 50 ms /p/
        between two frame centres still marks a frame."""
        lead = ANTICIPATE_MS / 1000
        n = len(self.visemes)
        t = np.asarray(frame_times, np.float64)
        pos = np.clip((t + lead) * GRID_HZ, 0, n - 1)
        lo, frac = np.floor(pos).astype(int), pos - np.floor(pos)
        hi = np.minimum(lo + 1, n - 1)
        vis = self.visemes[lo] * (1 - frac)[:, None] + self.visemes[hi] * frac[:, None]
        half = 0.5 / fps
        a = np.clip(np.floor((t - half + lead) * GRID_HZ).astype(int), 0, n - 1)
        b = np.clip(np.ceil((t + half + lead) * GRID_HZ).astype(int), 0, n - 1)
        cum = np.concatenate([np.zeros((1, 2)), np.cumsum(self.must, axis=0)])
        span = np.maximum(b - a + 1, 1)[:, None]
        must = (cum[b + 1] - cum[a]) / span > 0  # any sounding grid step in the span
        inside = (t >= 0) & (t <= n / GRID_HZ)
        out = np.concatenate([vis, must.astype(np.float32)], axis=1)
        out[~inside] = 0.0
        return out.astype(np.float32)


def evidence_from_phones(phones: list[tuple[str, float]], duration: float, source: str,
                         warning: str = "") -> PhoneEvidence:
    grid = viseme_grid(phones, duration)
    must = np.zeros((len(grid), 2), np.float32)
    for i, (ph, t0) in enumerate(phones):
        t1 = phones[i + 1][1] if i + 1 < len(phones) else min(duration, t0 + 0.25)
        cls = viseme_class(ph)
        col = 0 if cls == "bilabial" else 1 if cls == "labiodental" else None
        if col == 0 and source in WORD_SOURCES:
            t0, t1 = closure_span(t0, t1)
        if col is not None:
            must[round(t0 * GRID_HZ):max(round(t1 * GRID_HZ), round(t0 * GRID_HZ) + 1),
                 col] = 1.0
    return PhoneEvidence(tuple(phones), source, warning, grid, must[: len(grid)])


def closure_span(t0: float, t1: float) -> tuple[float, float]:
    """The grid span (in phone time, like every row of the evidence) where a p/b/m
    sounding from ``t0`` to ``t1`` keeps the lips shut. Read ``ANTICIPATE_MS`` early like
    every target, the lips close before the sound, and they must stay shut until its
    release (the burst of p/b, the vowel after m), so the span runs ``ANTICIPATE_MS``
    past the phone's end; and real lips stay shut ``MIN_CLOSURE_S`` at least, while an
    alignment gives a bilabial as little as 20-30 ms (widened about its middle). Only for
    phones from words (``WORD_SOURCES``): the acoustic model's guessed bilabials keep
    their own length (held longer, they cost real-clip sync: docs/SPEECH.md)."""
    t1 += ANTICIPATE_MS / 1000
    short = MIN_CLOSURE_S - (t1 - t0)
    if short > 0:
        t0, t1 = t0 - short / 2, t1 + short / 2
    return max(t0, 0.0), t1


def phone_evidence(samples: np.ndarray, text: str | None = None) -> PhoneEvidence:
    """Phones of 16 kHz mono ``samples`` as animation reads them: the dialogue ``text``
    when it fits (``loop_evidence``'s test, else ``transcript_phones.fits_sound``'s on the
    frame scores), placed on the acoustic model's frame scores
    (``transcript_phones.posterior_alignment``, closer to the sound than the loop's
    placement); otherwise (no text, or one that does not fit: ``warning`` says why) the
    acoustic model's 1-best phones (``acoustic.heard_phones``: ~1/30 of the phone loop's
    cost, and the mouth follows real speech better with them — see the
    docs/BENCHMARKS.md's motion table). A text that is not used changes nothing."""
    warning = ""
    if text is not None and text.strip():
        from backend.speech.alignment import text_phones
        from backend.speech.transcript_phones import fits_sound, posterior_alignment

        aligned = loop_evidence(samples, text)
        if aligned.source == "text":  # it fits: placed on the frame scores (exact)
            placed = posterior_alignment(samples, text_phones(text))
            return (aligned if placed is None else
                    evidence_from_phones(placed, len(samples) / SAMPLE_RATE, "text"))
        # the loop test judges on the phone loop's misheard labels and refuses many right
        # lines: a second test on the frame scores themselves
        placed, _ = fits_sound(samples, text_phones(text))
        if placed is not None:
            return evidence_from_phones(placed, len(samples) / SAMPLE_RATE, "text")
        warning = aligned.warning
    return heard_evidence(samples, None, warning)


def heard_evidence(samples: np.ndarray, scores: PhoneScores | None = None, warning: str = ""
                   ) -> PhoneEvidence:
    """The no-text evidence: the acoustic model's 1-best phones (``scores``: its
    ``acoustic.phone_scores`` of ``samples`` when already computed), and the lips meet
    (tuck) where the bilabial (labiodental) class wins."""
    from backend.speech.acoustic import heard_phones, phone_scores

    scores = phone_scores(samples) if scores is None else scores
    ev = evidence_from_phones(heard_phones(samples, scores), len(samples) / SAMPLE_RATE,
                              "acoustic model", warning)
    # The lips must also meet where bilabials together outscore every other mouth class,
    # though no single bilabial phone wins the frame (p, b and m split the evidence):
    # p/b/m closed 53 % -> 65 % on the bench's espeak sentences, real speech unchanged.
    by_class = class_must(_class_grid(samples, scores))
    n = min(len(by_class), len(ev.must))
    must = ev.must.copy()
    must[:n] = np.maximum(must[:n], by_class[:n])
    return PhoneEvidence(ev.phones, ev.source, ev.warning, ev.visemes, must)


def loop_evidence(samples: np.ndarray, text: str | None = None) -> PhoneEvidence:
    """The phone loop's phones (pocketsphinx's own search), or ``text`` aligned on them.
    Training reads these for clips without exact phones: the shipped weights were
    trained so (``facecast motion train`` reproduces them), and the text alignment
    needs the loop's score and labels anyway."""
    from backend.speech.phone_recognition import decode_phone_loop

    duration = len(samples) / SAMPLE_RATE
    heard, loop_score = decode_phone_loop(samples, SAMPLE_RATE)
    warning = ""
    if text is not None and text.strip():
        from backend.speech.alignment import (
            accept_acoustic,
            align_text,
            forced_alignment,
            text_phones,
        )

        acoustic = forced_alignment(samples, text)
        if acoustic is not None:
            alignment, why = accept_acoustic(acoustic, loop_score)
        else:  # the acoustic search could not align it: road 2
            alignment, why = align_text(text_phones(text), heard, duration)
        if alignment is not None:
            return evidence_from_phones(alignment.phones, duration, "text")
        warning = f"the dialogue text was not used: {why}; lip sync follows the phones heard"
    return evidence_from_phones(heard, duration, "phone loop", warning)


@lru_cache(maxsize=1)
def _phone_to_class() -> np.ndarray:
    """float32[acoustic model phones, C]: each ARPAbet phone's viseme class (silence and
    noise fillers: rest)."""
    from backend.speech.acoustic import acoustic_model
    from backend.speech.phone_recognition import ARPABET_TO_ESPEAK, PAUSE

    names = acoustic_model().names
    out = np.zeros((len(names), len(CLASSES)), np.float32)
    for i, name in enumerate(names):
        out[i, CLASSES.index(viseme_class(ARPABET_TO_ESPEAK.get(name, PAUSE)))] = 1.0
    out.setflags(write=False)
    return out


def acoustic_class_probs(samples: np.ndarray, scores: PhoneScores | None = None
                         ) -> np.ndarray:
    """float32[H, C] viseme class probabilities per 10 ms hop of 16 kHz mono
    ``samples`` (``visemes.CLASSES`` order; quiet hops: rest); ``scores``: its
    ``acoustic.phone_scores`` when already computed."""
    from backend.speech.acoustic import phone_scores, quiet_hops

    scores = phone_scores(samples) if scores is None else scores
    probs = scores.posteriors() @ _phone_to_class()
    probs[quiet_hops(samples, len(probs))] = np.eye(len(CLASSES), dtype=np.float32)[0]
    return probs


def _class_grid(samples: np.ndarray, scores: PhoneScores | None) -> np.ndarray:
    """float32[H, C] class probabilities on the evidence grid (``GRID_HZ``, one step past
    the end; past the last hop: rest)."""
    n = int(np.ceil(len(samples) / SAMPLE_RATE * GRID_HZ)) + 1
    classes = np.zeros((n, len(CLASSES)), np.float32)
    classes[:, 0] = 1.0
    probs = acoustic_class_probs(samples, scores)[:n]
    classes[: len(probs)] = probs
    return classes


def class_must(classes: np.ndarray) -> np.ndarray:
    """float32[H, 2]: 1 where the most likely class is bilabial / labiodental."""
    best = classes.argmax(axis=1)
    return np.stack([best == CLASSES.index("bilabial"),
                     best == CLASSES.index("labiodental")], axis=1).astype(np.float32)


def acoustic_evidence(samples: np.ndarray, scores: PhoneScores | None = None
                      ) -> PhoneEvidence:
    """Evidence from the acoustic model's frame scores: the coarticulated curve of the
    class probabilities; the must curves mark hops whose most likely class is bilabial /
    labiodental (``class_must``)."""
    classes = _class_grid(samples, scores)
    return PhoneEvidence((), "acoustic model", "", coarticulate(classes), class_must(classes))
