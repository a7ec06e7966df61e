"""One source for a subject's fidelity: what `facecast subject info` prints is what the
build recorded, and that is what `facecast bench render` measures (same weights, same
frames, same PSNR and SSIM), checked frame by frame on the shipped subject."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cli import main
from backend.nerf.components.metrics import ssim
from backend.subject.prepare import SubjectData
from backend.subject.store import load_subject


def test_our_ssim_is_scikit_images() -> None:
    skimage = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    theirs = skimage.structural_similarity(a, b, channel_axis=-1, data_range=1.0,
                                           gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
    assert abs(ssim(a, b) - theirs) < 1e-9


def test_subject_info_prints_what_the_bench_measures(capsys) -> None:
    pytest.importorskip("skimage.metrics")
    import torch

    from backend.bench.render_bench import _scores
    from backend.subject.train import render_frame

    subject = load_subject("default", "cpu")
    ev = subject.manifest["evaluation"]
    held = SubjectData.load(subject.folder / "heldout.npz")
    assert ev["frames"] == [int(f) for f in held.frame_index]
    assert len(ev["per_frame"]) == len(held.frames)
    assert np.isclose(np.mean([row[0] for row in ev["per_frame"]]), ev["psnr"], atol=1e-3)
    for f in (0, len(held.frames) - 1):
        img = render_frame(subject.model, subject.grid, held, f, torch.device("cpu"))
        bench = _scores([img], held, [f])  # PSNR, SSIM, face PSNR, face SSIM
        assert np.allclose(bench, ev["per_frame"][f], atol=2e-3), (f, bench, ev["per_frame"][f])
    assert main(["subject", "info", "default"]) == 0
    out = capsys.readouterr().out
    assert f"held-out PSNR {ev['psnr']} dB, SSIM {ev['ssim']}" in out, out
