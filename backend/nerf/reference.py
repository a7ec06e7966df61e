"""The reference render path: the model's head and torso fields marched ray by ray.

Landmark attention and the mesh warp are not evaluated per sample: ``FaceNeRF.condition``
evaluates them once per frame on their lattices, and every sample interpolates those.
The head's rays are in the head frame, the torso's in the body frame (``fields.torso``);
``components.volume_rendering.composite_layers`` puts the two together. ``engine`` is the fused
path, which must give the same frames.
"""

from __future__ import annotations

import torch

from .components.occupancy import OccupancyGrid
from .components.sampler import SampleOptions
from .components.volume_rendering import FieldFn, march_field
from .model import FaceNeRF, FrameCondition


def head_fn(model: FaceNeRF, volume: FrameCondition) -> FieldFn:
    def fn(x: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, rgb, off = model(x[None], volume.frame(f) if len(volume) > 1 else volume)
        return s[0], rgb[0], (off.float() ** 2).sum()
    return fn


def torso_fn(model: FaceNeRF, volume: FrameCondition) -> FieldFn:
    torso = model.torso
    assert torso is not None and volume.torso_code is not None

    def fn(x: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, rgb = torso(x, volume.torso_code[f:f + 1])
        return s, rgb, x.new_zeros(())
    return fn


def render_rays(model: FaceNeRF, grid: OccupancyGrid, origins: torch.Tensor,
                dirs: torch.Tensor, frame_ids: torch.Tensor, volume: FrameCondition,
                opts: SampleOptions, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
    """Render the HEAD along rays of several frames (rays in the head frame).
    ``frame_ids`` [N] index ``volume``'s frames (``FaceNeRF.condition``)."""
    return march_field(head_fn(model, volume), len(volume), grid, origins, dirs, frame_ids,
                       opts, generator)


def render_torso_rays(model: FaceNeRF, origins: torch.Tensor, dirs: torch.Tensor,
                      frame_ids: torch.Tensor, volume: FrameCondition, opts: SampleOptions,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Render the TORSO along rays given in the body frame (same outputs)."""
    assert model.torso_grid is not None
    return march_field(torso_fn(model, volume), len(volume), model.torso_grid, origins,
                       dirs, frame_ids, opts, generator)
