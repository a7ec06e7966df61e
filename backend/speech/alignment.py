"""Dialogue text -> exact phone timing (what Rhubarb Lip Sync does with its dialog file,
done our own way, in two roads with one acceptance test).

1. **Acoustic forced alignment** (pocketsphinx's English acoustic model and cmudict, both
   in its wheel): the text's words are aligned to the audio, then a second pass gives
   phone boundaries. It is exact when it works, and fragile: in our trials it fails on
   about a third of espeak sentences ("Failed to set up sub-word alignment"), and it
   cannot align a word cmudict lacks. Made robust by padding the audio with silence,
   retrying with a wider beam, and falling through to road 2.
2. **Alignment to the phone loop**: the text's phones from espeak-ng's own pronunciation
   (any word, numbers and names included, in the mnemonics the viseme table speaks) are
   placed on the phone loop's 10 ms labels by a monotonic Viterbi path: every frame goes
   to one of the text's phones (each at least ``MIN_FRAMES`` long, in order) or to an
   optional pause between them, paying a substitution cost between the heard label and
   the text's phone (0 same phone, small within a viseme class, more across classes).
   Every text phone gets a time even where the loop misheard it: its neighbours pin it.

Is the text about this audio? Road 1: the acoustic search rarely reaches the end of a
wrong text at all (1 of 12 in our trials), and when it does, the text must explain the
sound nearly as well as the free phone loop: its acoustic score per 10 ms may trail the
loop's by at most ``ACOUSTIC_MARGIN`` (matching texts trailed by 28-33 in our trials, the
one wrong text that aligned by 44). Road 2: the path is scored against the phone loop's
labels, and so is the best path of the same phones shuffled (a fixed seed); a matching
text costs clearly less than its own shuffle (``MATCH_RATIO``). When a text fails, or is
far too long or short for the speech heard, the caller gets ``None`` and the reason, and
falls back to the phone loop.

Why not DTW against espeak-ng's rendering of the text (aeneas): it matches a robot voice
to a human one frame by frame, and on our espeak-voiced benches it would flatter itself.

Non-English speech: espeak's English pronunciation of a foreign text and an English phone
loop agree poorly, so alignment usually fails the match test and the phone loop is used;
its English phones still place open vowels and closures roughly (coarser than English).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.audio import SAMPLE_RATE

from .phone_recognition import FRAME_S, PAUSE
from .viseme_classes import DIPHTHONGS, normalise_phone, viseme_class

MIN_FRAMES = 2  # every text phone lasts at least 20 ms
MATCH_RATIO = 0.85  # road 2: a text must cost < 85 % of its own shuffle
ACOUSTIC_MARGIN = 38.0  # road 1: score per 10 ms at most this far below the phone loop's
MAX_SECONDS = 300.0  # longer recordings: alignment memory grows with frames x phones
PAUSE_COST = 0.8  # a heard phone inside a pause, or a heard pause inside a phone
MAX_TEXT_CHARS = 20000
FA_PAD_S = 0.25  # silence around the audio: the acoustic model's start and end states
FA_BEAMS = (1e-48, 1e-80)  # a failed search is retried once, wider
FA_MAX_SECONDS = 60.0  # forced alignment of longer lines is slow: road 2 only


@dataclass(frozen=True)
class Alignment:
    phones: list[tuple[str, float]]  # (espeak mnemonic or "_", start seconds)
    cost: float  # road 2: mean cost per speech frame; road 1: score gap to the loop
    shuffled_cost: float  # road 2: the same for the phones shuffled; road 1: the margin


def text_phones(text: str) -> list[str]:
    """espeak-ng's phones for ``text`` (pauses dropped: the aligner places its own)."""
    from .espeak import MAX_TEXT_CHARS as ESPEAK_CHARS
    from .espeak import synthesize

    out: list[str] = []
    # espeak takes at most ESPEAK_CHARS per call: speak the text in line/sentence pieces
    pieces, cur = [], ""
    for part in text.replace("\n", " \n").split(" "):
        if len(cur) + len(part) + 1 > ESPEAK_CHARS // 2:
            pieces.append(cur)
            cur = ""
        cur += part + " "
    pieces.append(cur)
    for piece in pieces:
        if piece.strip():
            out += [e.phoneme for e in synthesize(piece, "en-us", 175).phonemes
                    if viseme_class(e.phoneme) != "rest"]
    return out


def _phone_key(phone: str) -> tuple[str, str, bool]:
    """(normalised phone, viseme class, is a vowel)."""
    p = normalise_phone(phone)
    cls = viseme_class(phone)
    vowel = p in DIPHTHONGS or cls in {
        "open", "open_mid", "mid", "schwa", "front_close", "rounded_open", "rounded_mid",
        "rounded_close", "rhotic_vowel"}
    return p.rstrip(":"), cls, vowel


def substitution_costs(heard: list[str], expected: list[str]) -> np.ndarray:
    """Cost [len(heard), len(expected)] of hearing ``heard[i]`` where the text says
    ``expected[j]``."""
    hk = [_phone_key(h) if h != PAUSE else None for h in heard]
    ek = [_phone_key(e) for e in expected]
    out = np.empty((len(heard), len(expected)), np.float32)
    for i, h in enumerate(hk):
        for j, e in enumerate(ek):
            if h is None:
                out[i, j] = PAUSE_COST
            elif h[0] == e[0]:
                out[i, j] = 0.0
            elif h[1] == e[1]:
                out[i, j] = 0.25
            elif h[2] == e[2]:
                out[i, j] = 0.55
            else:
                out[i, j] = 1.0
    return out


def _viterbi(cost: np.ndarray, pause: np.ndarray) -> tuple[np.ndarray, float]:
    """Best monotonic path. ``cost`` [T, N] per frame and text phone, ``pause`` [T] the
    cost of a pause frame. States per phone j: entry run (MIN_FRAMES, no self loop), hold
    (self loop); pauses P_0..P_N between them. Returns (phone index per frame, -1 for a
    pause frame; total cost)."""
    t_len, n = cost.shape
    inf = np.float32(np.inf)
    m = MIN_FRAMES
    # state layout: entry[j, k] (k < m), hold[j], pause[k] (k = 0..N)
    entry = np.full((n, m), inf, np.float32)
    hold = np.full(n, inf, np.float32)
    pz = np.full(n + 1, inf, np.float32)
    back_hold = np.zeros((t_len, n), np.bool_)  # True: came from the last entry frame
    back_entry = np.zeros((t_len, n), np.bool_)  # True: from pause j, else from hold j-1
    back_pause = np.zeros((t_len, n + 1), np.bool_)  # True: from hold k-1, else self
    pz[0] = pause[0]
    entry[0, 0] = cost[0, 0]
    back_entry[0, 0] = True
    for t in range(1, t_len):
        prev_hold = np.concatenate([[inf], hold[:-1]])
        from_pause = pz[:-1] <= prev_hold
        new_entry0 = np.where(from_pause, pz[:-1], prev_hold) + cost[t]
        new_entry = np.empty_like(entry)
        new_entry[:, 0] = new_entry0
        if m > 1:
            new_entry[:, 1:] = entry[:, :-1] + cost[t][:, None]
        from_entry = entry[:, -1] < hold
        new_hold = np.where(from_entry, entry[:, -1], hold) + cost[t]
        new_pz = pz.copy()
        new_pz[1:] = np.minimum(pz[1:], hold)
        back_pause[t, 1:] = hold < pz[1:]
        new_pz += pause[t]
        back_entry[t] = from_pause
        back_hold[t] = from_entry
        entry, hold, pz = new_entry, new_hold, new_pz
    # end in the last hold or the final pause
    path = np.empty(t_len, np.int64)
    if hold[-1] <= pz[-1]:
        state, j, total = "hold", n - 1, float(hold[-1])
    else:
        state, j, total = "pause", n, float(pz[-1])
    k = 0
    for t in range(t_len - 1, -1, -1):
        if state == "pause":
            path[t] = -1
            if t > 0 and back_pause[t, j]:
                state, j = "hold", j - 1
        elif state == "hold":
            path[t] = j
            if t > 0 and back_hold[t, j]:
                state, k = "entry", m - 1
        else:  # entry frame k of phone j
            path[t] = j
            if k > 0:
                k -= 1
            elif t > 0:
                if back_entry[t, j]:
                    state = "pause"
                else:
                    state, j = "hold", j - 1
    return path, total


def _labels(segments: list[tuple[str, float]], n_frames: int) -> list[str]:
    """Per 10 ms frame, the phone loop's label."""
    out = [PAUSE] * n_frames
    for i, (phone, start) in enumerate(segments):
        a = round(start / FRAME_S)
        b = round(segments[i + 1][1] / FRAME_S) if i + 1 < len(segments) else n_frames
        for f in range(max(a, 0), min(b, n_frames)):
            out[f] = phone
    return out


def forced_alignment(samples: np.ndarray, text: str
                     ) -> tuple[list[tuple[str, float]], float] | None:
    """Acoustic forced alignment of ``text`` to 16 kHz ``samples`` with pocketsphinx:
    ([(espeak mnemonic or "_", start s)], acoustic score per 10 ms frame), or None where
    it cannot (unknown word, search failure)."""
    import re

    from pocketsphinx import Decoder, get_model_path

    from .phone_recognition import ARPABET_TO_ESPEAK, HOP_SAMPLES, SEED, _lock

    words = re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())
    if not words or len(samples) > FA_MAX_SECONDS * SAMPLE_RATE:
        return None
    pad = np.zeros(int(FA_PAD_S * SAMPLE_RATE), np.float32)
    x = np.concatenate([pad, np.asarray(samples, np.float32), pad])
    raw = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
    with _lock:
        for beam in FA_BEAMS:
            dec = Decoder(hmm=get_model_path("en-us/en-us"),
                          dict=get_model_path("en-us/cmudict-en-us.dict"), beam=beam,
                          wbeam=beam, pbeam=beam, loglevel="FATAL", seed=SEED)
            if any(dec.lookup_word(w) is None for w in words):
                return None
            try:
                dec.set_align_text(" ".join(words))
                for _ in range(2):  # words, then phones inside them
                    dec.start_utt()
                    dec.process_raw(raw, full_utt=True)
                    dec.end_utt()
                    if _ == 0:
                        hyp = dec.hyp()
                        # pocketsphinx's alignment grammar may also end after any word:
                        # a hypothesis short of the whole text is no alignment of it
                        if hyp is None or hyp.hypstr.split() != words:
                            raise RuntimeError("no alignment")
                        dec.set_alignment()
                segs = [(p.name, p.start, p.score) for w in dec.get_alignment() for p in w]
            except (RuntimeError, TypeError, ValueError):
                continue
            if segs:
                score = sum(sc for _, _, sc in segs) / (len(raw) // 2 // HOP_SAMPLES)
                return [(ARPABET_TO_ESPEAK.get(n.upper().rstrip("012"), PAUSE),
                         max(0.0, start * FRAME_S - FA_PAD_S)) for n, start, _ in segs], score
    return None


def accept_acoustic(acoustic: tuple[list[tuple[str, float]], float], loop_score: float
                    ) -> tuple[Alignment | None, str]:
    """Road 1's test: the forced alignment's score against the free phone loop's."""
    phones, score = acoustic
    if score < loop_score - ACOUSTIC_MARGIN:
        return None, (f"the text does not match the speech (its acoustic score trails the "
                      f"phones heard by {loop_score - score:.0f} per 10 ms)")
    return Alignment(phones, loop_score - score, ACOUSTIC_MARGIN), ""


def align_text(expected: list[str], heard: list[tuple[str, float]], duration: float
               ) -> tuple[Alignment | None, str]:
    """Road 2: align the text's phones to the phone loop's segments and test that the
    text fits the speech: (alignment, "") or (None, the reason it does not fit)."""
    n_frames = max(1, round(duration / FRAME_S))
    if not expected:
        return None, "the text has no pronounceable words"
    if duration > MAX_SECONDS:
        return None, (f"the audio is {duration:.0f} s long; dialogue text is aligned for "
                      f"lines up to {MAX_SECONDS:.0f} s")
    labels = _labels(heard, n_frames)
    speech_frames = sum(lab != PAUSE for lab in labels)
    if speech_frames < MIN_FRAMES * len(expected) * 0.5:
        return None, (f"the text has {len(expected)} phones but only "
                      f"{speech_frames * FRAME_S:.1f} s of speech was heard")
    if len(expected) * MIN_FRAMES > n_frames:
        return None, "the text is too long for the audio"
    vocab = sorted(set(labels))
    index = {v: i for i, v in enumerate(vocab)}
    lab_idx = np.array([index[v] for v in labels])
    pause = np.where(np.array(labels) == PAUSE, 0.0, PAUSE_COST).astype(np.float32)

    def run(phones: list[str]) -> tuple[np.ndarray, float]:
        table = substitution_costs(vocab, phones)
        path, total = _viterbi(table[lab_idx], pause)
        return path, total / max(speech_frames, 1)

    path, cost = run(expected)
    rng = np.random.default_rng(0)
    shuffled = list(np.array(expected)[rng.permutation(len(expected))])
    _, shuffled_cost = run(shuffled)
    if cost >= MATCH_RATIO * shuffled_cost:
        return None, (f"the text does not match the speech (alignment cost {cost:.2f} vs "
                      f"{shuffled_cost:.2f} for the same phones in random order)")
    phones: list[tuple[str, float]] = []
    prev = None
    for f, j in enumerate(path):
        if j != prev:
            phones.append((PAUSE if j < 0 else expected[j], f * FRAME_S))
            prev = j
    return Alignment(phones, cost, shuffled_cost), ""
