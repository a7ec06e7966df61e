"""Words -> exact phone times: a transcript (or an accepted dialogue text) placed on the
acoustic model's per-frame phone scores.

``posterior_alignment``: the text's espeak phones are placed by a monotonic Viterbi
path over the per-frame scores of pocketsphinx's English acoustic model
(``backend.speech.acoustic``, ~0.1 s per minute): every 10 ms frame goes to one phone of
the text (at least ``alignment.MIN_FRAMES`` each, in order) or to a pause between them,
and pays how far the phones that may sound it (``phone_sets``: the same phone, else its
viseme class) score below the frame's best phone; a pause pays the same for silence,
plus ``PAUSE_PENALTY``. This places phones on the sound itself, not on the phone loop's
1-best labels (``alignment.align_text``, which errs by a phone or two wherever the loop
misheard) and never gives up part-way (pocketsphinx's own forced alignment often stops
after the first words).

``transcript_phones``: an automatic transcript (``transcribe.Transcript``) is placed
stretch by stretch — each readable stretch (one Whisper segment) on its own slice of the
audio, padded by ``PAD_S`` and cut halfway to its neighbours — so the cost stays linear
in the length and a misheard stretch stays in its own. The recogniser wrote the words
from this very audio, so no "is this text about this audio" test is applied; instead,
where the words are not to be trusted — a word it was unsure of, a stretch it could not
read (another language, singing), everything between stretches — the phones are the
caller's acoustic ones (``base``).
"""

from __future__ import annotations

import numpy as np

from .acoustic import PhoneScores
from .alignment import MIN_FRAMES, _phone_key, _viterbi, text_phones
from .phone_recognition import PAUSE, SAMPLE_RATE
from .transcribe import Transcript

PAD_S = 0.15  # audio kept around a stretch's first and last word
GRID_HZ = 100.0  # the phone evidence grid (``backend.motion.visemes.GRID_HZ``)
PAUSE_PENALTY = 0.3  # per 10 ms of pause inside speech: pauses only where silence wins

# espeak's reduced and variant phones that have an English ARPAbet twin
REDUCED = {"@": "V", "@2": "V", "@5": "V", "a#": "V", "3": "3:", "I2": "I", "I#": "I",
           "i": "i:", "0": "A:", "e@": "E", "U@": "U", "o@": "O:", "A@": "A:", "i@": "i:",
           "aI@": "aI", "t#": "t", "d#": "d", "n-": "n", "l-": "l", "r-": "r", "z#": "z"}

Phones = list[tuple[str, float]]


def phone_sets(expected: list[str], names: tuple[str, ...]) -> list[np.ndarray]:
    """For each espeak phone of a text, the acoustic model's phones (indices into
    ``names``, ARPAbet) that may sound it: the same phone, else every phone of its viseme
    class, else every speech phone."""
    from .phone_recognition import ARPABET_TO_ESPEAK

    keys = {i: _phone_key(ARPABET_TO_ESPEAK[n]) for i, n in enumerate(names)
            if n in ARPABET_TO_ESPEAK}
    out = []
    for ph in expected:
        k = _phone_key(REDUCED.get(ph.lstrip("'%,="), ph))
        same = [i for i, kk in keys.items() if kk[0] == k[0]]
        cls = [i for i, kk in keys.items() if kk[1] == k[1]]
        out.append(np.array(same or cls or list(keys), np.int64))
    return out


def posterior_alignment(samples: np.ndarray, expected: list[str],
                        scores: PhoneScores | None = None) -> Phones | None:
    """The espeak phones ``expected`` placed on 16 kHz ``samples`` (``scores``: their
    ``acoustic.phone_scores`` when already computed): [(phone or PAUSE, start s)], or
    None when they cannot fit (no phones, or more phones than frames)."""
    from .acoustic import ACOUSTIC_SCALE, SILENCES, phone_scores, quiet_hops

    if not expected:
        return None
    scores = phone_scores(samples) if scores is None else scores
    n_frames = len(scores.loglik)
    if n_frames < MIN_FRAMES * len(expected):
        return None
    z = scores.loglik * np.float32(ACOUSTIC_SCALE)
    z = z - z.max(axis=1, keepdims=True)  # 0 for the frame's best phone
    sil = np.array([i for i, n in enumerate(scores.names) if n in SILENCES])
    pause = -z[:, sil].max(axis=1)
    pause[quiet_hops(samples, n_frames)] = 0.0
    # a set scores its mean likelihood, so a wide set (an unknown phone) is no free ride
    cost = np.stack([np.log(len(x)) - np.logaddexp.reduce(z[:, x], axis=1)
                     for x in phone_sets(expected, scores.names)], axis=1).astype(np.float32)
    path, _ = _viterbi(cost, (pause + PAUSE_PENALTY).astype(np.float32))
    phones: Phones = []
    prev = None
    for f, j in enumerate(path):
        if j != prev:
            phones.append((PAUSE if j < 0 else expected[j], f / GRID_HZ))
            prev = j
    return phones


def phones_between(phones: Phones, a: float, b: float) -> Phones:
    """The phones sounding in [a, b), the first one clipped to start at ``a``."""
    out: Phones = []
    for i, (ph, t) in enumerate(phones):
        end = phones[i + 1][1] if i + 1 < len(phones) else np.inf
        if end > a and t < b:
            out.append((ph, max(t, a)))
    return out


def transcript_phones(samples: np.ndarray, transcript: Transcript, base: Phones,
                      scores: PhoneScores) -> tuple[Phones, np.ndarray]:
    """(timed phones, bool per ``GRID_HZ`` step: the transcript's phones are used there).
    ``base``: the acoustic phones used everywhere else; ``scores``: the acoustic model's
    ``phone_scores`` of the whole of ``samples``."""
    duration = len(samples) / SAMPLE_RATE
    n = int(np.ceil(duration * GRID_HZ)) + 1
    use_text = np.zeros(n, bool)
    stretches = [s for s in transcript.stretches if s.readable]
    spans = [(s.words[0].start - PAD_S, s.words[-1].end + PAD_S) for s in stretches]
    text: Phones = []
    for i, s in enumerate(stretches):
        a = max(0.0, spans[i][0], (spans[i - 1][1] + spans[i][0]) / 2 if i else 0.0)
        b = min(duration, spans[i][1],
                (spans[i][1] + spans[i + 1][0]) / 2 if i + 1 < len(spans) else duration)
        ia, ib = round(a * GRID_HZ), min(round(b * GRID_HZ), len(scores.loglik))
        piece = PhoneScores(scores.names, scores.loglik[ia:ib])
        placed = posterior_alignment(samples[ia * 160:ib * 160],
                                     text_phones(" ".join(w.text for w in s.words)), piece)
        if placed is None:
            continue
        text += [(ph, ia / GRID_HZ + t) for ph, t in placed]
        use_text[ia:ib] = True
        for w in s.words:
            if not w.sure:
                use_text[round(w.start * GRID_HZ):round(w.end * GRID_HZ) + 1] = False
    if not use_text.any():
        return list(base), use_text
    merged: Phones = []
    edges = np.flatnonzero(np.diff(use_text.astype(np.int8))) + 1
    for a_i, b_i in zip(np.r_[0, edges], np.r_[edges, n], strict=True):
        merged += phones_between(text if use_text[a_i] else base, a_i / GRID_HZ,
                                 b_i / GRID_HZ)
    return merged or [(PAUSE, 0.0)], use_text
