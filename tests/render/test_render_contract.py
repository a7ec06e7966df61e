"""One conditioning contract for every render: `facecast animate` -> `facecast render`
gives the same frames as the demo's path through the render job; head poses must name
their frame; animations of another topology or another face are refused with the
mismatch named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.subject.conditioning import render_conditioning
from backend.subject.contract import head_and_body_poses, mean_pose
from backend.subject.prepare import SubjectData
from backend.subject.store import load_subject, read_manifest, resolve_subject
from shared.errors import InputError
from shared.landmarks import HEAD_TO_BLENDER, canonical_face
from tests.conftest import data_path

SIZE = 48


def anim_pcm() -> np.ndarray:
    """0.5 s of real speech (eng.wav from 2.0 s), 16 kHz mono float32."""
    import soundfile as sf

    from backend.audio import load_audio

    pcm, rate = sf.read(data_path("speech", "eng.wav"), dtype="float32")
    return load_audio((pcm[int(2.0 * rate):int(2.5 * rate)], rate), sample_rate=16000).samples


@pytest.fixture(scope="module")
def anim_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real animation: 0.5 s of real speech through `facecast animate`, happy."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("contract")
    pcm, rate = sf.read(data_path("speech", "eng.wav"), dtype="float32")
    wav = folder / "line.wav"
    sf.write(wav, pcm[int(2.0 * rate):int(2.5 * rate)], rate)
    out = folder / "anim.npz"
    assert main(["animate", str(wav), "--fps", "8", "--emotion", "0:happy@0.8",
                 "-o", str(out)]) == 0
    with np.load(out) as d:
        assert str(d["head_pose_frame"]) == "motion"  # animate records its convention
    return out


def test_cli_pair_and_demo_path_give_the_same_frames(anim_npz: Path, tmp_path: Path,
                                                     key_file: Path, capsys) -> None:
    """...and neither passes an earlier, longer render's tail off as part of this one:
    the demo removes its own stale frames, `facecast render` names them and keeps them."""
    from backend.demo.run import DemoOptions, _animate, _render
    from backend.server.launcher import BackendProcess
    from backend.subject.framing import front_camera
    from shared.protocol import BlockingClient, load_key

    cli_dir, demo_dir = tmp_path / "cli", tmp_path / "demo"
    for folder in (cli_dir, demo_dir):
        folder.mkdir()
        (folder / "depth").mkdir()
        for name in ("000099.png", "depth/000099.exr", "notes.txt", "0001.png"):
            (folder / name).write_bytes(b"earlier")
    assert main(["render", "default", "--motion", str(anim_npz), "--camera", "front",
                 "--size", str(SIZE), "-o", str(cli_dir), "--threads", "1"]) == 0
    warning = capsys.readouterr().err
    assert "2 older frame files" in warning and "000099.png" in warning, warning
    assert all((cli_dir / n).read_bytes() == b"earlier"
               for n in ("000099.png", "depth/000099.exr", "notes.txt", "0001.png"))
    with np.load(anim_npz) as d:
        anim = {k: d[k] for k in d}
    camera = front_camera(read_manifest(resolve_subject("default")), SIZE)
    with BackendProcess(key_file=key_file, extra_args=["--threads", "1"]) as backend, \
            BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=60) as client:
        demo = _render(client, DemoOptions(out=tmp_path, device="cpu"), anim, camera,
                       demo_dir)
        # The demo's own animation.npz names its head-pose frame like `facecast animate`
        # does, so the CLI renders it too.
        demo_anim = _animate(client, anim_pcm(), DemoOptions(out=tmp_path, fps=8),
                             "0:happy@0.8", 4).to_arrays()
    assert str(demo_anim["head_pose_frame"]) == "motion"
    render_conditioning(demo_anim, read_manifest(resolve_subject("default")))
    assert len(demo) == len(anim["blendshapes"]) >= 3
    assert not (demo_dir / "000099.png").exists()
    assert all((demo_dir / n).read_bytes() == b"earlier"
               for n in ("depth/000099.exr", "notes.txt", "0001.png"))  # not its own
    assert len(list(demo_dir.glob("[0-9]" * 6 + ".png"))) == len(demo)
    for i, frame in enumerate(demo):
        cli = np.asarray(Image.open(cli_dir / f"{i + 1:06d}.png"))
        assert np.array_equal(cli, frame), f"frame {i} differs"
    solid = demo[0][..., 3] > 200
    assert 0.1 < solid.mean() < 0.9, "the head fills part of the front camera's frame"


def test_head_pose_must_name_its_frame(anim_npz: Path, tmp_path: Path) -> None:
    with np.load(anim_npz) as d:
        arrays = {k: d[k] for k in ("blendshapes", "head_pose")}
    np.savez(tmp_path / "bare.npz", **arrays)
    manifest = read_manifest(resolve_subject("default"))
    with pytest.raises(InputError, match="which frame") as err:
        render_conditioning(arrays, manifest)
    assert "head_pose_frame" in err.value.fix
    with pytest.raises(InputError, match="unknown head pose frame"):
        render_conditioning(arrays, manifest, head_pose_frame="camera")
    # The CLI says the same, as one line, exit code 2.
    assert main(["render", "default", "--motion", str(tmp_path / "bare.npz"), "--camera",
                 "front", "-o", str(tmp_path / "x")]) == 2


def test_motion_is_placed_and_world_poses_anchor_the_body() -> None:
    rng = np.random.default_rng(0)
    motion = np.repeat(np.eye(4)[None], 5, 0)
    motion[:, :3, 3] = rng.normal(0, 0.01, (5, 3))
    head, body = head_and_body_poses(5, motion, "motion")
    np.testing.assert_allclose(head, HEAD_TO_BLENDER @ motion)
    np.testing.assert_allclose(body, np.broadcast_to(HEAD_TO_BLENDER, (5, 4, 4)))
    world, body_w = head_and_body_poses(5, head, "world")
    np.testing.assert_allclose(world, head)
    np.testing.assert_allclose(body_w[0], mean_pose(head), atol=1e-12)
    with pytest.raises(InputError, match="placement"):
        head_and_body_poses(5, head, "world", placement=np.eye(4))
    with pytest.raises(InputError, match="affine"):
        head_and_body_poses(5, np.zeros((5, 4, 4)), "world")


def test_other_topology_and_other_faces_are_refused() -> None:
    subject = load_subject("default")
    manifest = subject.manifest
    with pytest.raises(InputError, match="468 points") as err:
        render_conditioning({"landmarks": np.zeros((2, 468, 3), np.float32)}, manifest)
    assert "blendshapes" in err.value.fix
    # The motion model's canonical face is another face's proportions (2.4 mm RMS on the
    # rigid points vs the default subject's < 1.8 mm across her own clip).
    canon = np.repeat(canonical_face().vertices[None], 3, 0).astype(np.float32)
    with pytest.raises(InputError, match="another face"):
        render_conditioning({"landmarks": canon}, manifest)
    # The subject's own held-out landmarks pass, and get blendshapes solved for the field.
    pack = SubjectData.load(subject.folder / "heldout.npz")
    cond = render_conditioning({"landmarks": pack.landmarks[:3]}, manifest)
    assert cond.blendshapes is not None and cond.blendshapes.shape == (3, 52)
    with pytest.raises(InputError, match="made for subject 'alice'"):
        render_conditioning({"landmarks": pack.landmarks[:3]}, manifest, made_for="alice")


def test_front_camera_sizes_and_bad_camera_arguments(tmp_path: Path) -> None:
    from backend.commands.render_cmd import camera_dict, parse_size
    from shared.camera import camera_from_dict

    manifest = read_manifest(resolve_subject("default"))
    cam, _ = camera_from_dict(camera_dict("front", manifest, "64x48"))
    assert cam.image_size == (64, 48)
    for bad in ("0", "abc", "64x48x2", "9999"):
        with pytest.raises(InputError, match="image size"):
            parse_size(bad)
    with pytest.raises(InputError, match="--camera front"):
        camera_dict(str(tmp_path / "missing.json"), manifest, "64")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        camera_dict(str(tmp_path / "bad.json"), manifest, "64")
    assert json.loads(json.dumps(camera_dict("front", manifest, "32")))["resolution_x"] == 32


@pytest.mark.parametrize("sent", ["blendshapes", "landmarks"])
def test_the_service_validates_the_sent_arrays_once(monkeypatch, sent) -> None:
    """``check_conditioning`` runs once per render, at the service's boundary; what it
    returns is passed inward (the retargeted conditioning is not validated again)."""
    from backend.nerf import pipeline
    from backend.render import service
    from backend.subject import conditioning

    calls = []
    real = pipeline.check_conditioning

    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(service, "check_conditioning", counted)
    monkeypatch.setattr(conditioning, "check_conditioning", counted)
    folder = resolve_subject("default")
    bs = np.zeros((3, 52), np.float32)
    arrays = ({"blendshapes": bs} if sent == "blendshapes" else
              {"landmarks": conditioning.retarget({"blendshapes": bs}, read_manifest(folder))[
                  "landmarks"]})

    class NoRemote:  # the manifest is read, the subject's weights are not loaded
        def render(self, *a, **k):
            raise AssertionError("not rendered here")

    render = service.prepare_render(service.RenderRequest(
        subject="default", camera=service.FrontCamera(SIZE, SIZE), arrays=arrays,
        device="cpu"), remote=NoRemote())
    assert len(render) == 3 and len(calls) == 1
    assert render.cond.landmarks.dtype == np.float32 and render.cond.head_pose.shape == (
        3, 4, 4)
