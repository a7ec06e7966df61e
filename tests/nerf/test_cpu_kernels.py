"""The CPU render kernels (``backend/nerf/components/cpu_kernels.c``): built with the
system compiler, they render the shipped subject as the eager reference does, the same
frame at any thread count, and without a compiler the engine falls back in one line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from backend.nerf import engine as eng
from backend.nerf.components import native
from backend.nerf.pipeline import to_outputs
from backend.nerf.view import render_view
from backend.subject.store import load_subject

from .test_nerf_engine import _frame

needs_cc = pytest.mark.skipif(native.compiler() is None,
                              reason="no C compiler on this machine: the kernels cannot build")


@pytest.fixture(scope="module")
def subject():
    return load_subject("default")


def _render(subject, size: int, monkeypatch, kernels: str, frame: int = 0):
    monkeypatch.setenv(native.KERNELS_ENV, kernels)
    view, pose, vol = _frame(subject, size, frame)
    return to_outputs(*render_view(subject.model, subject.grid, view.k, size, size, pose,
                                   vol, engine="fused"))


@needs_cc
def test_kernels_build_and_match_the_eager_reference(subject, monkeypatch) -> None:
    assert native.library() is not None, "the kernels must build where a compiler exists"
    view, pose, vol = _frame(subject, 72, 3)
    a8, amm = to_outputs(*render_view(subject.model, subject.grid, view.k, 72, 72, pose, vol,
                                      engine="eager"))
    b8, bmm = _render(subject, 72, monkeypatch, "1", 3)
    assert (a8[..., 3] > 128).mean() > 0.08, "the head is in the frame"
    diff = np.abs(a8.astype(int) - b8.astype(int)).max(-1)
    assert (diff <= 1).mean() >= 0.999, np.sort(diff.ravel())[-10:]
    assert (np.abs(amm.astype(int) - bmm.astype(int)) <= 1).mean() >= 0.999  # depth, mm
    # and they were used: the march, lookups and compositing left torch
    from backend.bench.engine_bench import engine, ops_per_frame

    with engine("fused"):
        calls, _ = ops_per_frame(subject, 64)
        monkeypatch.setenv(native.KERNELS_ENV, "0")
        tensor_calls, _ = ops_per_frame(subject, 64)
    assert 0 < calls * 2 < tensor_calls, (calls, tensor_calls)


@needs_cc
def test_kernels_frame_is_the_same_at_any_thread_count(subject, monkeypatch) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _render(subject, 48, monkeypatch, "1")
        torch.set_num_threads(2)
        two = _render(subject, 48, monkeypatch, "1")
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert one[0][..., 3].max() > 200


def test_without_a_compiler_the_tensor_engine_renders_after_one_line(
        subject, monkeypatch, caplog) -> None:
    want = _render(subject, 32, monkeypatch, "0")
    monkeypatch.setattr(native, "_STATE", {})
    monkeypatch.setattr(native, "compiler", lambda: None)
    with caplog.at_level(logging.WARNING, logger="backend.nerf.components.native"):
        got = _render(subject, 32, monkeypatch, "1")
        again = _render(subject, 32, monkeypatch, "1")
    lines = [r.getMessage() for r in caplog.records if "CPU render kernels" in r.getMessage()]
    assert len(lines) == 1 and "no C compiler" in lines[0], lines
    assert np.array_equal(got[0], want[0]) and np.array_equal(again[0], want[0])


@needs_cc
def test_a_failing_compiler_falls_back_and_leaves_no_file(monkeypatch, tmp_path,
                                                          caplog) -> None:
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_STATE", {})
    monkeypatch.setattr(native, "FLAGS", [*native.FLAGS, "-Werror=this-is-not-a-flag"])
    with caplog.at_level(logging.WARNING, logger="backend.nerf.components.native"):
        assert native.library() is None
    assert any("could not build" in r.getMessage() for r in caplog.records)
    assert not any(p.is_file() for p in tmp_path.rglob("*")), list(tmp_path.rglob("*"))


@needs_cc
def test_the_library_is_built_once_into_the_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_STATE", {})
    assert native.library() is not None
    built = sorted(tmp_path.rglob("*.so"))
    assert len(built) == 1 and built[0].parent == tmp_path / "kernels"
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_STATE", {})
    assert native.library() is not None  # a new process: loaded, not rebuilt
    assert sorted(tmp_path.rglob("*.so")) == built and built[0].stat().st_mtime_ns == stamp


def test_long_bands_and_training_stay_on_the_tensor_engine(subject) -> None:
    """The kernels hold a ray's band in 64 bits and compute no gradients."""
    e = eng.Engine(subject.model)
    e._weights()
    o = torch.zeros(4, 3)
    assert e.native(o, eng.SampleOptions(band=65)) is None
    with torch.enable_grad():
        assert e.native(o, eng.SampleOptions()) is None
