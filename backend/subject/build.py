"""``facecast subject build``: clip -> trained subject folder (see ``store`` for layout).

Steps: prepare (decode, track, pose, matte, plate, split; cached in ``cache/data.npz`` so
``--resume`` never re-tracks), measure the footage's expression coverage (``coverage``;
reported before training, so the user knows what renders will show before spending the
time), carve the occupancy grid, train under the step/time
budget with a progress bar and checkpoints, evaluate on the held-out tail, export fp16
weights and write the manifest last (a folder with a manifest is always complete).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from shared.errors import InputError
from shared.landmarks import N_LANDMARKS, estimate_neutral, mouth_opening

from ..atomic_file import write_atomic
from ..nerf.components.occupancy import OccupancyGrid
from ..nerf.fields.tokens import token_ids
from ..nerf.fields.torso import TORSO_HI, TORSO_LO
from ..nerf.model import CURRENT, FaceNeRF, ModelConfig
from ..tracking.cache import file_hash
from .contract import TOPOLOGY
from .coverage import Coverage, footage_coverage
from .prepare import FOV_DEG, HOLDOUT, SubjectData, nearest_training_frames, prepare
from .store import MANIFEST_FORMAT, MANIFEST_VERSION, export_model, write_json_atomic
from .train import TrainConfig, Trainer, carve_grid, evaluate

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available",
                         "use --device cpu (slower) or run on a machine with a GPU")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r}", "use cpu or cuda")
    return torch.device(name)


def _mouth_stats(landmarks: np.ndarray) -> dict:
    m = mouth_opening(landmarks)
    m = m[np.isfinite(m)]
    return {"min": float(m.min()), "max": float(m.max()), "mean": float(m.mean()),
            "p05": float(np.percentile(m, 5)), "p95": float(np.percentile(m, 95))}


def build_subject(clip: str | Path, out: Path, *, name: str, res: int = 256,
                  train: TrainConfig | None = None, model_cfg: ModelConfig | None = None,
                  device: str = "cpu", resume: bool = False, max_frames: int | None = None,
                  eval_frames: int = 12, progress: bool = True, threads: int | None = None,
                  on_progress: Callable[[int, float, float], None] | None = None,
                  on_coverage: Callable[[Coverage], None] | None = None) -> dict:
    """Build (or resume) a subject in ``out``; returns the manifest. ``on_coverage``
    receives the footage's expression coverage after tracking, before training."""
    t0 = time.perf_counter()
    train = train or TrainConfig()
    if not name or not name.strip():
        raise InputError("the subject name is empty", "pass --name NAME (e.g. --name alice)")
    dev = pick_device(device)
    if res < 32 or res > 2048:
        raise InputError(f"--res {res} is out of range", "use 64..1024 (256 is a good start)")
    clip = Path(clip)
    out = Path(out)
    cache = out / "cache" / "data.npz"
    ckpt = out / "checkpoints" / "last.pt"
    if resume and cache.is_file():
        data = SubjectData.load(cache)
    else:
        if not resume and (out / "manifest.json").exists():
            raise InputError(f"subject folder {out} already exists",
                             "pass --resume to continue it, or choose another --name/--out")
        data = prepare(clip, res=res, max_frames=max_frames)
        data.save(cache)
    prep_s = time.perf_counter() - t0
    coverage = footage_coverage(data.landmarks[: data.n_train],
                                float(Fraction(int(data.fps[0]), int(data.fps[1]))))
    if on_coverage is not None:
        on_coverage(coverage)
    torch.manual_seed(train.seed)
    cfg = model_cfg or CURRENT
    model = FaceNeRF(cfg).to(dev)
    model.set_canonical(torch.from_numpy(data.landmarks[: data.n_train].mean(0)).to(dev))
    grid = OccupancyGrid(model.box_lo, model.box_hi, 64)
    if model.torso is not None:
        model.torso_grid = OccupancyGrid(model.torso.box_lo, model.torso.box_hi, 48)
    trainer = Trainer(model, grid, data, train, dev)
    if resume and ckpt.is_file():
        trainer.load(ckpt)
        log.info("resumed at step %d (%.0f s done)", trainer.step, trainer.elapsed)
    else:
        carve_grid(grid, data)
        if model.torso_grid is not None:
            carve_grid(model.torso_grid, data, poses=data.body())
    bar = None
    if progress:
        from ..progress import progress as progress_bar

        bar = progress_bar(train.steps, f"training {name}", "step", initial=trainer.step)
        bar.set_postfix(threads=threads or torch.get_num_threads())

    def tick(step: int, loss: float, p: float) -> None:
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{p:.1f}")
        if on_progress:
            on_progress(step, loss, p)

    record = trainer.run(ckpt, on_progress=tick)
    if bar is not None:
        bar.close()
    data = trainer.refined_data()  # learned focal, refined training poses, body poses
    n = len(data.frames)
    held = list(range(data.n_train, n))
    train_pick = np.linspace(0, data.n_train - 1, min(eval_frames, data.n_train)
                             ).round().astype(int)
    # Held-out evaluation pack (a few MB): lets `facecast bench render` measure fidelity
    # and obedience of a shipped subject that has no training cache.
    n_pack = min(24, len(held))
    pack = np.linspace(0, len(held) - 1, n_pack).round().astype(int) if n_pack else []
    held_pack = [held[i] for i in pack]
    data.subset(held_pack).save(out / "heldout.npz")
    # Training frames (refined cameras) and, per held-out pack frame, the nearest training
    # frame (the trivial baseline): the benchmark's fidelity rows without the cache.
    data.subset([int(i) for i in train_pick]).save(out / "training.npz")
    near = nearest_training_frames(data, held_pack)
    write_atomic(out / "nearest.npz", lambda f: np.savez_compressed(
        f, frames=data.frames[near], index=near))
    export_model(out / "model.pt", model, grid)
    from PIL import Image

    Image.fromarray(data.plate).save(out / "background.png")
    h, w = data.frames.shape[1:3]
    fps = Fraction(int(data.fps[0]), int(data.fps[1]))
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"clip": clip.name, "sha256": file_hash(clip) if clip.is_file() else None,
                   "fps": [fps.numerator, fps.denominator], "fps_float": float(fps),
                   "frames_used": n, "frame_index_range": [int(data.frame_index[0]),
                                                           int(data.frame_index[-1])]},
        "camera": {"k": data.k.tolist(), "width": w, "height": h, "fov_deg": FOV_DEG,
                   "convention": "pixels top-left origin, y down; camera looks down -Z, "
                                 "+Y up (Blender)"},
        "canonical_space": {"frame": "shared.landmarks canonical head frame",
                            "units": "metres", "axes": "+X subject's left, +Y up, "
                            "+Z out of the face", "box_lo": list(cfg.box_lo),
                            "box_hi": list(cfg.box_hi), "fade_m": cfg.fade,
                            "contents": ("head, hair and neck; the torso field holds neck "
                                         "and shoulders in the body frame (the head frame "
                                         "at rest); outside is transparent")
                            if cfg.torso else "head, hair, neck and shoulders (a bust, "
                            "rigid with the head); outside is transparent",
                            **({"torso_box_lo": list(TORSO_LO), "torso_box_hi":
                                list(TORSO_HI)} if cfg.torso else {})},
        "model": cfg.to_dict(), "occupancy_res": grid.res,
        "conditioning": {
            "landmarks": True, "blendshapes": bool(cfg.use_blendshapes),
            "mesh_warp": bool(cfg.mesh_warp), "topology": TOPOLOGY,
            "token_ids": token_ids().tolist(), "n_landmarks": N_LANDMARKS,
            "landmark_mean": np.round(data.landmarks[: data.n_train].mean(0), 5).tolist(),
            "landmark_neutral": np.round(estimate_neutral(data.landmarks[: data.n_train]),
                                         5).tolist(),
            "landmark_std_m": float(data.landmarks[: data.n_train].std(0).mean()),
            "mouth_opening": _mouth_stats(data.landmarks[: data.n_train])},
        "split": {"train": data.n_train, "heldout": n - data.n_train, "holdout": HOLDOUT,
                  "rule": "last 10% of usable frames"},
        "training": {**record, "device": dev.type, "res": res, "prepare_seconds":
                     round(prep_s, 1), "torch": torch.__version__,
                     "threads": threads or torch.get_num_threads()},
        "evaluation": None,
        "coverage": coverage.to_dict(),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return record_evaluation(out)


def record_evaluation(folder: Path) -> dict:
    """Measure the subject as it ships and record it in its manifest (returned).

    The weights as ``load_subject`` reads them (fp16), rendered on the CPU at the frames
    of its packs (``heldout.npz``, ``training.npz``), PSNR and SSIM composited over the
    plate, full frame and face box: exactly the "model" rows of ``facecast bench render``,
    so ``facecast subject info`` and the bench give one number. Per-frame values are
    kept so a test can check a few frames against the bench's own scoring."""
    from .store import load_subject

    subject = load_subject(folder, "cpu")
    cpu = torch.device("cpu")
    result: dict = {"method": "shipped weights on the CPU, frames of heldout.npz / "
                    "training.npz, over the plate; SSIM as scikit-image (Gaussian, sigma "
                    "1.5)"}
    for key, pack in (("heldout", "heldout.npz"), ("training_frames", "training.npz")):
        data = SubjectData.load(folder / pack)
        frames = list(range(len(data.frames)))
        scores = evaluate(subject.model, subject.grid, data, frames, cpu)
        scores["frames"] = [int(f) for f in data.frame_index]  # frames of the source clip
        result[key] = scores
    evaluation = {**result.pop("heldout"), **result}
    manifest = {**subject.manifest, "evaluation": evaluation}
    write_json_atomic(folder / "manifest.json", manifest)
    return manifest
