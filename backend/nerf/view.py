"""Render whole images: one camera + one head pose (+ body pose) + one frame's conditioning.

Shared by evaluation, ``facecast render``, the server's render job and the benchmark, so
all of them produce bit-identical frames for the same inputs (deterministic: no jitter,
fixed chunking, no random state).
"""

from __future__ import annotations

import numpy as np
import torch

from .components.geometry import pixel_rays
from .components.occupancy import OccupancyGrid
from .components.sampler import SampleOptions
from .components.volume_rendering import composite_layers
from .engine import Engine, engine_choice
from .model import FaceNeRF, FrameCondition
from .reference import render_rays, render_torso_rays


def render_view(model: FaceNeRF, grid: OccupancyGrid, k: np.ndarray, width: int,
                height: int, head_to_camera: np.ndarray, volume: FrameCondition,
                opts: SampleOptions | None = None,
                ray_chunk: int = 1 << 16, fp16: bool = False,
                body_to_camera: np.ndarray | None = None, engine: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """-> (rgba float32 [H, W, 4] premultiplied colour + alpha, depth float32 [H, W]
    planar metres from the camera, 0 where alpha is 0). ``volume`` is ONE frame's
    ``FaceNeRF.condition``; ``body_to_camera`` places the torso (default: the head's
    pose, i.e. the head at rest on the body). ``engine``: ``eager`` (the reference
    ``render`` path), ``fused`` or ``compiled`` (``engine.Engine``); default
    ``$FACECAST_ENGINE`` or ``fused``."""
    opts = opts or SampleOptions()
    choice = engine_choice(engine)
    if choice != "eager" and Engine.supports(model, opts) and len(volume) == 1:
        return _render_fused(model, grid, k, width, height, head_to_camera, volume, opts,
                             fp16, body_to_camera, choice == "compiled")
    dev = volume.attn.device
    origins, dirs = pixel_rays(k, width, height, head_to_camera)
    o_all = torch.from_numpy(origins).to(dev)
    d_all = torch.from_numpy(dirs).to(dev)
    torso = model.torso is not None and model.torso_grid is not None
    if torso:
        bo, bd = pixel_rays(k, width, height, head_to_camera if body_to_camera is None
                            else body_to_camera)
        bo_all, bd_all = torch.from_numpy(bo).to(dev), torch.from_numpy(bd).to(dev)
    rgb = torch.zeros(len(o_all), 3, device=dev)
    alpha = torch.zeros(len(o_all), device=dev)
    depth = torch.zeros(len(o_all), device=dev)
    use_amp = fp16 and dev.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
        for i in range(0, len(o_all), ray_chunk):
            o, d = o_all[i:i + ray_chunk], d_all[i:i + ray_chunk]
            fid = torch.zeros(len(o), dtype=torch.long, device=dev)
            out = render_rays(model, grid, o, d, fid, volume, opts)
            if torso:
                body = render_torso_rays(model, bo_all[i:i + ray_chunk],
                                         bd_all[i:i + ray_chunk], fid, volume, opts)
                out = composite_layers(out, body)
            rgb[i:i + ray_chunk] = out["rgb"].float()
            alpha[i:i + ray_chunk] = out["alpha"].float()
            depth[i:i + ray_chunk] = out["depth"].float()
    rgba = torch.cat([rgb, alpha[:, None]], dim=1).clamp(0, 1).view(height, width, 4)
    return rgba.cpu().numpy(), depth.view(height, width).cpu().numpy()


#: Rays per fused call: a 256^2 frame on CPU (larger calls make march temporaries of
#: hundreds of MB: memory-bound), a 1024^2 frame on CUDA.
FUSED_RAYS = {"cpu": 1 << 16, "cuda": 1 << 20}


def fused_engine(model: FaceNeRF, compiled: bool) -> Engine:
    """The model's engine (one per model and mode, kept on the model)."""
    engines = model.__dict__.setdefault("_engines", {})
    if compiled not in engines:
        engines[compiled] = Engine(model, compile=compiled)
    return engines[compiled]


def _render_fused(model: FaceNeRF, grid: OccupancyGrid, k: np.ndarray, width: int,
                  height: int, head_to_camera: np.ndarray, volume: FrameCondition,
                  opts: SampleOptions, fp16: bool, body_to_camera: np.ndarray | None,
                  compiled: bool) -> tuple[np.ndarray, np.ndarray]:
    dev = volume.attn.device
    eng = fused_engine(model, compiled)
    step = FUSED_RAYS.get(dev.type, 1 << 16)
    o, d = (torch.from_numpy(a).to(dev) for a in pixel_rays(k, width, height, head_to_camera))
    body = None
    if model.torso is not None and model.torso_grid is not None:
        body = tuple(torch.from_numpy(a).to(dev) for a in pixel_rays(
            k, width, height, head_to_camera if body_to_camera is None else body_to_camera))
    use_amp = fp16 and dev.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
        parts = [eng.render(grid, o[i:i + step], d[i:i + step], volume, opts,
                            None if body is None else (body[0][i:i + step],
                                                       body[1][i:i + step]))
                 for i in range(0, len(o), step)]
    out = (parts[0] if len(parts) == 1 else torch.cat(parts)).float()
    rgba = out[:, :4].clamp(0, 1).view(height, width, 4)
    return rgba.cpu().numpy(), out[:, 4].view(height, width).cpu().numpy()


def composite(rgba: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA over a uint8 plate -> float RGB in [0, 1]."""
    return rgba[..., :3] + (1.0 - rgba[..., 3:]) * plate.astype(np.float32) / 255.0
