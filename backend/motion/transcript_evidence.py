"""Phone evidence from an automatic transcript (no dialogue text given).

The recogniser's words are aligned stretch by stretch like a typed line
(``backend.speech.transcript_phones``); where they are not used (unsure words whose own
phones do not fit the sound, stretches whose phones do not fit it, stretches it could not
read, gaps) the evidence is exactly the no-text road's (``phones.heard_evidence``: the
acoustic 1-best phones and the bilabial / labiodental class rule), so a recording the
recogniser cannot read animates as it did without it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backend.speech.transcribe import Transcript

from .phones import PhoneEvidence, evidence_from_phones, heard_evidence


def transcript_evidence(samples: np.ndarray, transcript: Transcript
                        ) -> tuple[PhoneEvidence, Transcript]:
    """Evidence for 16 kHz mono ``samples`` from ``transcript``'s words (source
    "transcript" where any stretch of them was used, else the acoustic model's), and the
    transcript with the count of sure words whose phones did not fit the sound and of
    unsure words used all the same (its report says so)."""
    from backend.speech.acoustic import phone_scores
    from backend.speech.transcript_phones import transcript_phones

    scores = phone_scores(samples)
    base = heard_evidence(samples, scores)
    if not transcript.words:
        return base, transcript
    phones, use_text, disagree, unsure_used = transcript_phones(
        samples, transcript, list(base.phones), scores)
    transcript = replace(transcript, disagree=disagree, unsure_used=unsure_used)
    if not use_text.any():
        return base, transcript
    ev = evidence_from_phones(phones, len(samples) / 16000, "transcript")
    n = len(ev.must)
    text_here = np.zeros(n, bool)
    text_here[: min(n, len(use_text))] = use_text[:n]
    must = ev.must.copy()
    m = min(n, len(base.must))
    # the words' p/b/m and f/v, and wherever the acoustic rule hears one (a misheard word
    # must not open lips the sound closes)
    must[:m] = np.where(text_here[:m, None], np.maximum(ev.must[:m], base.must[:m]),
                        base.must[:m])
    return PhoneEvidence(ev.phones, ev.source, ev.warning, ev.visemes, must), transcript
