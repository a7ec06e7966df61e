"""``facecast bench render``: fidelity, obedience, expression, identity, speed, memory -
each beside a trivial baseline or reference measured in the same run.

* **Fidelity**: PSNR/SSIM (full frame composited over the plate, and the face box) on
  held-out frames and on training frames, from the packs a build writes (``heldout.npz``,
  ``training.npz``, ``nearest.npz``: with the cameras training refined) or, for older
  subjects, the prepared data (``cache/data.npz``). SSIM is scikit-image's ``structural_similarity``
  (Gaussian window, sigma 1.5, as Wang et al.). Baselines: the background plate alone,
  and the nearest training frame (the training image whose tracked 2-D landmarks are
  closest: what a lookup table of the footage would show).
* **Geometry**: the rendered depth at the held-out frames' surface landmarks minus the
  tracked face mesh's depth there (``subject.face_depth``): a face painted on a surface
  in front of the real one looks right only from the footage's camera.
* **Obedience per cue**: ARKit commands (jaw open, lip-corner lift / drop, inner-brow
  raise, brow lower, eye widen) go through the render contract onto the subject's face,
  are rendered at held-out cameras, and the renders are RE-TRACKED with the face mesh
  tracker. Obedience = the tracked change from the neutral render / the change the
  conditioning asked, in eye-distance units (100 % = the face does exactly what it is
  told; the trivial baseline, a field that ignores conditioning, scores 0 %).
* **Expression**: the FER2013 classifier (``backend.judges.expression``) on renders of
  each emotion's FACS prototype; an emotion is recognised when its probability is above
  its probability on the neutral render.
* **Identity**: dlib's face descriptor (``backend.judges.identity``) of the neutral
  render vs each emotion's, beside the same-person range measured on the footage
  (held-out frames against each other) and, when ``../shared/data`` is present, the
  distance to other people's footage.
* **Speed**: frames/s at 256^2 with 2 threads, idle and beside one CPU-bound process
  (plus 1 thread beside it), and at 512^2 on CUDA when present; peak memory.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from shared.camera import BlenderCamera, camera_views
from shared.landmarks import (
    brow_height,
    eye_opening,
    inner_brow_height,
    lip_corner_height,
    mouth_opening,
)

from ..judges.expression import JUDGED_EMOTIONS
from ..nerf.components.metrics import psnr
from ..nerf.pipeline import HEAD_DEFAULT
from ..provenance.stamp import RenderStamp
from ..render import render_frames
from ..subject.conditioning import render_conditioning
from ..subject.face_depth import project, surface_ids
from ..subject.prepare import SubjectData, face_rects, nearest_training_frames
from ..subject.store import load_subject
from ..subject.train import render_frame, render_frame_layers

#: cue -> (ARKit channels commanded, weight, metric, sign of the expected change)
CUES = {
    "jaw open": (("jawOpen",), 0.6, mouth_opening, 1),
    "lip-corner lift": (("mouthSmileLeft", "mouthSmileRight"), 0.9, lip_corner_height, 1),
    "lip-corner drop": (("mouthFrownLeft", "mouthFrownRight"), 0.9, lip_corner_height, -1),
    "inner-brow raise": (("browInnerUp",), 0.9, inner_brow_height, 1),
    "brow lower": (("browDownLeft", "browDownRight"), 0.9, brow_height, -1),
    "eye widen": (("eyeWideLeft", "eyeWideRight"), 0.9, eye_opening, 1),
}
#: An emotion counts as recognised when the classifier gives it at least this much more
#: probability than on the neutral render of the same face and camera.
RECOGNISED_LIFT = 0.05
OTHER_PEOPLE = ("d9", "d14", "d12")  # clips of other people, for the identity scale


def bench_camera(size: int) -> tuple[BlenderCamera, np.ndarray]:
    """A 50 mm camera 0.9 m in front of a head at the origin (face looks down -Y)."""
    cam = BlenderCamera(lens=50.0, resolution_x=size, resolution_y=size)
    mw = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, -0.05], [0, 0, 0, 1]])
    return cam, mw


# --- fidelity --------------------------------------------------------------------------

def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _scores(imgs: list[np.ndarray], data: SubjectData, frames: list[int]) -> list[float]:
    """Mean [PSNR, SSIM, face PSNR, face SSIM] of ``imgs`` vs the frames."""
    rects = face_rects(data)
    rows = []
    for img, f in zip(imgs, frames, strict=True):
        gt = data.frames[f].astype(np.float32) / 255.0
        x0, y0, x1, y1 = rects[f].round().astype(int)
        rows.append([psnr(img, gt), _ssim(img, gt), psnr(img[y0:y1, x0:x1], gt[y0:y1, x0:x1]),
                     _ssim(img[y0:y1, x0:x1], gt[y0:y1, x0:x1])])
    return list(np.mean(rows, axis=0)) if rows else [float("nan")] * 4


def _fmt(s: list[float]) -> str:
    return f"{s[0]:5.2f} / {s[2]:5.2f} dB   SSIM {s[1]:.3f} / {s[3]:.3f}"


def fidelity(subject, packs: dict[str, SubjectData], nearest: np.ndarray | None
             ) -> list[tuple[str, str]]:
    rows = []
    dev = torch.device("cpu")
    for name, data in packs.items():
        frames = list(range(len(data.frames)))
        model = [render_frame(subject.model, subject.grid, data, f, dev) for f in frames]
        plate = [data.plate.astype(np.float32) / 255.0] * len(frames)
        rows.append((f"{name}: model, full / face", _fmt(_scores(model, data, frames))))
        rows.append((f"{name}: background plate", _fmt(_scores(plate, data, frames))))
        if name == "held-out" and nearest is not None:
            near = [n.astype(np.float32) / 255.0 for n in nearest]
            rows.append((f"{name}: nearest training frame", _fmt(_scores(near, data, frames))))
    return rows


def depth_error_mm(subject, data: SubjectData, frames: list[int]) -> tuple[float, float]:
    """(median signed, median absolute) rendered depth minus the tracked mesh's depth, in
    millimetres, at the surface landmarks of ``frames`` that render opaque (negative: the
    field's surface is in front of the mesh)."""
    h, w = data.frames.shape[1:3]
    ids = surface_ids()
    errs = []
    for f in frames:
        rgba, depth = render_frame_layers(subject.model, subject.grid, data, f,
                                          torch.device("cpu"))
        pix, z = project(data.landmarks[f, ids], data.poses[f], data.k, w, h)
        x, y = np.floor(pix[:, 0]).astype(int), np.floor(pix[:, 1]).astype(int)
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        ok[ok] &= rgba[y[ok], x[ok], 3] > 0.5
        errs.append((depth[y[ok], x[ok]] - z[ok]) * 1000.0)
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return float(np.median(e)), float(np.median(np.abs(e)))


# --- obedience, expression, identity ------------------------------------------------------

def _render_commands(subject, data: SubjectData, weights: np.ndarray, frame: int
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Render ARKit commands [N, 52] through the contract at held-out frame ``frame``'s
    camera; returns (uint8 renders, the commanded landmarks [N, 478, 3])."""
    cond = render_conditioning({"blendshapes": weights}, subject.manifest)
    renders = []
    for i in range(len(weights)):
        img = render_frame(subject.model, subject.grid, data, frame, torch.device("cpu"),
                           cond.landmarks[i], cond.blendshapes[i])
        renders.append((img * 255 + 0.5).clip(0, 255).astype(np.uint8))
    return renders, cond.landmarks


def obedience(subject, data: SubjectData, frames: list[int]) -> dict[str, tuple]:
    """cue -> (requested change, tracked change, obedience %), averaged over ``frames``."""
    from shared.blendshapes import ARKIT_BLENDSHAPES

    from ..tracking.face_tracker import track_faces

    weights = np.zeros((1 + len(CUES), len(ARKIT_BLENDSHAPES)), np.float32)
    for row, (channels, w, _, _) in enumerate(CUES.values(), start=1):
        for c in channels:
            weights[row, ARKIT_BLENDSHAPES.index(c)] = w
    asked, got = [], []
    for f in frames:
        renders, lm = _render_commands(subject, data, weights, f)
        tracked = track_faces(np.stack(renders), static=True, progress=False).landmarks
        asked.append([m(lm[i + 1]) - m(lm[0]) for i, (_, _, m, _) in enumerate(CUES.values())])
        got.append([m(tracked[i + 1]) - m(tracked[0])
                    for i, (_, _, m, _) in enumerate(CUES.values())])
    asked_m, got_m = np.nanmean(asked, axis=0), np.nanmean(got, axis=0)
    return {name: (float(a), float(g), float(100.0 * g / a) if abs(a) > 1e-6 else float("nan"))
            for name, a, g in zip(CUES, asked_m, got_m, strict=True)}


def emotions_and_identity(subject, data: SubjectData, frame: int,
                          footage: list[np.ndarray]) -> list[tuple[str, str]]:
    from backend.motion.facs import emotion_prototype

    from ..judges.expression import ExpressionJudge, square_box
    from ..judges.identity import IdentityJudge, distance
    from ..tracking.face_tracker import track_faces

    names = ("neutral", *JUDGED_EMOTIONS)
    weights = np.stack([emotion_prototype(n) for n in names])
    renders, _ = _render_commands(subject, data, weights, frame)
    tracked = track_faces(np.stack(renders), static=True, progress=False)
    judge = ExpressionJudge()
    verdicts = {n: judge.judge(img, square_box(lm[:, :2])) if ok else None
                for n, img, lm, ok in zip(names, renders, tracked.landmarks, tracked.found,
                                          strict=True)}
    rows = []
    neutral = verdicts["neutral"]
    for n in JUDGED_EMOTIONS:
        v = verdicts[n]
        if v is None or neutral is None:
            rows.append((f"classifier: {n}", "no face found in the render"))
            continue
        base, p = neutral.score(n), v.score(n)
        rows.append((f"classifier: {n}", f"p {p:.2f} vs {base:.2f} on neutral "
                     f"({'recognised' if p >= base + RECOGNISED_LIFT else 'no lift'}); "
                     f"top {v.top}"))
    ident = IdentityJudge()
    desc = {n: ident.descriptor(img) for n, img in zip(names, renders, strict=True)}
    real = [d for d in (ident.descriptor(img) for img in footage) if d is not None]
    same = [distance(a, b) for i, a in enumerate(real) for b in real[i + 1:]]
    if same:
        rows.append(("identity: footage vs footage (same person)",
                     f"{np.percentile(same, 5):.3f} .. {np.percentile(same, 95):.3f} "
                     f"(5th..95th pct, {len(real)} frames)"))
    others = _other_people(ident, real)
    if others:
        rows.append(("identity: footage vs other people's footage",
                     f"{min(others):.3f} .. {max(others):.3f}"))
    if real and desc["neutral"] is not None:
        rows.append(("identity: neutral render vs footage",
                     f"{np.mean([distance(desc['neutral'], r) for r in real]):.3f} (mean)"))
    for n in JUDGED_EMOTIONS:
        if desc[n] is None or desc["neutral"] is None:
            rows.append((f"identity: neutral vs {n}", "no face found"))
        else:
            rows.append((f"identity: neutral vs {n}",
                         f"{distance(desc['neutral'], desc[n]):.3f}"))
    return rows


def _other_people(ident, real: list[np.ndarray]) -> list[float]:
    """Descriptor distances from the subject's footage to other people's (skipped
    without ../shared/data)."""
    from ..media.decode import read_video

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "clips"
    out = []
    for clip in OTHER_PEOPLE:
        path = root / f"{clip}.mp4"
        if not path.is_file() or not real:
            continue
        video = read_video(path, max_frames=3, stride=40, max_side=256)
        for img in video.frames:
            d = ident.descriptor(img)
            if d is not None:
                out.extend(np.linalg.norm(np.stack(real[:6]) - d, axis=1).tolist())
    return out


# --- speed -------------------------------------------------------------------------------

def _fps(subject, size: int, n: int, fp16: bool) -> float:
    lm = np.asarray(subject.manifest["conditioning"]["landmark_mean"], np.float32)
    cond = render_conditioning({"landmarks": np.repeat(lm[None], n + 1, 0),
                                "head_pose": HEAD_DEFAULT}, subject.manifest,
                               head_pose_frame="world")
    cam, mw = bench_camera(size)
    views = camera_views(cam, mw, n + 1)
    mark = RenderStamp.for_render(subject.manifest, "bench").payload  # as every render
    it = render_frames(subject, views, cond, fp16=fp16, payload=mark)
    next(it)  # warm-up
    cuda = next(subject.model.parameters()).is_cuda
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in it:
        pass
    if cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


@contextlib.contextmanager
def cpu_bound_neighbour():
    """One CPU-bound process (a Python busy loop) beside the measurement."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def speed(subject, frames: int) -> list[tuple[str, str]]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [("load average before timing (1 min)",
             f"{load:.1f} on {os.cpu_count()} CPUs (above ~0.5 the machine is not idle)")]
    before = torch.get_num_threads()
    two = min(2, os.cpu_count() or 1)
    try:
        torch.set_num_threads(two)
        idle = _fps(subject, 256, frames, False)
        rows.append((f"CPU fps at 256^2, {two} threads", f"{idle:.2f}"))
        with cpu_bound_neighbour():
            busy = _fps(subject, 256, frames, False)
            torch.set_num_threads(1)
            busy1 = _fps(subject, 256, frames, False)
        rows.append((f"  beside one CPU-bound process, {two} threads",
                     f"{busy:.2f} ({100 * busy / idle:.0f} % of the first line)"))
        rows.append(("  beside one CPU-bound process, 1 thread",
                     f"{busy1:.2f} ({100 * busy1 / idle:.0f} %)"))
    finally:
        torch.set_num_threads(before)
    return rows


# --- the run -----------------------------------------------------------------------------

def _packs(subject) -> tuple[dict[str, SubjectData], np.ndarray | None, SubjectData | None]:
    """Held-out and training packs (+ nearest training frames of the held-out ones).

    The packs a build writes carry the cameras training refined (focal, training poses);
    the prepared cache only has the tracked ones, so it is used only for older subjects
    without packs."""
    cache = subject.folder / "cache" / "data.npz"
    if cache.is_file() and not (subject.folder / "training.npz").is_file():
        data = SubjectData.load(cache)
        held = list(range(data.n_train, len(data.frames)))
        held = held[:: max(1, len(held) // 12)]
        train = list(np.linspace(0, data.n_train - 1, 12).round().astype(int))
        near = nearest_training_frames(data, held)
        packs = {"held-out": data.subset(held), "training": data.subset(train)}
        return packs, data.frames[near], packs["held-out"]
    packs = {}
    held_path = subject.folder / "heldout.npz"
    if held_path.is_file():
        packs["held-out"] = SubjectData.load(held_path)
    train_path = subject.folder / "training.npz"
    if train_path.is_file():
        packs["training"] = SubjectData.load(train_path)
    nearest = None
    near_path = subject.folder / "nearest.npz"
    if near_path.is_file():
        with np.load(near_path) as d:
            nearest = d["frames"]
    return packs, nearest, packs.get("held-out")


def run_render_bench(subject_ref: str, frames: int = 10, device: str | None = None) -> dict:
    rows: list[tuple[str, str]] = []
    subject = load_subject(subject_ref, "cpu")
    t = subject.manifest["training"]
    cpu = t.get("cpu_seconds")
    rows.append(("training", f"{t['steps']} steps, {t['seconds'] / 60:.1f} min wall"
                 + (f", {cpu / 60:.1f} CPU min" if cpu else "") + f" on {t['device']}"))
    packs, nearest, held = _packs(subject)
    if not packs:
        ev = subject.manifest.get("evaluation", {})
        rows.append(("note", "no packs: fidelity from the manifest"))
        rows.append(("held-out PSNR full / face", f"{ev.get('psnr')} / {ev.get('psnr_face')}"))
    else:
        rows += fidelity(subject, packs, nearest)
    if held is not None:
        signed, absolute = depth_error_mm(subject, held, list(range(0, len(held.frames), 4)))
        rows.append(("geometry: depth - tracked mesh", f"median {signed:+.1f} mm, median "
                     f"|error| {absolute:.1f} mm (held-out, surface landmarks)"))
    if held is not None:
        picks = [0, len(held.frames) // 2, len(held.frames) - 1]
        for name, (a, g, pct) in obedience(subject, held, picks).items():
            rows.append((f"obedience: {name}", f"asked {a:+.3f}, got {g:+.3f} -> {pct:.0f} %"))
        rows += emotions_and_identity(subject, held, picks[0],
                                      list(held.frames[:: max(1, len(held.frames) // 8)]))
    rows += speed(subject, frames)
    rows.append(("peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
                 " MiB"))
    if torch.cuda.is_available() and device != "cpu":
        gpu = load_subject(subject_ref, "cuda")
        torch.cuda.reset_peak_memory_stats()
        rows.append(("CUDA fps at 512^2 (fp16)", f"{_fps(gpu, 512, frames, True):.2f}"))
        rows.append(("CUDA peak memory",
                     f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"))
    width = max(len(k) for k, _ in rows)
    print(f"render bench: subject {subject.manifest['name']} "
          f"(manifest version {subject.manifest['version']})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}", flush=True)
    return dict(rows)
