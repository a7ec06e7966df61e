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

from backend.motion.face_basis import solve_blendshapes
from shared.errors import InputError
from shared.landmarks import estimate_neutral

from ..nerf.components.camera_optimizer import CameraOptimizer
from ..nerf.components.geometry import rays_torch
from ..nerf.components.metrics import psnr, ssim
from ..nerf.components.occupancy import OccupancyGrid
from ..nerf.components.sampler import SampleOptions
from ..nerf.components.volume_rendering import composite_layers
from ..nerf.engine import Engine, engine_choice, layer_over
from ..nerf.fields.torso import pose_code
from ..nerf.model import FaceNeRF, FrameCondition
from ..nerf.reference import render_rays, render_torso_rays
from ..nerf.view import composite, render_view
from .face_depth import FREE_MARGIN, LandmarkDepth, front_depth
from .prepare import SubjectData, box_rects, face_rects, feature_rects
from .store import save_torch_atomic

log = logging.getLogger(__name__)


# Training marches exactly like rendering (same steps and band: a shorter band at render
# time than in training stops rays before the surface they learnt) plus jitter, and
# checks for early termination every 8 steps instead of 4.
TRAIN_MARCH = replace(SampleOptions(), jitter=True, step_block=8)


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # None: until a time budget ends
    minutes: float = 30.0  # wall clock
    cpu_minutes: float | None = None  # process CPU time (all threads), e.g. on a shared CPU
    frames_per_step: int = 2  # each frame costs one attention-lattice evaluation
    rays_per_frame: int = 2048
    lr_planes: float = 2e-2
    lr_net: float = 3e-3
    alpha_weight: float = 0.1
    offset_weight: float = 10.0  # per m^2 of mean squared deformation
    warmup: int = 300  # steps before the grid is first refreshed from density
    refresh_every: int = 500
    density_threshold: float = 0.05  # per cm (alpha 0.015 over 3 mm)
    # Head/body pose corrections (smooth in time) + focal scale. Off by default: the
    # corrections fit the footage's frames, not the poses a new performance brings, so
    # held-out frames render worse with them (docs/INTERNALS.md, `camera_optimizer.py`).
    refine_poses: bool = False
    lr_poses: float = 2e-4
    pose_weight: float = 1e-2  # on the mean squared correction (rad^2, 100 x m^2)
    depth_rays: int = 128  # surface landmarks per frame whose depth is supervised
    depth_weight: float = 1e-3  # per cm^2 of depth error (clipped at 5 cm)
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


def carve_grid(grid: OccupancyGrid, data: SubjectData, max_views: int = 40,
               poses: np.ndarray | None = None) -> None:
    """Initial occupancy from the mattes (dilated, so hair edges are never carved) and
    the free space in front of the tracked face mesh (``face_depth``), seen through
    ``poses`` (default: the head poses; the torso's grid uses the body poses). The head's
    grid is also emptied in front of the face's most forward landmark + ``FREE_MARGIN``."""
    from scipy.ndimage import binary_dilation

    head = poses is None
    poses = data.poses if poses is None else poses
    idx = np.linspace(0, data.n_train - 1, min(max_views, data.n_train)).round().astype(int)
    masks = [binary_dilation(data.mattes[i] > 64, iterations=4) for i in idx]
    h, w = data.frames.shape[1:3]
    fronts = [front_depth(data.landmarks[i], data.poses[i], data.k, w, h) for i in idx]
    grid.carve(masks, [data.k] * len(idx), [poses[i] for i in idx], fronts, FREE_MARGIN)
    if head:
        # Nothing of a head stands further forward than FREE_MARGIN before the most
        # forward point of its tracked face (the nose tip). ``fronts`` carve only where
        # the mesh covers a pixel, so cells in front of the chin and the jaw line survived
        # them: the field grew floaters there that fit the footage's own camera, and from
        # a level camera a ray's sample band started on them and ended before the chin
        # (a transparent notch under the lip).
        grid.clear_in_front_of(float(np.nanmax(data.landmarks[:data.n_train, :, 2]))
                               + FREE_MARGIN)


class Trainer:
    def __init__(self, model: FaceNeRF, grid: OccupancyGrid, data: SubjectData,
                 cfg: TrainConfig, device: torch.device) -> None:
        self.model, self.grid, self.data, self.cfg, self.dev = model, grid, data, cfg, device
        planes = list(model.planes.parameters())
        if model.torso is not None:
            planes += list(model.torso.planes.parameters())
        plane_ids = {id(p) for p in planes}
        rest = [p for p in model.parameters() if id(p) not in plane_ids]
        groups = [{"params": planes, "lr": cfg.lr_planes}, {"params": rest, "lr": cfg.lr_net}]
        self.base_lrs = [cfg.lr_planes, cfg.lr_net]
        self.cameras: CameraOptimizer | None = None
        if cfg.refine_poses:
            self.cameras = CameraOptimizer(max(1, data.n_train)).to(device)
            # No momentum: a knot moves only while its frames are drawn (``CameraOptimizer``).
            groups.append({"params": list(self.cameras.parameters()), "lr": cfg.lr_poses,
                           "betas": (0.0, 0.99)})
            self.base_lrs.append(cfg.lr_poses)
        self.opt = torch.optim.Adam(groups, eps=1e-12)
        self.step = 0
        self.elapsed = 0.0
        self.cpu_seconds = 0.0
        self.history: list[list[float]] = []  # [step, loss, psnr_batch, seconds]
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator(device=device.type).manual_seed(cfg.seed)
        self.landmarks = torch.from_numpy(data.landmarks).float().to(device)
        if data.blendshapes is None:
            data.blendshapes = frame_blendshapes(data)
        self.blendshapes = torch.from_numpy(data.blendshapes).float().to(device)
        self.poses = torch.from_numpy(data.poses).double().to(device)
        self.body_poses = torch.from_numpy(data.body()).double().to(device)
        self.torso_codes = torch.from_numpy(torso_codes(data.poses, data.body())).to(device)
        self.k = torch.from_numpy(data.k).double().to(device)
        self.box = box_rects(data)
        self.feat = feature_rects(data)
        self.plate = data.plate.astype(np.float32) / 255.0
        h, w = data.frames.shape[1:3]
        # The fused engine's march with gradients (``FACECAST_ENGINE=eager``: the
        # reference's); subjects with the mesh warp train with the reference.
        self.engine = (Engine(model) if engine_choice() != "eager" and model.warp is None
                       else None)
        self.depth_prior = (LandmarkDepth(data.landmarks, data.pixels, w, h, cfg.depth_rays)
                            if cfg.depth_rays > 0 and cfg.depth_weight > 0 else None)

    # -- checkpoints ------------------------------------------------------------------
    def save(self, path: Path) -> None:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                 "step": self.step, "elapsed": self.elapsed, "cpu": self.cpu_seconds,
                 "history": self.history, "grid": self.grid.state(),
                 "rng": self.rng.bit_generator.state}
        if self.model.torso_grid is not None:
            state["torso_grid"] = self.model.torso_grid.state()
        if self.cameras is not None:
            state["cameras"] = self.cameras.state_dict()
        save_torch_atomic(path, state)

    def load(self, path: Path) -> None:
        ck = torch.load(path, map_location=self.dev, weights_only=False)
        if ("cameras" in ck) != (self.cameras is not None):
            was = "with" if "cameras" in ck else "without"
            raise InputError(f"this build was started {was} --refine-cameras",
                             f"resume it {was} --refine-cameras (or start a new --out)")
        self.model.load_state_dict(ck["model"])
        if self.cameras is not None and "cameras" in ck:
            self.cameras.load_state_dict(ck["cameras"])
        self.opt.load_state_dict(ck["opt"])
        self.step, self.elapsed, self.history = ck["step"], ck["elapsed"], ck["history"]
        self.cpu_seconds = ck.get("cpu", 0.0)
        restored = OccupancyGrid.from_state(ck["grid"], self.grid.lo, self.grid.hi)
        self.grid.occ, self.grid.hull = restored.occ, restored.hull
        if "torso_grid" in ck and self.model.torso is not None:
            t = self.model.torso
            self.model.torso_grid = OccupancyGrid.from_state(ck["torso_grid"], t.box_lo,
                                                             t.box_hi).to(self.dev)
        self.rng.bit_generator.state = ck["rng"]

    # -- one step ---------------------------------------------------------------------
    def _rays(self, which: str, frames: np.ndarray, pix: list[np.ndarray]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays of the sampled pixels in the head (or body) frame, with the learned
        focal scale and pose corrections (differentiable)."""
        poses = self.poses if which == "head" else self.body_poses
        scale = self.cameras.focal_scale if self.cameras is not None else None
        os_, ds = [], []
        for f, p in zip(frames, pix, strict=True):
            o, d = rays_torch(self.k, torch.from_numpy(p).to(self.dev), poses[int(f)], scale)
            os_.append(o)
            ds.append(d)
        o, d = torch.cat(os_).float(), torch.cat(ds).float()
        if self.cameras is not None:
            fr = torch.as_tensor(frames, device=self.dev)
            ray_frame = torch.cat([torch.full((len(p),), j, device=self.dev)
                                   for j, p in enumerate(pix)])
            o, d = self.cameras.apply(which, fr, o, d, ray_frame)
        return o, d

    def _batch(self) -> tuple:
        d, cfg = self.data, self.cfg
        frames = self.rng.choice(d.n_train, cfg.frames_per_step,
                                 replace=d.n_train < cfg.frames_per_step)
        n_feat = cfg.rays_per_frame // 4
        pix, fids, gts, bgs, ms, marks, points = [], [], [], [], [], [], []
        for j, f in enumerate(frames):
            parts = [_sample_pixels(self.rng, self.box[f], cfg.rays_per_frame - n_feat),
                     _sample_pixels(self.rng, self.feat[f], n_feat)]
            n_plain = sum(len(q) for q in parts)
            if self.depth_prior is not None:
                lp, pts = self.depth_prior.sample(self.rng, int(f))
                parts.append(lp)
                points.append(pts)
            p = np.concatenate(parts)
            marks.append(np.arange(len(p)) >= n_plain)
            pix.append(p)
            fids.append(np.full(len(p), j))
            gts.append(d.frames[f, p[:, 1], p[:, 0]].astype(np.float32) / 255.0)
            bgs.append(self.plate[p[:, 1], p[:, 0]])
            ms.append(d.mattes[f, p[:, 1], p[:, 0]].astype(np.float32) / 255.0)
        t = [torch.from_numpy(np.concatenate(a)).to(self.dev)
             for a in (fids, gts, bgs, ms, marks)]
        pts = (torch.from_numpy(np.concatenate(points)).to(self.dev) if points
               else torch.zeros(0, 3, device=self.dev))
        return frames, pix, *t, pts

    def _depth_loss(self, o: torch.Tensor, d: torch.Tensor, depth: torch.Tensor,
                    alpha: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Robust squared error (cm^2, clipped at 5 cm) between the rendered depth of the
        landmark rays and each landmark's depth along its (corrected) ray."""
        target = ((points - o) * d).sum(-1) / (d * d).sum(-1)
        err_cm = (depth - target) * 100.0
        return torch.mean(alpha.detach() * (err_cm ** 2).clamp(max=25.0))

    def render(self, frames: np.ndarray, pix: list[np.ndarray], o: torch.Tensor,
               d: torch.Tensor, fid: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's rays through head and torso (differentiable): composited rgb,
        alpha, depth, the head layer's alpha and depth, the mean squared offset."""
        march = self.cfg.march
        torso = self.model.torso is not None and self.model.torso_grid is not None
        body = self._rays("body", frames, pix) if torso else None
        fsel = torch.as_tensor(frames, device=self.dev)

        def condition(reads: torch.Tensor | None = None) -> FrameCondition:
            # One attention lattice evaluation per frame, shared by all its rays.
            return self.model.condition(self.landmarks[fsel], self.blendshapes[fsel],
                                        self.grid, self.torso_codes[fsel], reads)

        if self.engine is not None:
            # March first: the attention is evaluated only where the samples read it.
            samples = self.engine.train_march(
                self.grid, o.float(), d.float(), fid.long(), march, self.gen,
                None if body is None else (body[0].float(), body[1].float()))
            vol = condition(self.engine.lattice_reads(samples))
            layers, off_sq = self.engine.train_field(samples, vol)
            out = layers[0] if len(layers) == 1 else layer_over(layers)
            return {"rgb": out[:, :3], "alpha": out[:, 3], "depth": out[:, 4],
                    "head_alpha": layers[0, :, 3], "head_depth": layers[0, :, 4],
                    "offset_sq": off_sq}
        vol = condition()
        head = render_rays(self.model, self.grid, o.float(), d.float(), fid.long(), vol,
                           march, generator=self.gen)
        out = head
        if body is not None:
            out = composite_layers(head, render_torso_rays(
                self.model, body[0].float(), body[1].float(), fid.long(), vol, march,
                generator=self.gen))
        return {**out, "head_alpha": head["alpha"], "head_depth": head["depth"]}

    def train_step(self, progress: float) -> tuple[float, float]:
        cfg = self.cfg
        for g, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            g["lr"] = base * 0.1 ** min(1.0, progress)
        frames, pix, fid, gt, bg, matte, mark, points = self._batch()
        o, d = self._rays("head", frames, pix)
        out = self.render(frames, pix, o, d, fid)
        head_depth, head_alpha = out["head_depth"][mark], out["head_alpha"][mark]
        pred = out["rgb"] + (1.0 - out["alpha"][:, None]) * bg
        mse = torch.mean((pred - gt) ** 2)
        loss = (mse + cfg.alpha_weight * torch.mean((out["alpha"] - matte) ** 2)
                + cfg.offset_weight * out["offset_sq"])
        if self.cameras is not None:
            loss = loss + cfg.pose_weight * self.cameras.penalty()
        if len(points):
            loss = loss + cfg.depth_weight * self._depth_loss(
                o[mark].float(), d[mark].float(), head_depth, head_alpha, points)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach()), float(-10.0 * torch.log10(mse.detach().clamp_min(1e-10)))

    def refresh_grid(self) -> None:
        """Occupancy from density under two conditionings: the mean face and the
        widest-open mouth (so the open mouth's interior is never culled)."""
        n = self.data.n_train
        mouth = self.data.landmarks[:n, 14, 1] - self.data.landmarks[:n, 13, 1]
        pick = int(np.argmin(mouth))
        mean_face = self.landmarks[:n].mean(0, keepdim=True)
        lms = torch.cat([mean_face, self.landmarks[pick:pick + 1]])
        bss = torch.cat([self.blendshapes[:n].mean(0, keepdim=True),
                         self.blendshapes[pick:pick + 1]])
        self.model.eval()
        with torch.no_grad():
            vol = self.model.condition(lms, bss, None)  # every lattice point

            def density(pts: torch.Tensor) -> torch.Tensor:
                best = torch.zeros(len(pts), device=pts.device)
                for c in range(len(lms)):
                    s, _, _ = self.model(pts[None], vol.frame(c))
                    best = torch.maximum(best, s[0])
                return best

            self.grid.refresh(density, self.cfg.density_threshold, seed=self.step)
            torso, tgrid = self.model.torso, self.model.torso_grid
            if torso is not None and tgrid is not None:
                code = self.torso_codes[:n].mean(0, keepdim=True)
                tgrid.refresh(lambda pts: torso(pts, code)[0], self.cfg.density_threshold,
                              seed=self.step + 1)
        self.model.train()

    def run(self, ckpt: Path | None, on_progress: Callable[[int, float, float], None]
            | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
        cfg = self.cfg
        budget = cfg.minutes * 60.0
        self.model.train()
        first_step = self.step
        start = time.perf_counter() - self.elapsed
        cpu_start = time.process_time() - self.cpu_seconds
        last_ckpt = time.perf_counter()
        while True:
            self.elapsed = time.perf_counter() - start
            self.cpu_seconds = time.process_time() - cpu_start
            done_steps = cfg.steps is not None and self.step >= cfg.steps
            cpu_budget = None if cfg.cpu_minutes is None else cfg.cpu_minutes * 60.0
            done_cpu = cpu_budget is not None and self.cpu_seconds >= cpu_budget
            if (done_steps or done_cpu or self.elapsed >= budget
                    or (should_stop and should_stop())):
                break
            progress = self.elapsed / budget
            if cfg.steps:
                progress = max(progress, self.step / cfg.steps)
            if cpu_budget:
                progress = max(progress, self.cpu_seconds / cpu_budget)
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
        if self.step > first_step and self.step >= cfg.warmup:
            self.refresh_grid()  # (a resumed, already finished build changes nothing)
        if ckpt is not None and self.step > first_step:
            self.save(ckpt)
        return {"steps": self.step, "seconds": round(self.elapsed, 1),
                "cpu_seconds": round(self.cpu_seconds, 1),
                "occupancy": round(self.grid.fraction, 4),
                "history": self.history[-200:], "config": cfg.to_dict()}

    def refined_data(self) -> SubjectData:
        """The data with what training learned about the cameras: the focal scale on
        ``k``, the corrected head and body poses of the training frames (held-out frames
        keep their tracked poses)."""
        d = self.data
        body = d.body().copy()
        if self.cameras is None:
            return replace(d, body_poses=body)
        with torch.no_grad():
            n = d.n_train
            k = d.k.copy()
            k[0, 0] *= float(self.cameras.focal_scale)
            k[1, 1] *= float(self.cameras.focal_scale)
            poses = d.poses.copy()
            poses[:n] = self.cameras.corrected("head", self.poses[:n]).cpu().numpy()
            body[:n] = self.cameras.corrected("body", self.body_poses[:n]).cpu().numpy()
        return replace(d, k=k, poses=poses, body_poses=body)


def frame_blendshapes(data: SubjectData) -> np.ndarray:
    """ARKit weights of every frame, solved on the subject's calm neutral (the same
    solve the render path uses for landmarks without blendshapes)."""
    n = max(3, data.n_train)
    return solve_blendshapes(data.landmarks, estimate_neutral(data.landmarks[:n]))


def torso_codes(head_poses: np.ndarray, body_poses: np.ndarray) -> np.ndarray:
    """Pose codes [T, 9] of the head relative to the body (``torso.pose_code``)."""
    rel = np.linalg.inv(np.asarray(body_poses, np.float64)) @ np.asarray(head_poses)
    return pose_code(rel)


def evaluate(model: FaceNeRF, grid: OccupancyGrid, data: SubjectData, frames: list[int],
             device: torch.device) -> dict:
    """PSNR/SSIM of renders composited over the plate, full frame and face box (our own
    metrics; the benchmark adds scikit-image's SSIM)."""
    model.eval()
    rects = face_rects(data)
    rows = []
    for f in frames:
        img = render_frame(model, grid, data, f, device)
        gt = data.frames[f].astype(np.float32) / 255.0
        x0, y0, x1, y1 = rects[f].round().astype(int)
        rows.append([psnr(img, gt), ssim(img, gt), psnr(img[y0:y1, x0:x1], gt[y0:y1, x0:x1]),
                     ssim(img[y0:y1, x0:x1], gt[y0:y1, x0:x1])])
    m = np.mean(rows, axis=0) if rows else [float("nan")] * 4
    return {"psnr": round(float(m[0]), 3), "ssim": round(float(m[1]), 4),
            "psnr_face": round(float(m[2]), 3), "ssim_face": round(float(m[3]), 4),
            "frames": [int(f) for f in frames],
            "per_frame": [[round(float(v), 4) for v in row] for row in rows]}


def render_frame(model: FaceNeRF, grid: OccupancyGrid, data: SubjectData, f: int,
                 device: torch.device, landmarks: np.ndarray | None = None,
                 blendshapes: np.ndarray | None = None) -> np.ndarray:
    """Frame ``f`` of ``data`` rendered at its camera and composited over the plate
    (float RGB [H, W, 3]); ``landmarks`` / ``blendshapes`` replace its conditioning."""
    rgba, _ = render_frame_layers(model, grid, data, f, device, landmarks, blendshapes)
    return composite(rgba, data.plate)


def render_frame_layers(model: FaceNeRF, grid: OccupancyGrid, data: SubjectData, f: int,
                        device: torch.device, landmarks: np.ndarray | None = None,
                        blendshapes: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``render_frame`` before compositing: (premultiplied rgba [H, W, 4], planar depth
    [H, W] in metres)."""
    h, w = data.frames.shape[1:3]
    lm = data.landmarks[f] if landmarks is None else landmarks
    if blendshapes is None:
        blendshapes = (data.blendshapes[f] if data.blendshapes is not None
                       else np.zeros(52, np.float32))
    body = data.body()
    code = torso_codes(data.poses[f:f + 1], body[f:f + 1])
    with torch.inference_mode():
        vol = model.condition(torch.from_numpy(np.asarray(lm, np.float32)[None]).to(device),
                              torch.from_numpy(np.asarray(blendshapes, np.float32)[None]
                                               ).to(device), grid,
                              torch.from_numpy(code).to(device))
    return render_view(model, grid, data.k, w, h, data.poses[f], vol,
                       body_to_camera=body[f])
