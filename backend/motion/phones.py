"""Phone evidence for the speech model: what was said and when, per video frame.

Two roads to the phones of a recording, one representation:

* **The phone loop** (no text): pocketsphinx's English acoustic model, trained on far more
  speech than we have, labels every 10 ms (``backend.speech.phone_recognition``).
* **Dialogue text**: the text's own phones placed on the recording
  (``backend.speech.alignment``); a text that does not fit the speech falls back to the
  phone loop with a warning that says why.

Why phones as a 1-best timed sequence and not per-frame posteriors or a lattice:
pocketsphinx's Python API exposes segments with times and a word lattice, not senone
posteriors; a mouth needs *which viseme when*, and the segments carry exactly that. The
segments become the evidence the model reads per frame:

* the coarticulated viseme curve of the phones (27 mouth channels, ``visemes``), and
* two "must" curves, 1 where a bilabial (p/b/m: the lips must meet) or a labiodental
  (f/v: the lower lip must tuck) is sounding, which the JALI-style layer in
  ``speech`` enforces after the network.

Everything is computed once per recording on the 100 Hz hop grid and sampled per frame,
so chunked animation sees exactly what one long pass would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .visemes import ANTICIPATE_MS, GRID_HZ, N_MOUTH, viseme_class, viseme_grid

N_PHONE_FEATURES = N_MOUTH + 2  # viseme curve + bilabial + labiodental


@dataclass(frozen=True)
class PhoneEvidence:
    """Phones of one recording and their curves on the 100 Hz grid."""

    phones: tuple[tuple[str, float], ...]  # (espeak mnemonic or "_", start seconds)
    source: str  # "phone loop" or "text"
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
        if col is not None:
            must[round(t0 * GRID_HZ):max(round(t1 * GRID_HZ), round(t0 * GRID_HZ) + 1),
                 col] = 1.0
    return PhoneEvidence(tuple(phones), source, warning, grid, must[: len(grid)])


def phone_evidence(samples: np.ndarray, text: str | None = None) -> PhoneEvidence:
    """Phones of 16 kHz mono ``samples``: the dialogue ``text`` aligned when it fits,
    else the phone loop (``warning`` says why the text was not used)."""
    from backend.speech.phone_recognition import decode_phone_loop

    duration = len(samples) / 16000
    heard, loop_score = decode_phone_loop(samples, 16000)
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
