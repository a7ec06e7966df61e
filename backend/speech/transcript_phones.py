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
in the length and a misheard stretch stays in its own. Each word's phones stay within
``WORD_TOL_S`` of the recogniser's own word times (an estimate independent of the
acoustic model, so one misheard word cannot drag its neighbours along). A stretch is
used only when its words fit the frame scores far better than the same phones shuffled
(``shuffle_ratio`` ≤ ``MAX_STRETCH_RATIO``): a recogniser that misheard a child or a
song writes confident words that fit the sound no better than noise. A stretch it scored
as doubtful (``transcribe.Stretch.doubtful``: accented English, or another language read
as English words) must fit as closely as a typed line (``MAX_SHUFFLE_RATIO``). A word the
recogniser was unsure of is used when its own placed phones fit the sound better than
the shuffled phones do (``UNSURE_FIT_RATIO``). Where the words are not to be trusted —
such a stretch, an unsure word that does not fit, a stretch it could not read (another
language), everything between stretches — the phones are the caller's acoustic ones
(``base``).

``fits_sound``: the same shuffle test for a typed dialogue text, a second chance after
the phone-loop test (``phones.loop_evidence``), which judges on the loop's misheard
labels and refuses many right lines.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .acoustic import PhoneScores
from .alignment import MIN_FRAMES, _phone_key, _viterbi, text_phones
from .phone_recognition import PAUSE, SAMPLE_RATE
from .transcribe import Transcript

PAD_S = 0.15  # audio kept around a stretch's first and last word
GRID_HZ = 100.0  # the phone evidence grid (``backend.motion.visemes.GRID_HZ``)
PAUSE_PENALTY = 0.3  # per 10 ms of pause inside speech: pauses only where silence wins
WORD_TOL_S = 0.2  # a word's phones stay within this of the recogniser's own word times
MAX_SHUFFLE_RATIO = 0.6  # a typed text fits when it scores at most this of its shuffled
# phones (the phone-loop test came first and refused it)
MAX_STRETCH_RATIO = 0.7  # a recogniser's stretch above this is misheard: acoustic phones
UNSURE_FIT_RATIO = 1.0  # an unsure word is used when its own placed phones fit the sound
# better than the stretch's phones shuffled (the shuffle test's yardstick), else acoustic
# phones there
SHUFFLES = 2
OUTSIDE_PENALTY = 5.0  # per 10 ms of a phone placed outside its word's band (finite:
# the path always exists, it just leaves the band only where nothing else fits)

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


def placement(samples: np.ndarray, expected: list[str], scores: PhoneScores | None = None,
              bands: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(text phone index per 10 ms frame, -1 for a pause; per frame, how far the placed
    phone scores below the frame's best phone, 0 in pauses) for the espeak phones
    ``expected`` on 16 kHz ``samples`` (``scores``: their ``acoustic.phone_scores`` when
    already computed), or None when they cannot fit (no phones, or more phones than
    frames). ``bands``: [N, 2] frames [first, last] each phone should sound within (its
    word's times, widened); a frame outside pays ``OUTSIDE_PENALTY``."""
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
    fit = cost.copy()
    if bands is not None:
        f = np.arange(n_frames)[:, None]
        cost += np.float32(OUTSIDE_PENALTY) * ((f < bands[None, :, 0])
                                               | (f > bands[None, :, 1]))
    path, _ = _viterbi(cost, (pause + PAUSE_PENALTY).astype(np.float32))
    deficit = np.where(path >= 0, fit[np.arange(n_frames), np.maximum(path, 0)], 0.0)
    return path, deficit


def path_phones(path: np.ndarray, expected: list[str]) -> Phones:
    """[(phone or PAUSE, start s)] of a ``placement`` path."""
    phones: Phones = []
    prev = None
    for f, j in enumerate(path):
        if j != prev:
            phones.append((PAUSE if j < 0 else expected[j], f / GRID_HZ))
            prev = j
    return phones


def posterior_alignment(samples: np.ndarray, expected: list[str],
                        scores: PhoneScores | None = None) -> Phones | None:
    """The espeak phones ``expected`` placed on 16 kHz ``samples`` (``placement``):
    [(phone or PAUSE, start s)], or None when they cannot fit."""
    placed = placement(samples, expected, scores)
    return None if placed is None else path_phones(placed[0], expected)


def mean_deficit(placed: tuple[np.ndarray, np.ndarray], mask: np.ndarray | None = None
                 ) -> float:
    """Mean deficit of a ``placement``'s phone frames (``mask``: only those frames)."""
    on = placed[0] >= 0 if mask is None else (placed[0] >= 0) & mask
    return float(placed[1][on].mean()) if on.any() else np.inf


def shuffled_deficit(samples: np.ndarray, expected: list[str], scores: PhoneScores
                     ) -> float:
    """The mean deficit of ``expected`` in random order placed on the sound: what a
    text that is not about this sound scores (the shuffle test's yardstick)."""
    rng = np.random.default_rng(0)
    shuffled = [placement(samples, list(rng.permutation(expected)), scores)
                for _ in range(SHUFFLES)]
    return max(float(np.mean([mean_deficit(p) for p in shuffled if p])), 1e-6)


def shuffle_ratio(samples: np.ndarray, expected: list[str], scores: PhoneScores,
                  placed: tuple[np.ndarray, np.ndarray]) -> float:
    """How far ``placed`` (a ``placement`` of ``expected``) sits below each frame's best
    phone, as a share of the same phones in random order placed the same way: a text
    about this sound scores far under 1, another line or a misheard one about 1
    (measured: docs/SPEECH.md)."""
    return mean_deficit(placed) / shuffled_deficit(samples, expected, scores)


def fits_sound(samples: np.ndarray, expected: list[str], scores: PhoneScores | None = None
               ) -> tuple[Phones | None, float]:
    """(the placed phones, or None when they do not fit the sound; ``shuffle_ratio``): a
    dialogue text fits at ``MAX_SHUFFLE_RATIO`` or under."""
    from .acoustic import phone_scores

    if not expected:
        return None, float("nan")
    scores = phone_scores(samples) if scores is None else scores
    placed = placement(samples, expected, scores)
    if placed is None:
        return None, float("nan")
    ratio = shuffle_ratio(samples, expected, scores, placed)
    return (path_phones(placed[0], expected) if ratio <= MAX_SHUFFLE_RATIO else None), ratio


@lru_cache(maxsize=4096)
def word_phones(word: str) -> tuple[str, ...]:
    """espeak's phones for one word as spoken alone (cached: words repeat)."""
    return tuple(text_phones(word))


def stretch_phones(words, start: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The phones of ``words`` (``transcribe.Word``), per phone the frames [first,
    last] after ``start`` its word may sound in (the recogniser's word times widened by
    ``WORD_TOL_S``), and per phone its word's index. The recogniser's word times are an
    estimate independent of the acoustic model: where the acoustic path would drift from
    them (a misheard word pulling its neighbours along), the band holds."""
    expected: list[str] = []
    bands, owner = [], []
    for k, w in enumerate(words):
        ph = word_phones(w.text.strip(".,!?;:\"'").lower() or w.text)
        expected += ph
        owner += [k] * len(ph)
        bands += [(round((w.start - WORD_TOL_S - start) * GRID_HZ),
                   round((w.end + WORD_TOL_S - start) * GRID_HZ))] * len(ph)
    return expected, np.array(bands, np.int64).reshape(-1, 2), np.array(owner, np.int64)


def phones_between(phones: Phones, a: float, b: float) -> Phones:
    """The phones sounding in [a, b), the first one clipped to start at ``a``."""
    out: Phones = []
    for i, (ph, t) in enumerate(phones):
        end = phones[i + 1][1] if i + 1 < len(phones) else np.inf
        if end > a and t < b:
            out.append((ph, max(t, a)))
    return out


class PlacedTranscript(NamedTuple):
    """A transcript's phones merged with the acoustic ones (``transcript_phones``)."""

    phones: Phones  # timed phones of the whole recording
    used: np.ndarray  # bool per ``GRID_HZ`` step: the transcript's phones sound there
    disagree: int  # sure words left out: their stretch does not fit the sound
    unsure_used: int  # unsure words used all the same: their own phones fit the sound


def transcript_phones(samples: np.ndarray, transcript: Transcript, base: Phones,
                      scores: PhoneScores) -> PlacedTranscript:
    """The transcript's phones where its words are to be trusted, ``base`` (the acoustic
    phones) everywhere else; ``scores``: the acoustic model's ``phone_scores`` of the
    whole of ``samples``. A word the recogniser was unsure of is used where its own
    placed phones fit the sound better than the stretch's phones shuffled
    (``UNSURE_FIT_RATIO``): the recogniser's probability is low on many right words
    (names, the last word of a line) and on near misses that keep the right lips ("pan"
    for "Pam"), and the alternative, the acoustic 1-best, hears few bilabials."""
    duration = len(samples) / SAMPLE_RATE
    n = int(np.ceil(duration * GRID_HZ)) + 1
    use_text = np.zeros(n, bool)
    stretches = [s for s in transcript.stretches if s.readable]
    spans = [(s.words[0].start - PAD_S, s.words[-1].end + PAD_S) for s in stretches]
    text: Phones = []
    disagree = unsure_used = 0
    for i, s in enumerate(stretches):
        a = max(0.0, spans[i][0], (spans[i - 1][1] + spans[i][0]) / 2 if i else 0.0)
        b = min(duration, spans[i][1],
                (spans[i][1] + spans[i + 1][0]) / 2 if i + 1 < len(spans) else duration)
        ia, ib = round(a * GRID_HZ), min(round(b * GRID_HZ), len(scores.loglik))
        piece = PhoneScores(scores.names, scores.loglik[ia:ib])
        expected, bands, owner = stretch_phones(s.words, ia / GRID_HZ)
        placed = placement(samples[ia * 160:ib * 160], expected, piece, bands)
        if placed is None:
            continue
        path, _ = placed
        bar = MAX_SHUFFLE_RATIO if s.doubtful else MAX_STRETCH_RATIO
        yardstick = shuffled_deficit(samples[ia * 160:ib * 160], expected, piece)
        if mean_deficit(placed) / yardstick > bar:  # not about this sound: misheard
            disagree += sum(w.sure for w in s.words)
            continue
        text += [(ph, ia / GRID_HZ + t) for ph, t in path_phones(path, expected)]
        use_text[ia:ib] = True
        for k, w in enumerate(s.words):
            if w.sure:
                continue
            word_frames = np.isin(path, np.flatnonzero(owner == k))
            if mean_deficit(placed, word_frames) / yardstick <= UNSURE_FIT_RATIO:
                unsure_used += 1  # unsure, but its phones fit the sound: used
                continue
            use_text[round(w.start * GRID_HZ):round(w.end * GRID_HZ) + 1] = False
    if not use_text.any():
        return PlacedTranscript(list(base), use_text, disagree, 0)
    merged: Phones = []
    edges = np.flatnonzero(np.diff(use_text.astype(np.int8))) + 1
    for a_i, b_i in zip(np.r_[0, edges], np.r_[edges, n], strict=True):
        merged += phones_between(text if use_text[a_i] else base, a_i / GRID_HZ,
                                 b_i / GRID_HZ)
    return PlacedTranscript(merged or [(PAUSE, 0.0)], use_text, disagree, unsure_used)
