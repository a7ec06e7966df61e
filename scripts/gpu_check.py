"""Second half of scripts/gpu_check.sh: speed, fidelity and CPU/CUDA agreement of a
subject built on the GPU. Usage: python scripts/gpu_check.py SUBJECT_FOLDER"""

from __future__ import annotations

import sys

import numpy as np
import torch

from backend.bench.render_bench import _fps
from backend.nerf.pipeline import render_sequence
from backend.provenance.stamp import RenderStamp
from backend.subject.conditioning import render_conditioning
from backend.subject.framing import front_camera
from backend.subject.store import load_subject
from shared.camera import camera_from_dict, camera_views

#: CPU (fp32) vs CUDA (fp16 autocast) renders of one frame may differ by this much
#: (uint8 levels) at most; the sampler's occupancy decisions are exact on both.
TOLERANCE_LEVELS = 3.0


def main(folder: str) -> int:
    gpu = load_subject(folder, "cuda")
    ev = gpu.manifest["evaluation"]
    t = gpu.manifest["training"]
    print(f"trained {t['steps']} steps in {t['seconds'] / 60:.1f} min on {t['device']}")
    print(f"held-out PSNR full / face: {ev['psnr']:.2f} / {ev['psnr_face']:.2f} dB, "
          f"training frames {ev['training_frames']['psnr']:.2f} dB")
    for fp16 in (True, False):
        torch.cuda.reset_peak_memory_stats()
        fps = _fps(gpu, 512, 30, fp16)
        print(f"CUDA fps at 512^2 ({'fp16' if fp16 else 'fp32'}): {fps:.1f}, peak "
              f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    cpu = load_subject(folder, "cpu")
    lm = np.asarray(cpu.manifest["conditioning"]["landmark_neutral"], np.float32)[None]
    cond = render_conditioning({"landmarks": lm}, cpu.manifest)
    cam, mw = camera_from_dict(front_camera(cpu.manifest, 128))
    views = camera_views(cam, mw, 1)
    mark = RenderStamp.for_render(cpu.manifest, "gpu_check").payload  # every render is marked
    (_, a, _), = list(render_sequence(cpu.model, cpu.grid, views, cond, payload=mark))
    (_, b, _), = list(render_sequence(gpu.model, gpu.grid, views, cond, fp16=True,
                                      payload=mark))
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    print(f"CPU vs CUDA fp16 at 128^2: max {diff.max()} levels, mean {diff.mean():.3f} "
          f"(tolerance {TOLERANCE_LEVELS:.0f} on 99.9 % of pixels: "
          f"{'ok' if np.percentile(diff, 99.9) <= TOLERANCE_LEVELS else 'EXCEEDED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
