"""The fused engine (``backend.nerf.engine``) renders what the eager reference renders:
on the shipped subject's weights, within one uint8 level on 99.9 % of pixels (here: all
but a handful), the same depth, deterministic frames; its one-table tri-plane lookup
equals the per-level ``TriPlane``; a failed torch.compile falls back with one log line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from backend.nerf import engine as eng
from backend.nerf.fields.triplane import TriPlane
from backend.nerf.pipeline import HEAD_DEFAULT, head_to_camera, to_outputs
from backend.nerf.view import render_view
from backend.subject.prepare import SubjectData
from backend.subject.store import load_subject
from shared.camera import BlenderCamera, camera_views

FRONT = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, -0.05], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def subject():
    return load_subject("default")


def _frame(subject, size: int, frame: int = 0):
    """(view, head-to-camera, one frame's condition) of a held-out frame."""
    pack = SubjectData.load(subject.folder / "heldout.npz")
    cam = BlenderCamera(lens=50.0, resolution_x=size, resolution_y=size)
    view = camera_views(cam, FRONT, 1)[0]
    pose = head_to_camera(view, HEAD_DEFAULT)
    with torch.inference_mode():
        vol = subject.model.condition(
            torch.from_numpy(pack.landmarks[frame:frame + 1]),
            torch.from_numpy(pack.blendshapes[frame:frame + 1]) if pack.blendshapes
            is not None else None, subject.grid, torch.zeros(1, 9))
    return view, pose, vol


@pytest.mark.parametrize("chunk", ["0", "1000"])  # whole frame (CUDA), chunks (CPU)
def test_fused_matches_eager_on_the_shipped_subject(subject, chunk, monkeypatch) -> None:
    monkeypatch.setenv(eng.CHUNK_ENV, chunk)
    view, pose, vol = _frame(subject, 72)
    out = {}
    for name in ("eager", "fused"):
        rgba, depth = render_view(subject.model, subject.grid, view.k, 72, 72, pose, vol,
                                  engine=name)
        out[name] = to_outputs(rgba, depth)
    (a8, amm), (b8, bmm) = out["eager"], out["fused"]
    assert (a8[..., 3] > 128).mean() > 0.08, "the head is in the frame"
    diff = np.abs(a8.astype(int) - b8.astype(int)).max(-1)
    assert (diff <= 1).mean() >= 0.999, np.sort(diff.ravel())[-10:]
    dmm = np.abs(amm.astype(int) - bmm.astype(int))
    assert (dmm <= 1).mean() >= 0.999  # depth within a millimetre
    again = to_outputs(*render_view(subject.model, subject.grid, view.k, 72, 72, pose, vol,
                                    engine="fused"))
    assert np.array_equal(again[0], b8) and np.array_equal(again[1], bmm)  # deterministic


def test_one_table_plane_lookup_equals_triplane() -> None:
    gen = torch.Generator().manual_seed(0)
    planes = TriPlane(((40, 4), (12, 8), (5, 8)))
    xn = torch.rand(500, 3, generator=gen) * 2.4 - 1.2  # including the clamped border
    runs = eng.plane_runs(list(planes.levels))
    assert len(runs) == 2  # (4 channels), (8, 8 channels)
    got = torch.cat([eng.plane_features(run, xn) for run in runs], 1)
    torch.testing.assert_close(got, planes(xn), rtol=1e-5, atol=1e-6)


def test_failed_compile_falls_back_with_one_line(subject, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="backend.nerf.engine"):
        engine = eng.Engine(subject.model, compile=True)
    assert not engine.compiled
    lines = [r for r in caplog.records if "fused eager engine" in r.getMessage()]
    assert len(lines) == 1 and "no C++ compiler" in lines[0].getMessage()


def test_unknown_engine_name_means_fused(monkeypatch) -> None:
    monkeypatch.setenv(eng.ENGINE_ENV, "turbo")
    assert eng.engine_choice() == "fused"
    assert eng.engine_choice("eager") == "eager"


def test_gather_gradients_equal_embedding_bags() -> None:
    """The training lookup's sort-free backward gives embedding_bag's gradients."""
    from backend.nerf.components.gather import weighted_gather

    gen = torch.Generator().manual_seed(1)
    table = torch.randn(50, 6, generator=gen, requires_grad=True)
    idx = torch.randint(0, 50, (200, 4), generator=gen)  # repeated rows: accumulation
    w = torch.rand(200, 4, generator=gen, requires_grad=True)
    up = torch.randn(200, 6, generator=gen)
    grads = []
    for fn in (weighted_gather, lambda t, i, ww: torch.nn.functional.embedding_bag(
            i, t, per_sample_weights=ww, mode="sum")):
        out = fn(table, idx, w)
        grads.append((out.detach(), *torch.autograd.grad((out * up).sum(), (table, w))))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_empty_views_and_empty_layers_render(subject) -> None:
    """A frame part with no sample of a layer (or none at all) renders empty, no error."""
    view, pose, vol = _frame(subject, 24)
    away = pose.copy()
    away[0, 3] += 5.0  # the head 5 m to the side: no ray hits either grid
    rgba, depth = render_view(subject.model, subject.grid, view.k, 24, 24, away, vol,
                              engine="fused")
    assert rgba.max() == 0 and depth.max() == 0
    x = torch.zeros(0, 3)
    for run in eng.plane_runs(list(subject.model.planes.levels)):
        assert eng.plane_features(run, x).shape == (0, run.cols.numel() // 2
                                                    * run.table.shape[1])


def test_fused_follows_new_weights_and_a_new_grid(subject) -> None:
    """The engine's laid-out weights and march plan are rebuilt when a parameter changes
    (an optimiser step) or the occupancy grid is refreshed."""
    import copy

    model, grid = copy.deepcopy(subject.model), copy.deepcopy(subject.grid)
    view, pose, vol = _frame(subject, 24)

    def both() -> tuple[np.ndarray, np.ndarray]:
        return tuple(render_view(model, grid, view.k, 24, 24, pose, vol, engine=e)[0]
                     for e in ("fused", "eager"))

    before, _ = both()
    with torch.no_grad():
        model.mlp[-1].bias.add_(torch.tensor([0.0, 2.0, -2.0, 0.0]))  # redder
    fused, eager = both()
    assert np.abs(fused - eager).max() < 2e-3 and np.abs(fused - before).max() > 0.05
    grid.occ = grid.occ & (torch.arange(grid.res)[:, None, None] < grid.res // 2)
    fused, eager = both()
    assert np.abs(fused - eager).max() < 2e-3


def test_kept_attention_queries_follow_the_weights(subject) -> None:
    """The frame-independent attention queries kept between frames (inference) give the
    lattice the uncached (autograd) path gives, and are rebuilt when a query weight
    changes."""
    import copy

    model = copy.deepcopy(subject.model)
    pack = SubjectData.load(subject.folder / "heldout.npz")
    lm = torch.from_numpy(pack.landmarks[:1])
    with torch.inference_mode():  # a model that has rendered still conditions for autograd
        model.condition(lm, None, subject.grid)

    def kept_and_fresh() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            fresh = model.condition(lm, None, subject.grid).attn.detach()
        with torch.no_grad():
            model.condition(lm, None, subject.grid)
            kept = model.condition(lm, None, subject.grid).attn
        return kept, fresh

    kept, fresh = kept_and_fresh()
    assert torch.equal(kept, fresh)
    with torch.no_grad():
        model.attn.q_proj.weight.mul_(1.5)
    kept2, fresh2 = kept_and_fresh()
    assert torch.equal(kept2, fresh2) and not torch.equal(kept2, kept)


def test_fused_frame_makes_far_fewer_torch_calls(subject) -> None:
    """The bench's op counter on the user's path (render_sequence): the whole-frame fused
    layout makes several times fewer torch calls than the eager reference."""
    from backend.bench.engine_bench import engine, ops_per_frame

    with engine("eager"):
        eager, _ = ops_per_frame(subject, 64)
    with engine("fused-whole"):
        fused, aten = ops_per_frame(subject, 64)
    assert 0 < fused * 4 < eager and aten >= fused, (fused, eager)


@pytest.mark.parametrize("kernels", ["0", "1"])  # the field's lookups in torch / in C
def test_fused_training_step_has_the_reference_gradients(subject, kernels,
                                                          monkeypatch) -> None:
    """A training step through the fused engine (one march, one compaction, one field
    call per layer) gives the reference march's loss and gradients on the same weights,
    rays and jitter: every parameter's gradient within 1e-3 of its norm (measured
    ~3e-5: summation order). With the CPU kernels the field's lookups and their
    gradients are computed in C (``NativeInputs``)."""
    import copy
    import dataclasses

    from backend.nerf.components import native
    from backend.subject.train import TrainConfig, Trainer

    if kernels == "1" and native.compiler() is None:
        pytest.skip("no C compiler on this machine: the kernels cannot build")
    monkeypatch.setenv(native.KERNELS_ENV, kernels)
    calls = []
    backward = eng.NativeInputs.backward
    monkeypatch.setattr(eng.NativeInputs, "backward",
                        staticmethod(lambda ctx, *g: calls.append(1) or backward(ctx, *g)))

    data = SubjectData.load(subject.folder / "training.npz")
    data = dataclasses.replace(data, n_train=len(data.frames))
    cfg = TrainConfig(steps=1, rays_per_frame=256, depth_rays=16)
    grads, losses = {}, {}
    for name in ("eager", "fused"):
        model = copy.deepcopy(subject.model).train()
        monkeypatch.setenv(eng.ENGINE_ENV, name)
        trainer = Trainer(model, subject.grid, data, cfg, torch.device("cpu"))
        assert (trainer.engine is None) == (name == "eager")
        trainer.base_lrs = [0.0] * len(trainer.base_lrs)  # the step leaves weights as are
        losses[name] = trainer.train_step(0.0)
        grads[name] = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert len(calls) == (2 if kernels == "1" else 0)  # head and torso, or none
    assert losses["fused"] == pytest.approx(losses["eager"], rel=1e-4)
    assert grads["fused"].keys() == grads["eager"].keys()
    assert any(k.startswith("torso.") for k in grads["eager"])  # both layers learn
    assert any(k.startswith("attn.") for k in grads["eager"])
    for k, ref in grads["eager"].items():
        err = float((grads["fused"][k] - ref).norm() / ref.norm().clamp_min(1e-30))
        assert err < 1e-3, (k, err)
