"""The field's parts do what they claim: the mesh warp carries a smile the footage never
showed, fades to rigid away from the face; pose corrections move rays exactly as the
refined poses say; layers composite front to back; long work prints progress lines."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from backend.motion.face_basis import landmarks_from_blendshapes
from backend.nerf.components.camera_optimizer import CameraOptimizer, axis_angle_to_matrix
from backend.nerf.components.geometry import pixel_rays, rays_torch
from backend.nerf.components.volume_rendering import composite_layers
from backend.nerf.fields.deformation import MeshWarp
from backend.progress import LineProgress
from backend.threads import default_threads, set_threads
from shared.blendshapes import ARKIT_BLENDSHAPES
from shared.errors import InputError
from shared.landmarks import LEFT_LIP_CORNER, RIGHT_LIP_CORNER, canonical_face


def _smile() -> tuple[torch.Tensor, torch.Tensor]:
    """(canonical neutral face, the same face smiling) [478, 3]."""
    w = np.zeros((2, len(ARKIT_BLENDSHAPES)), np.float32)
    for name in ("mouthSmileLeft", "mouthSmileRight"):
        w[1, ARKIT_BLENDSHAPES.index(name)] = 1.0
    lm = landmarks_from_blendshapes(w)
    return torch.from_numpy(lm[0]), torch.from_numpy(lm[1])


def test_mesh_warp_carries_a_smile_and_stays_rigid_away_from_the_face() -> None:
    neutral, smile = _smile()
    warp = MeshWarp(neutral)
    table = warp.lattice(smile[None])
    corners = smile[[RIGHT_LIP_CORNER, LEFT_LIP_CORNER]]
    moved = smile[[RIGHT_LIP_CORNER, LEFT_LIP_CORNER]] - neutral[[RIGHT_LIP_CORNER,
                                                                   LEFT_LIP_CORNER]]
    assert moved[:, 1].min() > 0.002, "the smile lifts the corners by millimetres"
    # A point at the smiling corner is looked up where the corner is in the canonical face.
    disp = warp.sample(table, corners[None])
    np.testing.assert_allclose(disp.numpy(), -moved.numpy(), atol=0.0012)
    # Far from the face (hair, 6 cm above the forehead; the back of the head): rigid.
    far = torch.tensor([[[0.0, 0.15, 0.02], [0.0, 0.0, -0.06]]])
    assert warp.sample(table, far).abs().max() < 1e-4
    # The unposed face maps onto itself.
    assert warp.lattice(neutral[None]).abs().max() < 1e-7


def test_mesh_warp_candidates_follow_a_loaded_canonical_face() -> None:
    neutral, smile = _smile()
    a = MeshWarp(smile)
    b = MeshWarp(torch.zeros_like(neutral))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.candidates, b.candidates)


def test_pose_corrections_equal_refined_poses() -> None:
    torch.manual_seed(0)
    cams = CameraOptimizer(3)
    with torch.no_grad():
        cams.head.normal_(0.0, 0.02)
    k = np.array([[200.0, 0, 32], [0, 200.0, 32], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3] = axis_angle_to_matrix(torch.tensor([[0.1, -0.2, 0.05]]))[0].numpy()
    pose[:3, 3] = [0.01, -0.02, -0.8]
    poses = torch.from_numpy(np.stack([pose] * 3))
    pix = torch.tensor([[3, 5], [40, 20], [63, 63]])
    o, d = rays_torch(torch.from_numpy(k), pix, poses[1])
    ref_o, ref_d = pixel_rays(k, 64, 64, pose, pix.numpy())
    np.testing.assert_allclose(o.numpy(), ref_o, atol=1e-6)
    np.testing.assert_allclose(d.numpy(), ref_d, atol=1e-6)
    co, cd = cams.apply("head", torch.tensor([1]), o.float(), d.float(),
                        torch.zeros(3, dtype=torch.long))
    refined = cams.corrected("head", poses)[1].detach().numpy()
    want_o, want_d = pixel_rays(k, 64, 64, refined, pix.numpy())
    np.testing.assert_allclose(co.detach().numpy(), want_o, atol=1e-5)
    np.testing.assert_allclose(cd.detach().numpy(), want_d, atol=1e-5)
    # Smooth in time: frames between two knots are interpolated, not free.
    long = CameraOptimizer(100)
    with torch.no_grad():
        long.head.normal_(0.0, 0.01)
    per_frame = long._per_frame(long.head, torch.arange(100))
    step = (per_frame[1:] - per_frame[:-1]).abs().max()
    assert step <= (long.head[1:] - long.head[:-1]).abs().max() / long.knot_frames + 1e-7
    # Gauge: a correction common to all frames is no correction.
    with torch.no_grad():
        cams.head.fill_(0.3)
    assert torch.allclose(cams.corrected("head", poses), poses)


def test_layers_composite_front_to_back() -> None:
    def layer(rgb: float, alpha: float, depth: float) -> dict:
        return {"rgb": torch.full((1, 3), rgb * alpha), "alpha": torch.tensor([alpha]),
                "depth": torch.tensor([depth]), "offset_sq": torch.zeros(()),
                "n_samples": torch.tensor(1.0)}

    near, far = layer(1.0, 0.5, 0.8), layer(0.2, 1.0, 0.9)
    for a, b in ((near, far), (far, near)):
        out = composite_layers(a, b)
        assert out["rgb"][0, 0] == pytest.approx(0.5 + 0.5 * 0.2)
        assert out["alpha"][0] == pytest.approx(1.0)
        assert out["depth"][0] == pytest.approx(0.8)
    empty = layer(0.0, 0.0, 0.0)
    assert composite_layers(empty, far)["depth"][0] == pytest.approx(0.9)


def test_progress_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with LineProgress(4, "render", "frame", file=out, every_s=0.0) as bar:
        for _ in range(4):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("render: 1/4 frames (25%)")
    assert "done in" in lines[-1] and lines[-1].startswith("render: 4/4 frames (100%)")


def test_threads_option(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    assert os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"  # set by backend
    with pytest.raises(InputError, match="--threads 0"):
        set_threads(0)
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert default_threads() == 1 and set_threads(None) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_default_threads_leave_out_cpus_other_processes_keep_busy(monkeypatch) -> None:
    """A torch op waits for all its threads, so a thread on a core another process holds
    slows every op: the default counts only the CPUs no other process keeps busy."""
    import subprocess
    import sys

    from backend.threads import available_cpus, busy_cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = available_cpus()
    if cpus < 2:
        pytest.skip("one CPU: nothing to leave out")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        busy = busy_cpus(0.3)
        assert busy >= 0.7, busy  # the spinning neighbour is seen
        assert default_threads() <= cpus - 1
    finally:
        spin.kill()
        spin.wait()


def test_canonical_face_is_where_the_warp_starts() -> None:
    """Guard against a silently zero canonical face (a warp that maps everything onto
    the origin would still 'train')."""
    face = torch.from_numpy(canonical_face().vertices.copy())
    assert MeshWarp(face).canonical.abs().max() > 0.05


def test_face_mesh_depth_carves_the_free_space_in_front_of_it() -> None:
    """The mesh's depth map equals each landmark's depth at its pixel, and the grid
    loses the cells more than the margin in front of the face, keeping those behind."""
    from backend.nerf.components.occupancy import OccupancyGrid
    from backend.subject.face_depth import FREE_MARGIN, front_depth, project
    from shared.landmarks import canonical_face

    lm = canonical_face().vertices.astype(np.float64)
    pose = np.eye(4)
    pose[2, 3] = -0.5  # face 0.5 m in front of the camera, looking at it
    k = np.array([[400.0, 0, 128], [0, 400.0, 128], [0, 0, 1]])
    depth = front_depth(lm, pose, k, 256, 256)
    pix, z = project(lm[:468], pose, k, 256, 256)
    nose = 1
    x, y = int(pix[nose, 0]), int(pix[nose, 1])
    assert abs(depth[y, x] - z[nose]) < 0.004
    assert np.isnan(depth[2, 2])  # off the face: unknown
    grid = OccupancyGrid(torch.tensor([-0.12, -0.12, -0.12]), torch.tensor([0.12, 0.12, 0.16]),
                         48)
    grid.carve([np.ones((256, 256), bool)], [k], [pose], [depth], FREE_MARGIN)

    def occupied(p: list[float]) -> bool:
        return bool(grid.lookup(torch.tensor([p], dtype=torch.float32))[0])

    tip = lm[nose]
    assert not occupied([tip[0], tip[1], tip[2] + 0.05])  # 5 cm in front of the nose
    assert occupied([tip[0], tip[1], tip[2] - 0.01])  # inside the head
    assert occupied([0.11, 0.11, 0.15])  # off the face (no mesh there): the hull decides


def test_nothing_stays_in_front_of_the_face_where_the_mesh_does_not_reach() -> None:
    """Cells further forward than the face's front limit are emptied off the mesh too
    (in front of the chin, beside the jaw), and a refresh that finds density there does
    not bring them back: the hull is cleared with the grid."""
    from backend.nerf.components.occupancy import OccupancyGrid
    from backend.subject.face_depth import FREE_MARGIN

    grid = OccupancyGrid(torch.tensor([-0.12, -0.12, -0.12]), torch.tensor([0.12, 0.12, 0.16]),
                         48)
    k = np.array([[400.0, 0, 128], [0, 400.0, 128], [0, 0, 1]])
    pose = np.eye(4)
    pose[2, 3] = -0.5
    grid.carve([np.ones((256, 256), bool)], [k], [pose])  # no mesh: the hull keeps all
    front = 0.08 + FREE_MARGIN  # a nose tip 8 cm forward

    def occupied(p: list[float]) -> bool:
        return bool(grid.lookup(torch.tensor([p], dtype=torch.float32))[0])

    assert occupied([0.0, -0.09, 0.13])  # in front of a chin, before the rule
    grid.clear_in_front_of(front)
    assert not occupied([0.0, -0.09, 0.13])
    assert occupied([0.0, -0.09, front - 0.01])  # behind the limit: kept
    grid.refresh(lambda pts: torch.ones(len(pts)), threshold=0.5)  # density everywhere
    assert not occupied([0.0, -0.09, 0.13])
    assert occupied([0.0, -0.09, 0.05])
