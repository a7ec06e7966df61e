"""``facecast bench engine``: what the hardware does per frame and per training step, the
eager reference path beside the fused engine in the same run.

Rows (each engine on the same subject, camera and conditioning):

* **ops per frame** (CPU): top-level torch calls that return tensors per 256^2 frame,
  counted with a ``TorchFunctionMode`` (attribute reads such as ``.shape`` are not
  operators and are not counted), and the aten operators they dispatch (nested, with a
  ``TorchDispatchMode``). Counts do not depend on the machine's load.
* **kernel launches per frame and GPU busy fraction** (CUDA): ``torch.profiler`` kernel
  events of one 512^2 frame, and their summed duration over the frame's wall time.
* **fps** at each size, through ``render_sequence`` (the user's path: conditioning,
  rendering, uint8 conversion, watermark), and the peak memory.
* **training**: steps/s and rays/s of the subject trainer's step on the subject's
  training pack, the same rays per step: the reference march with embedding_bag's
  sorting backward (before), the reference march with the sort-free gather
  (``nerf.components.gather``), and the fused engine's march (``Engine.train_forward``).
* **agreement**: the largest uint8 difference between the engines' frames.

Timings on a shared machine depend on its load: the run prints ``/proc/loadavg``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import resource
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from shared.camera import camera_views

from ..nerf.components import gather, native
from ..nerf.engine import CHUNK_ENV, ENGINE_ENV
from ..nerf.pipeline import HEAD_DEFAULT, render_sequence
from ..subject.conditioning import render_conditioning
from ..subject.prepare import SubjectData
from ..subject.store import load_subject
from ..subject.train import TrainConfig, Trainer
from .render_bench import bench_camera

#: Measured before this engine (issue 21: the shipped code, subject d6), for comparison.
BEFORE = {
    "ops": "3,635 (issue 21)",
    "cpu_fps": "1.05 beside another job - 2.97 at load 2.7 (issue 21)",
    "cuda_fps": "21 / 8.2 / 2.3 at 256 / 512 / 1024 (H200, issue 21)",
    "kernels": "6,671 per 512^2 frame, GPU busy 14 % (H200)",
    "train_cuda": "9.6 steps/s, 5,669 kernels per step, busy 18 % (H200)",
    "train_cpu": "~1.3 steps/s (2 threads)",
}
TARGETS = {"ops": "<= 300", "cpu_fps": ">= 8 at 256^2", "cuda_fps": ">= 120 at 512^2",
           "train_cpu": ">= 5 steps/s", "train_cuda": ">= 150 steps/s"}


class _OpCount(TorchFunctionMode):
    """Top-level torch calls that return tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self._depth = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self._depth += 1
        try:
            out = func(*args, **(kwargs or {}))
        finally:
            self._depth -= 1
        if self._depth == 0 and (isinstance(out, torch.Tensor) or (
                isinstance(out, tuple | list) and any(isinstance(o, torch.Tensor)
                                                      for o in out))):
            self.n += 1
        return out


class _AtenCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Render with engine ``name`` inside the block: ``eager``, ``fused``, ``compiled``
    (``nerf.engine.engine_choice``; on CPU ``fused`` uses the CPU kernels when they
    build), ``fused-tensor`` (fused without the CPU kernels: PyTorch ops only) or
    ``fused-whole`` (fused-tensor with the field in one call per frame: the CUDA layout,
    measured on CPU for its op count)."""
    if name in ("fused-whole", "fused-tensor"):
        with (_env(ENGINE_ENV, "fused"), _env(native.KERNELS_ENV, "0"),
              _env(CHUNK_ENV, "0" if name == "fused-whole" else
                   os.environ.get(CHUNK_ENV, ""))):
            yield
    else:
        with _env(ENGINE_ENV, name):
            yield


def _frames(subject, size: int, n: int, fp16: bool
            ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Raw frames of the renderer (no watermark: that is the render service's)."""
    lm = np.asarray(subject.manifest["conditioning"]["landmark_mean"], np.float32)
    cond = render_conditioning({"landmarks": np.repeat(lm[None], n, 0),
                                "head_pose": HEAD_DEFAULT}, subject.manifest,
                               head_pose_frame="world")
    cam, mw = bench_camera(size)
    return render_sequence(subject.model, subject.grid, camera_views(cam, mw, n), cond,
                           fp16=fp16)


def ops_per_frame(subject, size: int = 256) -> tuple[int, int]:
    """(top-level tensor calls, aten operators) of one frame after a warm-up frame."""
    it = _frames(subject, size, 3, False)
    next(it)
    top, aten = _OpCount(), _AtenCount()
    with top:
        next(it)
    with aten:
        next(it)
    return top.n, aten.n


def fps(subject, size: int, n: int, fp16: bool) -> tuple[float, np.ndarray]:
    """Frames/s over ``n`` frames after one warm-up frame; the warm-up frame (rgba)."""
    it = _frames(subject, size, n + 1, fp16)
    _, first, _ = next(it)
    cuda = next(subject.model.parameters()).is_cuda
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in it:
        pass
    if cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t), first


def cuda_kernels(subject, size: int = 512) -> tuple[int, float]:
    """(kernel launches, GPU busy fraction) of one frame (after a warm-up frame)."""
    from torch.profiler import ProfilerActivity, profile

    it = _frames(subject, size, 2, True)
    next(it)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        next(it)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.device_time for e in kernels) / 1e6 / wall  # device_time: microseconds
    return len(kernels), busy


#: The training rows: (label, march, sort-free gather).
BLOCK = 5  # training steps per row per turn
TRAININGS = (("reference, embedding_bag backward", "eager", False, "0"),
             ("reference, sort-free gather (torch)", "eager", True, "0"),
             ("fused march, tensor ops", "fused", True, "0"),
             ("fused march + CPU kernels", "fused", True, "1"))


def training(subject, steps: int, device: torch.device
             ) -> dict[str, tuple[float, int, int | None, float]]:
    """Per ``TRAININGS`` row: (steps/s, rays per step, CUDA kernels per step or None,
    process CPU seconds per step: all threads) of the trainer's step on the subject's
    training pack (a copy of the weights each). The rows take turns in blocks of
    ``BLOCK`` steps, so a change of the machine's load hits them alike while each block
    runs back to back as a build does (one step per turn let the four models evict each
    other's tables from the caches: docs/ENGINE.md)."""
    data = SubjectData.load(subject.folder / "training.npz")
    data = dataclasses.replace(data, n_train=len(data.frames))
    cfg = TrainConfig(steps=steps)
    cuda = device.type == "cuda"
    trainers, kernels = [], []
    for _, march, sort_free, cpu_kernels in TRAININGS:
        with engine(march):
            trainer = Trainer(copy.deepcopy(subject.model).train(), subject.grid, data, cfg,
                              device)
        trainers.append(trainer)
        with gather.sort_free(sort_free), _env(native.KERNELS_ENV, cpu_kernels):
            trainer.train_step(0.0)  # warm-up
            if cuda:
                from torch.profiler import ProfilerActivity, profile

                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    trainer.train_step(0.0)
                    torch.cuda.synchronize()
                kernels.append(sum(1 for e in prof.events()
                                   if e.device_type == torch.autograd.DeviceType.CUDA))
            else:
                kernels.append(None)
    wall, cpu = [0.0] * len(TRAININGS), [0.0] * len(TRAININGS)
    done = 0
    while done < steps:
        block = min(BLOCK, steps - done)
        for i, (trainer, (_, _, sort_free, cpu_kernels)) in enumerate(
                zip(trainers, TRAININGS, strict=True)):
            with gather.sort_free(sort_free), _env(native.KERNELS_ENV, cpu_kernels):
                t, c = time.perf_counter(), time.process_time()
                for _ in range(block):
                    trainer.train_step(0.1)
                if cuda:
                    torch.cuda.synchronize()
                wall[i] += time.perf_counter() - t
                cpu[i] += time.process_time() - c
        done += block
    rays = cfg.frames_per_step * (cfg.rays_per_frame + cfg.depth_rays)
    return {label: (steps / wall[i], rays, kernels[i], cpu[i] / steps)
            for i, (label, _, _, _) in enumerate(TRAININGS)}


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def run_engine_bench(subject_ref: str = "default", sizes: tuple[int, ...] = (256, 512, 1024),
                     frames: int = 4, device: str | None = None, threads: int = 2,
                     compile: bool = False, train_steps: int = 3) -> dict:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(threads)
    engines = (["eager", "fused"] + (["fused-tensor", "fused-whole"] if dev.type == "cpu"
                                     else [])
               + (["compiled"] if compile else []))
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<44} {value}", flush=True)

    print(f"engine bench: subject {subject_ref} on {dev}, {threads} CPU threads, "
          f"load average {_load()} (1/5/15 min) on {os.cpu_count()} CPUs", flush=True)
    lib = native.library()
    row("CPU kernels (fused on CPU)", f"built with {native.compiler()}" if lib is not None
        else "unavailable (see the log line above): fused = fused-tensor")
    cpu_subject = load_subject(subject_ref, "cpu")
    for name in ("eager", "fused", "fused-tensor", "fused-whole"):
        with engine(name):
            top, aten = ops_per_frame(cpu_subject)
        row(f"CPU ops per 256^2 frame, {name}", f"{top:,} top-level ({aten:,} aten)")
    row("  before / target", f"{BEFORE['ops']} / {TARGETS['ops']}")
    subject = cpu_subject if dev.type == "cpu" else load_subject(subject_ref, dev)
    fp16 = dev.type == "cuda"
    if dev.type == "cuda":
        for name in engines:
            with engine(name):
                try:
                    k, busy = cuda_kernels(subject)
                    row(f"CUDA kernels per 512^2 frame, {name}",
                        f"{k:,}, GPU busy {100 * busy:.0f} %")
                except Exception as exc:
                    row(f"CUDA kernels per 512^2 frame, {name}", f"failed: {exc}")
        row("  before", BEFORE["kernels"])
    ref: dict[int, np.ndarray] = {}
    for size in sizes:
        n = max(1, round(frames * (256 / size) ** 2)) if dev.type == "cpu" else frames * 5
        for name in engines:
            with engine(name):
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                try:
                    rate, first = fps(subject, size, n, fp16)
                except Exception as exc:
                    row(f"fps at {size}^2, {name}", f"failed: {exc}")
                    continue
                extra = ""
                if name == "eager":
                    ref[size] = first
                elif size in ref:
                    diff = np.abs(first.astype(np.int16) - ref[size].astype(np.int16))
                    extra = (f", max diff vs eager {diff.max()} levels "
                             f"({100 * (diff.max(-1) <= 1).mean():.2f} % within 1)")
                if name == "compiled":
                    extra += f", first call + {n} frames {time.perf_counter() - t0:.0f} s"
                mem = (f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU"
                       if dev.type == "cuda" else
                       f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
                       " MiB RSS so far")
                row(f"fps at {size}^2, {name}", f"{rate:.2f} ({n} frames; peak {mem}{extra})")
    row("  before / target (CPU 256^2, CUDA 512^2)",
        f"CPU {BEFORE['cpu_fps']} / {TARGETS['cpu_fps']}; CUDA {BEFORE['cuda_fps']} / "
        f"{TARGETS['cuda_fps']}")
    if train_steps > 0 and (subject.folder / "training.npz").is_file():
        for label, (rate, rays, kernels, cpu) in training(subject, train_steps,
                                                          dev).items():
            k = f", {kernels:,} kernels per step" if kernels is not None else ""
            row(f"training steps/s, {label}", f"{rate:.2f} ({rays:,} rays/step, "
                f"{rate * rays:,.0f} rays/s{k}; {1000 * cpu:.0f} ms CPU per step)")
        before = BEFORE["train_cuda"] if dev.type == "cuda" else BEFORE["train_cpu"]
        target = TARGETS["train_cuda"] if dev.type == "cuda" else TARGETS["train_cpu"]
        row("  before / target", f"{before} / {target}")
    print(f"load average after: {_load()}", file=sys.stdout, flush=True)
    return dict(rows)
