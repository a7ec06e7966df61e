"""``facecast bench motion``: lip sync, silence, FACS signs, identity, blinks, speed.

Every number is measured on data no training step saw: lip sync on the held-out last 20 %
of each real clip (driven by the clip's own audio, compared with the tracker on its
video), FACS/identity/blinks/speed on ``speech/eng.wav`` (no video, never trained on).
Targets (README): best lag 0±1 and r >= 0.6; 8/8 FACS signs; drift < 2 %; >= 100x real
time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shared.emotions import EMOTIONS, parse_emotion_string
from shared.facs import FACS_SIGNATURES
from shared.landmarks import (
    brow_height,
    canonical_face,
    eye_opening,
    inner_brow_height,
    inter_ocular,
    lip_corner_height,
    mouth_opening,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MAX_LAG = 5
CLOSED_MARGIN = 0.02  # mouth within this (inter-ocular units) of the neutral's = closed
SIGN_EPS = 0.002  # a signature change smaller than this counts as "no change"

METRICS = {
    "brow_raise": brow_height, "inner_brow_raise": inner_brow_height,
    "lip_corner_height": lip_corner_height, "eye_opening": eye_opening,
    "jaw_opening": mouth_opening,
}


def lagged_correlation(pred: np.ndarray, ref: np.ndarray, max_lag: int = MAX_LAG
                       ) -> tuple[float, int, float]:
    """(r at lag 0, best lag, r at best lag); lag > 0 means the prediction is late."""
    best, best_r = 0, -2.0
    r0 = float(np.corrcoef(pred, ref)[0, 1])
    for lag in range(-max_lag, max_lag + 1):
        a = pred[lag:] if lag >= 0 else pred[:lag]
        b = ref[: len(ref) - lag] if lag >= 0 else ref[-lag:]
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best_r:
            best, best_r = lag, r
    return r0, best, best_r


def _lips() -> np.ndarray:
    cf = canonical_face()
    return np.concatenate([cf.groups["lips_outer"], cf.groups["lips_inner"]])


def lip_sync_rows(model) -> list[dict]:
    from backend.audio import Audio
    from backend.motion.animate import animate
    from backend.motion.data import SPEECH_CLIPS, clip_path, prepare_clip
    from backend.video.decode import read_audio_track

    rows = []
    for name in SPEECH_CLIPS:
        path = clip_path(name)
        clip = prepare_clip(path)
        pcm, rate = read_audio_track(path)
        anim = animate(Audio(np.ascontiguousarray(pcm), rate), clip.fps, None,
                       n_frames=clip.n_frames, neutral=clip.neutral, blinks=False,
                       head_motion_amount=0.0, model=model)
        s = clip.split
        pred = mouth_opening(anim.landmarks[s:])
        ref = mouth_opening(clip.face_landmarks[s:])
        if pred.std() < 1e-6:  # a closed mouth all along: correlation is undefined
            r0, lag, r = float("nan"), 0, float("nan")
        else:
            r0, lag, r = lagged_correlation(pred, ref)
        energy_r = float(np.corrcoef(clip.prosody[s:, 0], ref)[0, 1])
        lips = _lips()
        lmd = np.linalg.norm(anim.landmarks[s:, lips] - clip.face_landmarks[s:, lips],
                             axis=-1).mean() / float(inter_ocular(clip.neutral))
        silent = ~clip.vad[s:]
        closed = pred - float(mouth_opening(clip.neutral)) < CLOSED_MARGIN
        rows.append({"clip": name, "frames": len(pred), "r": r0, "lag": lag, "r_best": r,
                     "energy_r": energy_r, "speech": float(clip.vad[s:].mean()),
                     "voice": float(clip.vad.mean()),
                     "lmd": float(lmd), "silent": int(silent.sum()),
                     "closed": float(closed[silent].mean()) if silent.any() else float("nan")})
    return rows


VOICE_SHARE = 0.3  # a clip whose sound is speech for less of its length has no voice to sync


def phone_speech_rows(model) -> list[dict]:
    """Lip sync on the held-out tails of real speech recordings (``phone_speech``):
    predicted mouth opening vs the opening of the viseme targets of the phones pocketsphinx
    hears. Real voices the model never heard there; the reference is a rule on recognised
    phones, not a tracked face."""
    from backend.audio import load_audio
    from backend.motion.animate import animate
    from backend.motion.phone_speech import SPEECH_RECORDINGS, prepare_speech, speech_path
    from shared.face_basis import landmarks_from_blendshapes

    rows = []
    for name in SPEECH_RECORDINGS:
        clip = prepare_speech(name)
        audio = load_audio(speech_path(name))
        anim = animate(audio, clip.fps, None, n_frames=clip.n_frames, blinks=False,
                       head_motion_amount=0.0, model=model)
        s = clip.split
        pred = mouth_opening(anim.landmarks[s:])
        ref = mouth_opening(landmarks_from_blendshapes(clip.blendshapes[s:], None))
        r0, lag, r = ((float("nan"), 0, float("nan")) if pred.std() < 1e-6
                      else lagged_correlation(pred, ref))
        rows.append({"clip": name, "frames": len(pred), "r": r0, "lag": lag, "r_best": r,
                     "speech": float(clip.vad[s:].mean())})
    return rows


def synthetic_rows(model, n_clips: int = 12, augment: bool = False) -> list[dict]:
    """Lip sync on held-out synthetic speech: sentences from a seed no training uses,
    spoken by voices no training uses (``synthetic.EVAL_VOICES``); reference = the
    viseme targets' mouth opening. An extra check of generalisation, not a substitute
    for the real-clip rows (its audio is espeak's, its reference a rule, not a tracker).
    """
    from backend.audio import Audio
    from backend.motion.animate import animate
    from backend.motion.synthetic import EVAL_SEED, EVAL_VOICES, make_synthetic_set
    from shared.face_basis import landmarks_from_blendshapes

    rows = []
    for c in make_synthetic_set(n_clips, EVAL_SEED + int(augment), EVAL_VOICES, augment):
        anim = animate(Audio(np.ascontiguousarray(c.samples), 16000), c.fps, None,
                       n_frames=c.n_frames, blinks=False, head_motion_amount=0.0,
                       model=model)
        pred = mouth_opening(anim.landmarks)
        ref = mouth_opening(landmarks_from_blendshapes(c.blendshapes, None))
        if pred.std() < 1e-6:
            rows.append({"r": float("nan"), "lag": 0, "r_best": float("nan")})
            continue
        r0, lag, r = lagged_correlation(pred, ref)
        rows.append({"r": r0, "lag": lag, "r_best": r})
    return rows


def _eng_audio(seconds: float | None = None):
    from backend.audio import load_audio

    audio = load_audio(DATA / "speech" / "eng.wav")
    if seconds is not None:
        from backend.audio import Audio

        audio = Audio(np.ascontiguousarray(audio.samples[: int(seconds * audio.sample_rate)]),
                      audio.sample_rate)
    return audio


def facs_rows(model, audio) -> tuple[list[dict], float]:
    """Per emotion: signature deltas vs neutral on the same audio, signs, identity drift."""
    from backend.motion.animate import animate

    def run(track: str):
        return animate(audio, 25, parse_emotion_string(track), blinks=False,
                       head_motion_amount=0.0, model=model).landmarks

    base = run("0:neutral")
    feats0 = {k: f(base) for k, f in METRICS.items()}
    id0 = _identity(base)
    rows, worst = [], 0.0
    for emo in EMOTIONS:
        lm = run(f"0:{emo}")
        delta = {k: float(np.mean(f(lm) - feats0[k])) for k, f in METRICS.items()}
        expected = FACS_SIGNATURES[emo]
        checked = {k: s for k, s in expected.items() if s != 0}
        if checked:
            ok = all(np.sign(delta[k]) == s and abs(delta[k]) > SIGN_EPS
                     for k, s in checked.items())
        else:  # neutral: the face must not change at all
            ok = all(abs(v) <= SIGN_EPS for v in delta.values())
        drift = max(abs(v / id0[k] - 1.0) for k, v in _identity(lm).items()) * 100
        worst = max(worst, drift)
        rows.append({"emotion": emo, **delta, "ok": ok, "n_checked": len(checked),
                     "drift": drift})
    return rows, worst


def _identity(lm: np.ndarray) -> dict[str, float]:
    """Mean inter-ocular distance, nose length (nasion-tip), face width (cheek to cheek)."""
    return {"inter_ocular": float(inter_ocular(lm).mean()),
            "nose_length": float(np.linalg.norm(lm[:, 168] - lm[:, 1], axis=-1).mean()),
            "face_width": float(np.linalg.norm(lm[:, 234] - lm[:, 454], axis=-1).mean())}


def blink_rate(model, audio) -> tuple[float, float]:
    from backend.motion.animate import animate

    anim = animate(audio, 30, None, model=model, head_motion_amount=0.0)
    b = anim.blink
    starts = np.flatnonzero((b[1:] >= 0.5) & (b[:-1] < 0.5))
    minutes = anim.n_frames / 30 / 60
    widths = []
    for s in starts:
        e = s + 1
        while e < len(b) and b[e] >= 0.1:
            e += 1
        widths.append(e - s)
    return len(starts) / minutes, float(np.mean(widths) / 30 * 1000) if widths else 0.0


def speed(model, audio, fps: int = 30, repeats: int = 2) -> tuple[float, float]:
    from backend.motion.animate import animate

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        anim = animate(audio, fps, "0:neutral,300:happy@0.7,900:angry", model=model)
        best = min(best, time.perf_counter() - t0)
    return anim.n_frames / best, audio.duration / best


def run_motion_bench(weights: str | None = None) -> dict:
    import torch

    from backend.motion.model import load_model

    if not DATA.is_dir():
        print(f"real data {DATA} is absent: the motion bench needs ../shared/data")
        return {}
    torch.set_num_threads(2)
    model = load_model(weights)
    out: dict = {}
    rows = lip_sync_rows(model)
    print("\nLip sync on held-out tails (last 20% of each clip; own audio vs tracked video)")
    print("(energy r = loudness vs tracked opening on the same tail: how much the audio "
          "says about the mouth there; speech = VAD share of the tail; voice = VAD share of "
          "the whole clip: below 0.3 its sound is music or silence, not the speaker)")
    print(f"{'clip':6} {'frames':>6} {'r@0':>6} {'lag':>4} {'r@lag':>6} {'energy r':>8} "
          f"{'LMD/IOD':>8} {'speech':>6} {'voice':>6} {'closed':>7}")
    for r in rows:
        print(f"{r['clip']:6} {r['frames']:6d} {r['r']:6.2f} {r['lag']:4d} {r['r_best']:6.2f} "
              f"{r['energy_r']:8.2f} {r['lmd']:8.3f} {r['speech']:6.2f} {r['voice']:6.2f} "
              f"{r['closed']:7.2f}")
    print(f"{'mean':6} {'':6} {np.nanmean([r['r'] for r in rows]):6.2f} {'':4} "
          f"{np.nanmean([r['r_best'] for r in rows]):6.2f} "
          f"{np.nanmean([r['energy_r'] for r in rows]):8.2f} "
          f"{np.mean([r['lmd'] for r in rows]):8.3f}   (nan: predicted mouth never moved)")
    speech_rows = [r for r in rows if r["voice"] >= VOICE_SHARE]
    names = ", ".join(r["clip"] for r in speech_rows)
    print(f"{'clips whose sound is a voice (' + names + ')':28} r@0 "
          f"{np.nanmean([r['r'] for r in speech_rows]):.2f}, r@lag "
          f"{np.nanmean([r['r_best'] for r in speech_rows]):.2f}, lags "
          f"{[r['lag'] for r in speech_rows]}")
    out["lip_sync"] = rows
    prows = phone_speech_rows(model)
    print("\nLip sync on held-out real speech (last 20% of ../shared/data/speech/*.wav; "
          "reference = viseme targets of the phones pocketsphinx recognises)")
    print(f"{'audio':6} {'frames':>6} {'r@0':>6} {'lag':>4} {'r@lag':>6} {'speech':>6}")
    for r in prows:
        print(f"{r['clip']:6} {r['frames']:6d} {r['r']:6.2f} {r['lag']:4d} {r['r_best']:6.2f} "
              f"{r['speech']:6.2f}")
    print(f"{'mean':6} {'':6} {np.nanmean([r['r'] for r in prows]):6.2f} {'':4} "
          f"{np.nanmean([r['r_best'] for r in prows]):6.2f}")
    out["lip_sync_phones"] = prows
    for aug in (False, True):
        srows = synthetic_rows(model, augment=aug)
        lags = np.array([r["lag"] for r in srows])
        label = "degraded (reverb/music/noise)" if aug else "clean"
        print(f"held-out synthetic, {label}: {len(srows)} espeak clips (unseen voices and "
              f"sentences) r@0 {np.nanmean([r['r'] for r in srows]):.2f}, r@lag "
              f"{np.nanmean([r['r_best'] for r in srows]):.2f}, median lag "
              f"{int(np.median(lags)):+d}, |lag|<=1 in {int((np.abs(lags) <= 1).sum())}/"
              f"{len(srows)}")
        out[f"synthetic_{'degraded' if aug else 'clean'}"] = srows

    eng = _eng_audio()
    short = _eng_audio(20.0)
    from backend.audio.features import compute_audio_features

    feats = compute_audio_features(eng)
    print(f"\nMouth closed in silence (eng.wav, {100 * (1 - feats.vad.mean()):.0f}% pauses):",
          end=" ")
    from backend.motion.animate import animate

    anim = animate(eng, 25, None, model=model, blinks=False, head_motion_amount=0.0)
    from backend.audio import compute_frame_features

    vad = compute_frame_features(eng, 25, n_frames=anim.n_frames, features=feats).vad
    mo = mouth_opening(anim.landmarks) - float(mouth_opening(canonical_face().vertices))
    closed = float((mo[~vad] < CLOSED_MARGIN).mean()) if (~vad).any() else float("nan")
    print(f"{100 * closed:.0f}% of silent frames closed; speech frames open: "
          f"{100 * float((mo[vad] >= CLOSED_MARGIN).mean()):.0f}%")
    out["closed_in_silence"] = closed

    frows, worst = facs_rows(model, short)
    print("\nFACS signatures vs neutral on the same audio (eng.wav 20 s, intensity 1); "
          "[x] = sign checked")
    head = " ".join(f"{k[:12]:>13}" for k in METRICS)
    print(f"{'emotion':10} {head} {'signs':>6} {'drift%':>7}")
    n_ok = 0
    for r in frows:
        cells = []
        for k in METRICS:
            mark = "x" if FACS_SIGNATURES[r["emotion"]][k] != 0 else " "
            cells.append(f"{r[k]:+12.3f}{mark}")
        n_ok += bool(r["ok"])
        status = "ok" if r["ok"] else "MISS"
        print(f"{r['emotion']:10} {' '.join(cells)} {status:>6} {r['drift']:7.2f}")
    print(f"FACS: {n_ok}/{len(frows)} emotions right (every checked sign; neutral: no change "
          f"beyond {SIGN_EPS}); identity drift max {worst:.2f}%")
    out["facs_ok"], out["drift"] = n_ok, worst

    rate, dur = blink_rate(model, eng)
    print(f"\nBlinks: {rate:.1f}/min, mean duration ~{dur:.0f} ms (eng.wav, neutral)")
    out["blink_rate"] = rate
    fps_, rt = speed(model, eng)
    print(f"Speed: {fps_:.0f} frames/s at 30 fps = {rt:.0f}x real time "
          f"(60 s audio incl. features, {torch.get_num_threads()} CPU threads)")
    out["frames_per_s"], out["x_realtime"] = fps_, rt
    return out
