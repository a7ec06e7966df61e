"""Training a subject's field: ray batches from training frames, checkpoints, resume,
time budget, held-out evaluation.

Each step draws ``frames_per_step`` training frames and ``rays_per_frame`` pixels in
each: 3/4 uniformly inside the image rectangle the head box projects to (pixels outside
it can only show the plate), 1/4 inside the mouth-and-eyes rectangle, where the
conditioning has to be learnt and where errors are most visible. The field's colour is
composited over the background plate and compared with the frame (MSE); the alpha is
pulled toward the matte (weight ``alpha_weight``) and deformations are kept small.

Learning rate decays exponentially to 1/10 over the run, where "the run" is whichever
ends first, the step budget or the time budget, so a 10-minute and a 60-minute build both
finish with a settled model. Checkpoints are written atomically every
``ckpt_every_s`` seconds and at the end; ``resume=True`` continues from the last one,
including the optimiser state and the time already spent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..nerf.geometry import pixel_rays
from ..nerf.metrics import psnr, ssim
from ..nerf.model import FaceNeRF
from ..nerf.occupancy import OccupancyGrid
from ..nerf.render import SampleOptions, render_rays
from ..nerf.view import composite, render_view
from .prepare import SubjectData, box_rects, face_rects, feature_rects
from .store import save_torch_atomic

log = logging.getLogger(__name__)


# Training marches exactly like rendering (same steps and band: a shorter band at render
# time than in training stops rays before the surface they learnt) plus jitter, and
# checks for early termination every 8 steps instead of 4.
TRAIN_MARCH = replace(SampleOptions(), jitter=True, step_block=8)


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # None: until the time budget ends
    minutes: float = 30.0
    frames_per_step: int = 2  # each frame costs one attention-lattice evaluation
    rays_per_frame: int = 2048
    lr_planes: float = 2e-2
    lr_net: float = 3e-3
    alpha_weight: float = 0.1
    offset_weight: float = 10.0  # per m^2 of mean squared deformation
    warmup: int = 300  # steps before the grid is first refreshed from density
    refresh_every: int = 500
    density_threshold: float = 0.05  # per cm (alpha 0.015 over 3 mm)
    ckpt_every_s: float = 120.0
    seed: int = 0
    march: SampleOptions = TRAIN_MARCH

    def to_dict(self) -> dict:
        d = asdict(self)
        d["march"] = asdict(self.march)
        return d


def _sample_pixels(rng: np.random.Generator, rect: np.ndarray, n: int) -> np.ndarray:
    x = rng.uniform(rect[0], rect[2], n)
    y = rng.uniform(rect[1], rect[3], n)
    return np.stack([x, y], axis=1).astype(np.int64)


def carve_grid(grid: OccupancyGrid, data: SubjectData, max_views: int = 40) -> None:
    """Initial occupancy from the mattes (dilated, so hair edges are never carved)."""
    from scipy.ndimage import binary_dilation

    idx = np.linspace(0, data.n_train - 1, min(max_views, data.n_train)).round().astype(int)
    masks = [binary_dilation(data.mattes[i] > 64, iterations=4) for i in idx]
    grid.carve(masks, [data.k] * len(idx), [data.poses[i] for i in idx])


class Trainer:
    def __init__(self, model: FaceNeRF, grid: OccupancyGrid, data: SubjectData,
                 cfg: TrainConfig, device: torch.device) -> None:
        self.model, self.grid, self.data, self.cfg, self.dev = model, grid, data, cfg, device
        planes = list(model.planes.parameters())
        plane_ids = {id(p) for p in planes}
        rest = [p for p in model.parameters() if id(p) not in plane_ids]
        self.opt = torch.optim.Adam([{"params": planes, "lr": cfg.lr_planes},
                                     {"params": rest, "lr": cfg.lr_net}], eps=1e-12)
        self.base_lrs = [cfg.lr_planes, cfg.lr_net]
        self.step = 0
        self.elapsed = 0.0
        self.history: list[list[float]] = []  # [step, loss, psnr_batch, seconds]
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator(device=device.type).manual_seed(cfg.seed)
        self.tokens = torch.from_numpy(data.tokens).float().to(device)
        self.box = box_rects(data)
        self.feat = feature_rects(data)
        self.plate = data.plate.astype(np.float32) / 255.0

    # -- checkpoints ------------------------------------------------------------------
    def save(self, path: Path) -> None:
        save_torch_atomic(path, {"model": self.model.state_dict(),
                                 "opt": self.opt.state_dict(), "step": self.step,
                                 "elapsed": self.elapsed, "history": self.history,
                                 "grid": self.grid.state(),
                                 "rng": self.rng.bit_generator.state})

    def load(self, path: Path) -> None:
        ck = torch.load(path, map_location=self.dev, weights_only=False)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.step, self.elapsed, self.history = ck["step"], ck["elapsed"], ck["history"]
        restored = OccupancyGrid.from_state(ck["grid"], self.grid.lo, self.grid.hi)
        self.grid.occ, self.grid.hull = restored.occ, restored.hull
        self.rng.bit_generator.state = ck["rng"]

    # -- one step ---------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, ...]:
        d, cfg = self.data, self.cfg
        frames = self.rng.choice(d.n_train, cfg.frames_per_step,
                                 replace=d.n_train < cfg.frames_per_step)
        n_feat = cfg.rays_per_frame // 4
        os_, ds, fids, gts, bgs, ms = [], [], [], [], [], []
        for j, f in enumerate(frames):
            pix = np.concatenate([
                _sample_pixels(self.rng, self.box[f], cfg.rays_per_frame - n_feat),
                _sample_pixels(self.rng, self.feat[f], n_feat)])
            o, dd = pixel_rays(d.k, d.frames.shape[2], d.frames.shape[1], d.poses[f], pix)
            os_.append(o)
            ds.append(dd)
            fids.append(np.full(len(pix), j))
            gts.append(d.frames[f, pix[:, 1], pix[:, 0]].astype(np.float32) / 255.0)
            bgs.append(self.plate[pix[:, 1], pix[:, 0]])
            ms.append(d.mattes[f, pix[:, 1], pix[:, 0]].astype(np.float32) / 255.0)
        t = [torch.from_numpy(np.concatenate(a)).to(self.dev)
             for a in (os_, ds, fids, gts, bgs, ms)]
        return torch.as_tensor(frames), *t

    def train_step(self, progress: float) -> tuple[float, float]:
        cfg = self.cfg
        for g, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            g["lr"] = base * 0.1 ** min(1.0, progress)
        frames, o, d, fid, gt, bg, matte = self._batch()
        # One attention-lattice evaluation per frame, shared by all its rays.
        vol = self.model.condition(self.tokens[frames.to(self.dev)], None, self.grid)
        out = render_rays(self.model, self.grid, o, d, fid.long(), vol, cfg.march,
                          generator=self.gen)
        pred = out["rgb"] + (1.0 - out["alpha"][:, None]) * bg
        mse = torch.mean((pred - gt) ** 2)
        loss = (mse + cfg.alpha_weight * torch.mean((out["alpha"] - matte) ** 2)
                + cfg.offset_weight * out["offset_sq"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach()), float(-10.0 * torch.log10(mse.detach().clamp_min(1e-10)))

    def refresh_grid(self) -> None:
        """Occupancy from density under three conditionings: mean face and the
        widest-open mouth (so the open mouth's interior is never culled)."""
        mouth = self.data.landmarks[: self.data.n_train, 14, 1] - \
            self.data.landmarks[: self.data.n_train, 13, 1]
        pick = [int(np.argmin(mouth))]
        conds = torch.cat([self.model.token_mean[None], self.tokens[pick]])
        self.model.eval()
        with torch.no_grad():
            vol = self.model.condition(conds, None, None)  # every lattice point

            def density(pts: torch.Tensor) -> torch.Tensor:
                best = torch.zeros(len(pts), device=pts.device)
                for c in range(len(conds)):
                    s, _, _ = self.model(pts[None], vol[c:c + 1])
                    best = torch.maximum(best, s[0])
                return best

            self.grid.refresh(density, self.cfg.density_threshold, seed=self.step)
        self.model.train()

    def run(self, ckpt: Path | None, on_progress: Callable[[int, float, float], None]
            | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
        cfg = self.cfg
        budget = cfg.minutes * 60.0
        self.model.train()
        start = time.perf_counter() - self.elapsed
        last_ckpt = time.perf_counter()
        while True:
            self.elapsed = time.perf_counter() - start
            done_steps = cfg.steps is not None and self.step >= cfg.steps
            if done_steps or self.elapsed >= budget or (should_stop and should_stop()):
                break
            progress = self.elapsed / budget
            if cfg.steps:
                progress = max(progress, self.step / cfg.steps)
            loss, p = self.train_step(progress)
            self.step += 1
            if self.step % 25 == 0 or self.step == 1:
                self.history.append([self.step, loss, p, round(self.elapsed, 2)])
            if self.step >= cfg.warmup and self.step % cfg.refresh_every == 0:
                self.refresh_grid()
            if on_progress:
                on_progress(self.step, loss, p)
            if ckpt is not None and time.perf_counter() - last_ckpt > cfg.ckpt_every_s:
                self.save(ckpt)
                last_ckpt = time.perf_counter()
        if self.step >= cfg.warmup:
            self.refresh_grid()
        if ckpt is not None:
            self.save(ckpt)
        return {"steps": self.step, "seconds": round(self.elapsed, 1),
                "occupancy": round(self.grid.fraction, 4),
                "history": self.history[-200:], "config": cfg.to_dict()}


def evaluate(model: FaceNeRF, grid: OccupancyGrid, data: SubjectData, frames: list[int],
             device: torch.device) -> dict:
    """PSNR/SSIM of renders composited over the plate, full frame and face box."""
    model.eval()
    tokens = torch.from_numpy(data.tokens).float().to(device)
    h, w = data.frames.shape[1:3]
    rects = face_rects(data)
    rows = []
    for f in frames:
        with torch.inference_mode():
            vol = model.condition(tokens[f:f + 1], None, grid)
        rgba, _ = render_view(model, grid, data.k, w, h, data.poses[f], vol)
        img = composite(rgba, data.plate)
        gt = data.frames[f].astype(np.float32) / 255.0
        x0, y0, x1, y1 = rects[f].round().astype(int)
        rows.append([psnr(img, gt), ssim(img, gt), psnr(img[y0:y1, x0:x1], gt[y0:y1, x0:x1]),
                     ssim(img[y0:y1, x0:x1], gt[y0:y1, x0:x1])])
    m = np.mean(rows, axis=0) if rows else [float("nan")] * 4
    return {"psnr": round(float(m[0]), 3), "ssim": round(float(m[1]), 4),
            "psnr_face": round(float(m[2]), 3), "ssim_face": round(float(m[3]), 4),
            "frames": [int(f) for f in frames]}
