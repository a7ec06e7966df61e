"""A tiny subject from real frames trains, beats the plate-only baseline on held-out
frames, renders deterministically with alpha + depth through the CLI and the render job;
bad videos give clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest

from backend.nerf.components.metrics import psnr
from backend.nerf.model import CURRENT
from backend.nerf.pipeline import HEAD_DEFAULT
from backend.subject.build import build_subject
from backend.subject.prepare import SubjectData, prepare
from backend.subject.store import MANIFEST_VERSION
from backend.subject.train import TrainConfig
from shared.camera import BlenderCamera, camera_to_dict
from shared.errors import InputError
from tests.conftest import data_path

FRONT = np.array([[1.0, 0, 0, 0], [0, 0, -1, -0.9], [0, 1, 0, -0.05], [0, 0, 0, 1]])
# The current architecture (blendshapes, torso field, depth prior), small.
SMALL = dataclasses.replace(CURRENT, plane_levels=((48, 8), (12, 8)), torso_res=24,
                            torso_channels=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    clip = data_path("clips", "d12.mp4")
    out = tmp_path_factory.mktemp("subject") / "tiny"
    cfg = TrainConfig(steps=100, minutes=5, frames_per_step=2, rays_per_frame=256,
                      warmup=60, refresh_every=60, ckpt_every_s=1e9)
    manifest = build_subject(clip, out, name="tiny", res=64, train=cfg,
                             model_cfg=SMALL, max_frames=30, eval_frames=3, progress=False)
    return out, manifest


@pytest.mark.slow
def test_trains_above_plate_baseline(tiny) -> None:
    out, manifest = tiny
    data = SubjectData.load(out / "cache" / "data.npz")
    held = [int(np.flatnonzero(data.frame_index == f)[0])  # source frames -> positions
            for f in manifest["evaluation"]["frames"]]
    plate = data.plate.astype(np.float32) / 255
    baseline = np.mean([psnr(plate, data.frames[f] / 255.0) for f in held])
    got = manifest["evaluation"]["psnr"]
    assert got > baseline + 2.0, (got, baseline)
    assert got > 18.0
    assert manifest["split"]["heldout"] == 3 and manifest["split"]["train"] == 27
    assert manifest["version"] == MANIFEST_VERSION and manifest["conditioning"]["landmarks"]
    assert not manifest["conditioning"]["mesh_warp"] and manifest["model"]["torso"]
    on_train = manifest["evaluation"]["training_frames"]["psnr"]
    assert on_train > baseline + 2.0, (on_train, baseline)
    assert (out / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_face_surface_sits_on_the_tracked_mesh(tiny) -> None:
    """The depth prior puts the field's face where the tracked mesh is (without it the
    d6 subjects' faces floated 29-37 mm in front, out of the mesh warp's reach)."""
    from backend.bench.render_bench import depth_error_mm
    from backend.subject.store import load_subject

    out, _ = tiny
    subject = load_subject(out)
    data = SubjectData.load(out / "cache" / "data.npz")
    signed, absolute = depth_error_mm(subject, data, [0, 10, 20])
    assert abs(signed) < 6.0 and absolute < 10.0, (signed, absolute)


@pytest.mark.slow
def test_resume_continues(tiny, tmp_path: Path) -> None:
    import shutil

    out, _ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cfg = TrainConfig(steps=105, minutes=5, frames_per_step=2, rays_per_frame=256,
                      warmup=60, refresh_every=60, ckpt_every_s=1e9)
    with pytest.raises(InputError, match="started without --refine-cameras"):
        build_subject("missing.mp4", copy, name="tiny", res=64, model_cfg=SMALL,
                      train=dataclasses.replace(cfg, refine_poses=True), resume=True,
                      progress=False)
    m2 = build_subject("missing.mp4", copy, name="tiny", res=64, train=cfg,
                       model_cfg=SMALL, resume=True, eval_frames=1, progress=False)
    assert m2["training"]["steps"] == 105  # continued from 100, did not restart
    with pytest.raises(InputError, match="already exists"):
        build_subject("missing.mp4", copy, name="tiny", train=cfg, progress=False)


def _motion(tmp_path: Path, out: Path, n: int = 2) -> tuple[Path, Path]:
    data = SubjectData.load(out / "cache" / "data.npz")
    motion = tmp_path / "anim.npz"
    np.savez(motion, landmarks=data.landmarks[-n:], head_pose=HEAD_DEFAULT,
             head_pose_frame="world")
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps(camera_to_dict(
        BlenderCamera(lens=50, resolution_x=48, resolution_y=64), FRONT)))
    return motion, cam


@pytest.mark.slow
def test_render_cli_deterministic(tiny, tmp_path: Path) -> None:
    from PIL import Image

    from backend.cli import main
    from shared.depth_exr import SKY_DEPTH, decode_depth_exr

    out, _ = tiny
    motion, cam = _motion(tmp_path, out)
    for run in ("a", "b"):
        assert main(["render", str(out), "--motion", str(motion), "--camera", str(cam),
                     "-o", str(tmp_path / run)]) == 0
    for name in ("000001.png", "000002.png"):  # pixels: each file's signature differs
        a = np.asarray(Image.open(tmp_path / "a" / name))
        b = np.asarray(Image.open(tmp_path / "b" / name))
        assert np.array_equal(a, b), name
    depth_a = (tmp_path / "a" / "depth" / "000001.exr").read_bytes()
    assert depth_a == (tmp_path / "b" / "depth" / "000001.exr").read_bytes()
    rgba = np.asarray(Image.open(tmp_path / "a" / "000001.png"))
    depth = decode_depth_exr((tmp_path / "a" / "depth" / "000001.exr").read_bytes())
    assert rgba.shape == (64, 48, 4) and depth.dtype == np.float32
    solid = rgba[..., 3] > 200
    assert solid.mean() > 0.05, "the subject should cover part of the frame"
    # The face is ~0.9 m in front of the camera: depth in metres (Blender's Z units).
    assert 0.7 < np.median(depth[solid]) < 1.1
    assert np.all(depth[rgba[..., 3] == 0] == SKY_DEPTH)
    assert not list((tmp_path / "a").glob(".tmp-*"))


@pytest.mark.slow
def test_render_job_streams(tiny, tmp_path: Path) -> None:
    from backend.jobs.base import JobContext
    from backend.jobs.registry import get

    out, _ = tiny
    data = SubjectData.load(out / "cache" / "data.npz")

    class Ctx(JobContext):
        def __init__(self, params: dict, arrays: list) -> None:
            self.job_id, self.params, self.arrays, self.frames = "t", params, arrays, []

        def progress(self, fraction: float, message: str = "") -> None:
            pass

        def result(self, body, arrays=()) -> None:
            pass

        def frame(self, body, arrays=()) -> None:
            self.frames.append((body, arrays))

        @property
        def cancelled(self) -> bool:
            return False

    cam = camera_to_dict(BlenderCamera(resolution_x=32, resolution_y=32), FRONT)
    ctx = Ctx({"subject": str(out), "camera": cam, "array_names": ["landmarks"],
               "device": "cpu"}, [data.landmarks[:2]])
    body = get("render")().run(ctx)
    assert body["frames"] == 2 and len(ctx.frames) == 2
    assert ctx.frames[0][1][0].shape == (32, 32, 4)
    bad = Ctx({"subject": str(out), "camera": cam, "array_names": ["landmarks"]},
              [data.landmarks[:2, :100]])
    with pytest.raises(InputError):
        get("render")().run(bad)


def _write_video(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_without_face(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clip = tmp_path / "noise.mp4"
    _write_video(clip, rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="no face"):
        prepare(clip, res=64)


def test_video_too_short(tmp_path: Path) -> None:
    clip = tmp_path / "short.mp4"
    _write_video(clip, np.full((3, 64, 64, 3), 128, np.uint8))
    with pytest.raises(InputError, match="only 3 frames"):
        prepare(clip, res=64)


def test_unreadable_video(tmp_path: Path) -> None:
    clip = tmp_path / "broken.mp4"
    clip.write_bytes(b"\x00\x01 this is not a video" * 100)
    with pytest.raises(InputError):
        prepare(clip, res=64)
    with pytest.raises(InputError, match="not found"):
        prepare(tmp_path / "missing.mp4", res=64)


@pytest.mark.slow
def test_nothing_is_occupied_in_front_of_the_face(tiny) -> None:
    """The build's head grid (carved, then refreshed from density during training) holds
    no cell further forward than ``FREE_MARGIN`` before the most forward tracked
    landmark: floaters there start a level camera's sample band before the chin."""
    from backend.subject.face_depth import FREE_MARGIN
    from backend.subject.store import load_subject

    out, _ = tiny
    subject = load_subject(out)
    data = SubjectData.load(out / "cache" / "data.npz")
    limit = float(np.nanmax(data.landmarks[:data.n_train, :, 2])) + FREE_MARGIN
    z = subject.grid.centres()[:, 2].view((subject.grid.res,) * 3)
    assert subject.grid.occ.any()
    assert float(z[subject.grid.occ].max()) <= limit, (float(z[subject.grid.occ].max()), limit)
