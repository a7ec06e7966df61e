"""``facecast bench motion`` speech rows (also ``--speech``): does the mouth hear words?

* **Phone timing against espeak-ng's own phone times** on the bench's sentences in every
  bench voice: for each sounding phone, the distance to the nearest phone of the same
  viseme class in what each road produced (capped at ``CAP_S``); median, share within
  20 ms, and the share of p/b/m whose "lips must meet" curve is on within ±10 ms of the
  phone (beside the share of other speech time it is on: marking everything would score
  100 %). Roads: the dialogue text as animate uses it, the automatic transcript, the
  acoustic phones (no text, no recogniser) and pocketsphinx's phone loop (a baseline).
* **Real clips**, every clip of ``../shared/data`` with a voice and a tracked face: the
  model with the recogniser beside the model without it and the bench's baselines
  (``motion_bench.real_clip_row``), with the standard error of each mean over clips.
  ``speech/eng.wav`` and ``speech/sun.wav`` have no video of their speaker, so no
  tracker reference: they are transcribed and reported, not scored.
* **Speed and memory with the recogniser**: 60 s of speech through everything at 2
  threads; 30 minutes of audio in a fresh process, peak resident memory.
"""

from __future__ import annotations

import numpy as np

CAP_S = 0.25  # a phone with no same-class phone within 250 ms counts as 250 ms off
MUST_TOL_S = 0.01


def boundary_errors(exact: list[tuple[str, float]], produced) -> np.ndarray:
    """Seconds from each sounding exact phone to the nearest produced phone of its viseme
    class (``CAP_S`` at most)."""
    from backend.motion.visemes import viseme_class

    got = [(viseme_class(p), t) for p, t in produced if viseme_class(p) != "rest"]
    out = []
    for p, t in exact:
        c = viseme_class(p)
        if c != "rest":
            out.append(min([abs(t - u) for k, u in got if k == c] + [CAP_S]))
    return np.array(out)


def must_hits(exact: list[tuple[str, float]], duration: float, must: np.ndarray
              ) -> tuple[int, int, float]:
    """(bilabials whose must curve is on within ±10 ms, bilabials, share of the other
    speech hops where it is on)."""
    from backend.motion.visemes import ANTICIPATE_MS, GRID_HZ, viseme_class

    lead = ANTICIPATE_MS / 1000
    on = must[:, 0] > 0
    hits = n = 0
    other = np.zeros(len(on), bool)
    for i, (p, t) in enumerate(exact):
        end = exact[i + 1][1] if i + 1 < len(exact) else duration
        a = int(np.clip((t - MUST_TOL_S + lead) * GRID_HZ, 0, len(on) - 1))
        b = int(np.clip((end + MUST_TOL_S + lead) * GRID_HZ, 0, len(on) - 1))
        cls = viseme_class(p)
        if cls == "bilabial":
            n += 1
            hits += bool(on[a:b + 1].any())
        elif cls != "rest":
            other[a:b + 1] = True
    return hits, n, float(on[other].mean()) if other.any() else 0.0


def alignment_table(sentences, voices) -> dict:
    """Phone timing and p/b/m marking of each road on espeak sentences x voices."""
    from backend.audio import load_audio
    from backend.motion.phones import evidence_from_phones, heard_evidence, phone_evidence
    from backend.motion.transcript_evidence import transcript_evidence
    from backend.speech.espeak import synthesize
    from backend.speech.phone_recognition import recognise_phones
    from backend.speech.transcribe import transcribe

    roads = ("dialogue text", "automatic transcript", "acoustic phones", "phone loop")
    errs: dict[str, list] = {k: [] for k in roads}
    must = {k: [0, 0, []] for k in roads}
    used = {"text": 0, "transcript": 0, "clips": 0}
    for i, text in enumerate(sentences):
        for voice in voices:
            clip = synthesize(text, voice, 150 + 10 * (i % 4))
            x = load_audio((np.ascontiguousarray(clip.samples), clip.sample_rate)).samples
            exact = [(e.phoneme, e.time) for e in clip.phonemes]
            typed = phone_evidence(x, text)
            heard, _ = transcript_evidence(x, transcribe(x))
            used["text"] += typed.source == "text"
            used["transcript"] += heard.source == "transcript"
            used["clips"] += 1
            loop = recognise_phones(x, 16000)
            evs = {"dialogue text": typed, "automatic transcript": heard,
                   "acoustic phones": heard_evidence(x),
                   "phone loop": evidence_from_phones(loop, len(x) / 16000, "phone loop")}
            for k, ev in evs.items():
                errs[k].append(boundary_errors(exact, ev.phones))
                h, n, other = must_hits(exact, clip.duration, ev.must)
                must[k][0] += h
                must[k][1] += n
                must[k][2].append(other)
    out = {}
    for k in roads:
        e = np.concatenate(errs[k]) * 1000
        out[k] = {"median_ms": float(np.median(e)), "within_20": float(np.mean(e <= 20)),
                  "phones": len(e), "pbm": (must[k][0], must[k][1]),
                  "other_must": float(np.mean(must[k][2]))}
    out["used"] = used
    return out


def print_alignment(table: dict, n_sentences: int, voices) -> None:
    u = table["used"]
    print(f"\nPhone timing vs espeak-ng's exact phone times ({n_sentences} sentences x "
          f"{len(voices)} voices = {u['clips']} clips; dialogue text used on {u['text']}, "
          f"the transcript on {u['transcript']}, the rest fell back to acoustic phones)")
    print(f"{'road':24} {'median error':>12} {'<= 20 ms':>9} {'p/b/m marked':>14} "
          f"{'must on elsewhere':>18}")
    for k, v in table.items():
        if k == "used":
            continue
        h, n = v["pbm"]
        print(f"{k:24} {v['median_ms']:9.0f} ms {100 * v['within_20']:8.0f}% "
              f"{100 * h / max(n, 1):5.0f}% of {n:3d} {100 * v['other_must']:17.0f}%")


def standard_error(values: list[float]) -> float:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def paired_wins(rows, a: str, b: str) -> str:
    wins = sum(r.r[a][0] > r.r[b][0] for r in rows)
    ties = sum(round(r.r[a][0], 3) == round(r.r[b][0], 3) for r in rows)
    return f"{wins}/{len(rows)}" + (f" ({ties} equal)" if ties else "")
