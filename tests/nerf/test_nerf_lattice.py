"""The per-frame attention lattice and the fast sampler change speed, not results:
lattice values are the attention at those points, masking unoccupied lattice points
changes nothing at occupied samples, the inference plane lookup equals ``grid_sample``,
and early ray termination changes a render by less than its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.nerf.components.geometry import pixel_rays
from backend.nerf.components.lattice import lattice_mask, sample_lattice, sample_lattice_reference
from backend.nerf.components.occupancy import OccupancyGrid
from backend.nerf.components.sampler import SampleOptions
from backend.nerf.fields.triplane import TriPlane
from backend.nerf.model import FaceNeRF, ModelConfig
from backend.nerf.reference import render_rays
from shared.landmarks import canonical_face

TINY = ModelConfig(plane_res=32, plane_channels=4, attn_spacing=0.012, hidden=16)


def _model(seed: int = 0, cfg: ModelConfig = TINY) -> FaceNeRF:
    torch.manual_seed(seed)
    m = FaceNeRF(cfg)
    m.set_canonical(torch.from_numpy(canonical_face().vertices.copy()))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
        m.mlp[-1].bias[0] = 4.0  # dense enough that rays terminate
    return m.eval()


def _grid(m: FaceNeRF) -> OccupancyGrid:
    """A small ellipsoid of occupied cells (a face-sized blob inside the lattice box)."""
    g = OccupancyGrid(m.box_lo, m.box_hi, 64)
    c = g.centres()
    inside = ((c[:, 0] / 0.05) ** 2 + ((c[:, 1] + 0.01) / 0.06) ** 2
              + ((c[:, 2] - 0.02) / 0.04) ** 2) < 1.0
    g.occ = inside.view(64, 64, 64)
    return g


def _tokens(seed: int = 1) -> torch.Tensor:
    """Two frames of face landmarks [2, 478, 3]: the canonical face, jittered."""
    gen = torch.Generator().manual_seed(seed)
    face = torch.from_numpy(canonical_face().vertices.copy())
    return face + (torch.rand(2, 478, 3, generator=gen) - 0.5) * 0.01


def test_lattice_values_are_the_attention_there() -> None:
    m = _model()
    tok = _tokens()
    with torch.no_grad():
        vol = m.condition(tok, None, None)
        pts = m.lattice_pts[::37]
        key, val = m.tokens(tok[:, m.token_index], None)
        off, app = m.attn(pts[None].expand(2, -1, -1), key, val)
        got = sample_lattice(vol.attn, pts[None].expand(2, -1, -1), m.lattice_shape)
    want = torch.cat([off, app], dim=-1).reshape(got.shape)
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-4)
    assert want.abs().max() > 1e-3  # not trivially zero


def test_lattice_gather_equals_grid_sample() -> None:
    m = _model()
    gen = torch.Generator().manual_seed(5)
    table = torch.randn(2, len(m.lattice_pts), 19, generator=gen).requires_grad_()
    # Inside, on the border and outside the lattice box (zero padding).
    x = (torch.rand(2, 4000, 3, generator=gen) - 0.5) * torch.tensor([0.3, 0.35, 0.3])
    x = x + torch.tensor([0.0, -0.015, 0.03])
    ref = sample_lattice_reference(table, x, m.lattice_shape)
    got = sample_lattice(table, x, m.lattice_shape)
    assert torch.allclose(ref, got, atol=1e-5)
    w = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), table)
    (g_got,) = torch.autograd.grad((got * w).sum(), table)
    assert torch.allclose(g_ref, g_got, atol=1e-4)


@pytest.mark.parametrize("warp", [False, True])
def test_mask_changes_nothing_at_occupied_samples(warp: bool) -> None:
    import dataclasses

    m = _model(cfg=dataclasses.replace(TINY, mesh_warp=warp))
    g = _grid(m)
    mask = lattice_mask(g, m.lattice_pts, m.lattice_shape)
    assert 0.05 < mask.float().mean() < 0.9  # it does skip work
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(20000, 3, generator=gen) - 0.5) * torch.tensor([0.11, 0.13, 0.09])
    x = x + torch.tensor([0.0, -0.01, 0.02])
    x = x[g.lookup(x)][None]
    assert x.shape[1] > 500
    tok = _tokens()[:1] * 1.02  # a face a little off the canonical one: the warp moves
    with torch.no_grad():
        full = m(x, m.condition(tok, None, None))
        cond = m.condition(tok, None, g)
        masked = m(x, cond)
        if warp:
            assert cond.warp is not None and cond.warp.abs().max() > 1e-3
    for a, b in zip(full, masked, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_fast_plane_lookup_equals_grid_sample() -> None:
    torch.manual_seed(0)
    planes = TriPlane(((24, 4), (6, 4)))
    xn = ((torch.rand(3000, 3) - 0.5) * 2.4).requires_grad_()  # beyond [-1, 1]: border
    ref = planes._grid_sample(xn).t()
    fast = planes(xn)
    assert torch.allclose(ref, fast, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(planes(xn), ref, atol=1e-6)  # the cached inference table
    w = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * w).sum(), [xn, *planes.levels])
    g_fast = torch.autograd.grad((fast * w).sum(), [xn, *planes.levels])
    for a, b in zip(g_ref, g_fast, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("block", [1, 4])
def test_early_termination_is_within_threshold(block: int) -> None:
    m = _model()
    g = _grid(m)
    k = np.array([[60.0, 0, 16], [0, 60.0, 16], [0, 0, 1]])
    pose = np.eye(4)
    pose[2, 3] = -0.6  # head 0.6 m in front of the camera
    o, d = (torch.from_numpy(a) for a in pixel_rays(k, 32, 32, pose))
    fid = torch.zeros(len(o), dtype=torch.long)
    with torch.no_grad():
        vol = m.condition(_tokens()[:1], None, g)
        slow = render_rays(m, g, o, d, fid, vol, SampleOptions(step_block=16, early_stop=-1))
        fast = render_rays(m, g, o, d, fid, vol, SampleOptions(step_block=block))
    assert slow["alpha"].max() > 0.99  # opaque rays exist, so termination happens
    assert fast["n_samples"] < slow["n_samples"]
    assert (fast["rgb"] - slow["rgb"]).abs().max() < 2e-3
    assert (fast["alpha"] - slow["alpha"]).abs().max() < 2e-3


def test_unseen_space_is_carved_and_stays_empty() -> None:
    """Cells no training camera saw are empty after carving, and density refreshes
    never re-occupy them (they would be untrained fog from a new camera)."""
    lo, hi = torch.tensor([-0.26, -0.42, -0.17]), torch.tensor([0.26, 0.21, 0.14])
    g = OccupancyGrid(lo, hi, 16)
    k = np.array([[300.0, 0, 32], [0, 300.0, 32], [0, 0, 1]])
    pose = np.eye(4)
    pose[2, 3] = -0.8  # narrow view of the box centre
    g.carve([np.ones((64, 64), dtype=bool)], [k], [pose])
    c = g.centres()
    far_corner = g.lookup(torch.tensor([[0.25, 0.2, 0.1]]))
    centre = g.lookup(torch.tensor([[0.0, 0.0, 0.0]]))
    assert bool(centre) and not bool(far_corner)
    assert 0.0 < g.fraction < 0.9
    hull = g.occ.clone()
    g.refresh(lambda p: torch.ones(len(p)), threshold=0.5)  # density everywhere
    assert bool((g.occ <= hull).all()) and bool(g.occ.any())
    assert len(c) == 16 ** 3
    restored = OccupancyGrid.from_state(g.state(), lo, hi)
    assert torch.equal(restored.hull, g.hull) and torch.equal(restored.occ, g.occ)
