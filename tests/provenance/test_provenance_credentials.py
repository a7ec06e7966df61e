"""C2PA content credentials and `facecast verify`, with the real c2pa library, real
renders, a real backend process and the add-on's own frame writer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.provenance.credentials import (
    Signer,
    encode_png,
    identity_dir,
    read_credentials,
    sign_video,
    signing_identity,
)
from backend.provenance.stamp import RenderStamp
from backend.provenance.watermark import mark_frame
from backend.subject.store import read_manifest, resolve_subject


@pytest.fixture(scope="module")
def stamp() -> RenderStamp:
    return RenderStamp.for_render(read_manifest(resolve_subject("default")), "test render")


@pytest.fixture(scope="module")
def frame(stamp: RenderStamp) -> np.ndarray:
    """A marked RGBA subject: a real held-out d6 frame with its matte."""
    from backend.subject.prepare import SubjectData

    pack = SubjectData.load(resolve_subject("default") / "heldout.npz")
    rgba = np.concatenate([pack.frames[3], pack.mattes[3][..., None]], axis=-1)
    return mark_frame(rgba, stamp.payload)


@pytest.fixture(scope="module")
def signed_png(stamp: RenderStamp, frame: np.ndarray) -> bytes:
    signer = Signer(stamp)
    try:
        return signer.sign_bytes(encode_png(frame), "image/png", "000001.png")
    finally:
        signer.close()


def _damage_manifest(png: bytes) -> bytes:
    """Zero 64 bytes inside the C2PA chunk and fix the chunk's CRC, so the PNG stays
    readable and only the manifest is broken."""
    import struct
    import zlib

    start = png.index(b"caBX") - 4
    length = struct.unpack(">I", png[start:start + 4])[0]
    body = bytearray(png[start + 8:start + 8 + length])
    body[400:464] = bytes(64)
    chunk = b"caBX" + bytes(body)
    return (png[:start] + struct.pack(">I", length) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + png[start + 12 + length:])


def test_key_is_private_and_made_once(stamp: RenderStamp) -> None:
    first = signing_identity()
    key = identity_dir() / "signer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert signing_identity().key_pem == first.key_pem  # reused, not replaced
    assert first.origin == "installation" and first.root_pem


def test_parallel_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    """Four processes create the key at once: all end up with the same one."""
    env = {**os.environ, "FACECAST_HOME": str(tmp_path / "home")}
    code = ("from backend.provenance.credentials import signing_identity;"
            "import hashlib;print(hashlib.sha256(signing_identity().key_pem).hexdigest())")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(outs) == 1 and all(len(o) == 64 for o in outs)
    assert not [p for p in (tmp_path / "home").iterdir() if p.name.startswith(".c2pa-")]


def test_signed_png_reads_back(signed_png: bytes, stamp: RenderStamp) -> None:
    creds = read_credentials(signed_png, "image/png")
    assert creds.state == "trusted"  # this installation trusts its own root
    assert creds.synthetic
    assert creds.render["subject"]["name"] == "default"
    assert creds.render["render"]["id"] == stamp.render_id
    assert creds.render["watermark"]["subject"] == stamp.payload.subject_hex
    consent = creds.render["consent"]
    assert consent["recorded"] and consent["statement_sha256"] == stamp.consent.sha256
    # Elsewhere (no trust anchor): valid structure and content, untrusted signer.
    elsewhere = read_credentials(signed_png, "image/png", trust_anchors=b"")
    assert elsewhere.state == "valid" and "untrusted" in elsewhere.detail


def test_tampered_and_damaged_files(signed_png: bytes) -> None:
    import io

    from PIL import Image

    # Pixels changed after signing (the manifest itself intact): invalid.
    img = np.asarray(Image.open(io.BytesIO(signed_png))).copy()
    img[100, 100, 0] ^= 0x40
    start = signed_png.index(b"IDAT") - 4
    edited = signed_png[:start] + encode_png(img)[33:]  # same header, new image data
    creds = read_credentials(edited, "image/png")
    assert creds.state == "invalid" and "dataHash.mismatch" in creds.detail
    # Bytes of the manifest itself destroyed (the PNG chunk still well formed): damaged.
    assert read_credentials(_damage_manifest(signed_png), "image/png").state == "damaged"
    assert read_credentials(encode_png(img), "image/png").state == "none"


def test_user_supplied_key(tmp_path: Path, monkeypatch, signed_png: bytes,
                           stamp: RenderStamp) -> None:
    from backend.provenance.credentials import _create_identity

    (tmp_path / "mine").mkdir()
    _create_identity(tmp_path / "mine")
    monkeypatch.setenv("FACECAST_C2PA_CERT", str(tmp_path / "mine" / "signer.pem"))
    monkeypatch.setenv("FACECAST_C2PA_KEY", str(tmp_path / "mine" / "signer.key"))
    signer = Signer(stamp)
    assert signer.identity.origin == "user"
    data = signer.sign_bytes(encode_png(np.zeros((8, 8, 4), np.uint8)), "image/png", "x")
    signer.close()
    ours = (tmp_path / "mine" / "root.pem").read_bytes()
    assert read_credentials(data, "image/png", trust_anchors=ours).state == "trusted"
    os.chmod(tmp_path / "mine" / "signer.key", 0o644)
    with pytest.raises(Exception, match="readable by other users"):
        Signer(stamp)


def test_verify_cli_on_a_folder(tmp_path: Path, signed_png: bytes, frame: np.ndarray,
                                stamp: RenderStamp, capsys) -> None:
    from PIL import Image

    from backend.media.mp4 import write_mp4

    folder = tmp_path / "shot"
    folder.mkdir()
    (folder / "000001.png").write_bytes(signed_png)
    a = frame[..., 3:] / 255.0
    composite = (frame[..., :3] * a + 40 * (1 - a)).astype(np.uint8)
    Image.fromarray(composite).save(folder / "000002.jpg", quality=75)  # no manifest
    beside = np.concatenate([composite, np.full_like(composite, 90)], axis=1)  # demo layout
    video = write_mp4(folder / "clip.mp4", [beside] * 8, 25)
    sign_video(video, stamp)
    Image.fromarray(np.zeros((16, 16), np.uint16)).save(folder / "depth_000001.png")
    assert main(["verify", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"Facecast watermark: subject {stamp.payload.subject_hex}") == 3
    assert "depth map" in out and "no C2PA manifest" in out
    assert "C2PA manifest trusted here" in out and "synthetic" in out
    assert "subject: default" in out and "Demo subject only" in out
    assert "3/3 pictures carry the Facecast watermark" in out
    assert main(["verify", "--json", str(folder / "clip.mp4")]) == 0
    report = json.loads(capsys.readouterr().out)
    wm = report["files"][0]["watermark"]
    assert wm["found"] and wm["frames"] == 8 and report["files"][0]["c2pa"]["state"] == \
        "trusted"


def test_verify_exit_codes(tmp_path: Path, signed_png: bytes, capsys) -> None:
    from PIL import Image

    text = tmp_path / "notes.png"  # a .png that is not one
    text.write_text("not an image")
    assert main(["verify", str(text)]) == 2
    assert "cannot check: not an image" in capsys.readouterr().out
    plain = tmp_path / "plain.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(plain)
    assert main(["verify", str(plain)]) == 1
    assert "no Facecast watermark" in capsys.readouterr().out
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(_damage_manifest(signed_png))
    assert main(["verify", str(damaged), str(plain), str(text)]) == 3  # worst wins
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "Facecast watermark" in out  # the pixels still speak
    assert main(["verify", str(tmp_path / "nope.png")]) == 2


def test_render_job_sends_signed_marked_frames(backend, key_file, tmp_path: Path,
                                              staged_addon) -> None:
    """The real job over the real protocol: the add-on's writer stores the signed PNG
    byte for byte, and it verifies (watermark + credentials + consent)."""
    import importlib

    from backend.provenance.verify import verify_file
    from backend.subject.framing import front_camera
    from shared.protocol import BlockingClient, MsgType, load_key

    manifest = read_manifest(resolve_subject("default"))
    neutral = np.asarray(manifest["conditioning"]["landmark_neutral"], np.float32)
    params = {"subject": "default", "camera": front_camera(manifest, 256),
              "array_names": ["landmarks"], "device": "cpu", "signed_png": True}
    render_job = importlib.import_module(f"{staged_addon.__name__}.core.render_job")
    task = render_job.RenderTask(tmp_path / "frames", 1, 2)
    with BlockingClient(backend.endpoint, key=load_key(key_file), timeout_s=60) as client:
        info = client.call("info").body
        assert "signed_png" in info["features"]["render"]
        done = client.call("render", params, [np.stack([neutral, neutral])],
                           on_event=task.on_event)
    assert task.new_frames == 2 and not task.error
    assert done.kind == MsgType.DONE
    assert "Demo subject only" in done.body["consent"]
    assert done.body["provenance"]["watermark"]["subject"] == \
        RenderStamp.from_dict(done.body["provenance"]).payload.subject_hex
    session = importlib.import_module(f"{staged_addon.__name__}.core.backend_session")
    line = session.consent_lines(info)["default"]
    assert line == done.body["consent"]
    # The panel's coverage line comes through the same listing (the manifest's coverage).
    from backend.subject.coverage import Coverage

    assert session.coverage_lines(info)["default"] == \
        Coverage.from_dict(manifest["coverage"]).summary()
    for n in (1, 2):
        rep = verify_file(tmp_path / "frames" / f"{n:06d}.png")
        assert rep.watermark.found and rep.credentials.state == "trusted", rep.lines()
        assert rep.subject == "default"
