"""The presence mark: real renders at the small sizes users render carry a mark that
verify finds, after what frames go through (a flat background or a real plate, JPEG
q50, a 2 degree rotation, an H.264 re-encode of the demo's MP4), while unmarked renders
and every frame of a real clip never read as marked; and `verify`'s exit codes.

Rates are floors against regressions at small fixed sizes (no timing): `facecast bench
provenance` measures the targets on more frames and sizes.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from backend.provenance import presence
from backend.provenance.payload import Payload
from backend.provenance.verify import (
    EXIT_NO_SIGN,
    EXIT_SYNTHETIC,
    confirmed_claim,
    read_image_marks,
    read_video_marks,
)
from backend.provenance.watermark import mark_frame
from tests.conftest import data_path

PAYLOAD = Payload(0xCD06, 0x3F48)
FLAT = np.array([38, 40, 48], np.float32)  # the demo's background


def _renders(size: int, n: int) -> list[np.ndarray]:
    """``n`` unmarked RGBA renders of held-out conditioning from the demo's camera."""
    import torch

    from backend.nerf.pipeline import render_sequence
    from backend.subject.conditioning import render_conditioning
    from backend.subject.framing import front_camera
    from backend.subject.prepare import SubjectData
    from backend.subject.store import load_subject
    from shared.camera import camera_from_dict, camera_views

    torch.manual_seed(0)
    subject = load_subject("default")
    pack = SubjectData.load(subject.folder / "heldout.npz")
    cond = render_conditioning({"landmarks": np.asarray(pack.landmarks[:n], np.float32)},
                               subject.manifest)
    cam, mw = camera_from_dict(front_camera(subject.manifest, size))
    return [rgba for _, rgba, _ in render_sequence(subject.model, subject.grid,
                                                   camera_views(cam, mw, n), cond)]


@pytest.fixture(scope="module")
def small() -> list[np.ndarray]:
    return _renders(96, 4)


@pytest.fixture(scope="module")
def medium() -> list[np.ndarray]:
    return _renders(256, 2)


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    from backend.media.decode import read_video

    return read_video(data_path("clips", "d9.mp4"), max_frames=1).frames[0]


def _over(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    from PIL import Image

    if background.ndim == 3:
        background = np.asarray(Image.fromarray(background).resize(rgba.shape[1::-1]))
    a = rgba[..., 3:].astype(np.float32) / 255.0
    return (rgba[..., :3] * a + background * (1 - a) + 0.5).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).rotate(degrees, Image.Resampling.BICUBIC))


def _found(images) -> int:
    return sum(read_image_marks(x).found for x in images)


def test_96px_renders_are_found(small) -> None:
    marked = [mark_frame(u, PAYLOAD) for u in small]
    assert _found(marked) == len(marked)
    assert _found([_over(m, FLAT) for m in marked]) == len(marked)
    # Baseline: the same renders unmarked never read as marked.
    assert _found(small + [_over(u, FLAT) for u in small]) == 0


def test_256px_survives_jpeg_rotation_and_resize(medium, plate) -> None:
    from PIL import Image

    marked = [_over(mark_frame(u, PAYLOAD), plate) for u in medium]
    plain = [_over(u, plate) for u in medium]
    assert _found([_jpeg(m, 50) for m in marked]) == len(marked)
    assert _found([_rotate(m, 2.0) for m in marked]) >= len(marked) - 1
    half = [np.asarray(Image.fromarray(m).resize((128, 128), Image.Resampling.BICUBIC))
            for m in marked]
    assert _found(half) == len(marked)
    assert _found([_jpeg(p, 50) for p in plain] + [_rotate(p, 2.0) for p in plain]) == 0


def test_demo_mp4_reencoded_is_found_with_neighbours() -> None:
    """Real faces in the demo's MP4 layout (the subject over the demo's background beside
    a flat panel), written by the demo's writer (CRF 20) and re-encoded by a user (CRF
    23). Hosts: 12 consecutive held-out d6 frames with their mattes (an RGBA subject
    like a render, moving as real footage does)."""
    import tempfile

    import av

    from backend.media.decode import read_video
    from backend.media.mp4 import write_mp4
    from backend.subject.prepare import SubjectData
    from backend.subject.store import resolve_subject

    pack = SubjectData.load(resolve_subject("default") / "heldout.npz")
    subjects = np.concatenate([pack.frames, pack.mattes[..., None]], axis=-1)[:12]

    def reencoded(rgba: list[np.ndarray], tmp: Path) -> list[np.ndarray]:
        frames = [np.concatenate([_over(f, FLAT), np.full((256, 256, 3), 30, np.uint8)], 1)
                  for f in rgba]
        path = write_mp4(tmp / "demo.mp4", frames, 25)
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=25)
            s.pix_fmt, s.width, s.height = "yuv420p", 512, 256
            s.options = {"crf": "23", "preset": "medium"}
            for f in read_video(path).frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
        buf.seek(0)
        with av.open(buf) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    with tempfile.TemporaryDirectory() as tmp:
        marked = read_video_marks(reencoded([mark_frame(u, PAYLOAD) for u in subjects],
                                            Path(tmp)))
        plain = read_video_marks(reencoded(list(subjects), Path(tmp)))
    assert marked.found and marked.frames_windowed == marked.frames == len(subjects)
    assert marked.frames_found >= len(subjects) - 2
    assert not plain.found and plain.frames_windowed == plain.frames_found == 0


def test_every_frame_of_a_real_clip_reads_unmarked() -> None:
    """Every frame of d12 (183 frames, 512^2), each alone (every hypothesis verify
    tries) and as a video (1 s of neighbours): no presence mark."""
    from backend.media.decode import read_video

    frames = list(read_video(data_path("clips", "d12.mp4")).frames)
    assert len(frames) > 150
    alone, windowed = presence.detect_frames(frames)
    assert not any(p.found for p in alone + windowed)
    assert not any(presence.detect(f).found for f in frames[::6])


def test_verify_exit_codes_answer_is_it_synthetic(tmp_path: Path, medium, capsys) -> None:
    from PIL import Image

    from backend.cli import main
    from backend.provenance.credentials import Signer, encode_png
    from backend.provenance.stamp import RenderStamp
    from backend.subject.store import read_manifest, resolve_subject

    marked = tmp_path / "marked.jpg"  # the mark alone, no credentials
    Image.fromarray(_jpeg(_over(mark_frame(medium[0], PAYLOAD), FLAT), 75)).save(marked)
    real = tmp_path / "real.png"
    Image.fromarray(_over(medium[0], FLAT)).save(real)
    assert main(["verify", str(marked)]) == EXIT_SYNTHETIC
    assert "exit 0: a Facecast render" in capsys.readouterr().out
    assert main(["verify", str(real)]) == EXIT_NO_SIGN
    assert "exit 1: no sign of Facecast" in capsys.readouterr().out
    # Unmarked pixels whose credentials, trusted here, declare them synthetic: a render.
    stamp = RenderStamp.for_render(read_manifest(resolve_subject("default")), "test")
    signer = Signer(stamp)
    try:
        signed = signer.sign_bytes(encode_png(medium[0]), "image/png", "000001.png")
    finally:
        signer.close()
    creds_only = tmp_path / "creds_only.png"
    creds_only.write_bytes(signed)
    assert main(["verify", str(creds_only)]) == EXIT_SYNTHETIC
    assert "pixels carry no watermark" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    help_text = capsys.readouterr().out
    for line in ("0  a Facecast render", "1  no sign of Facecast", "2  unreadable",
                 "3  damaged or tampered"):
        assert line in help_text


def test_report_claims_only_what_verify_confirms(tmp_path: Path, medium) -> None:
    from backend.media.mp4 import write_mp4

    frames = [np.concatenate([_over(f, FLAT)] * 2, 1) for f in medium for _ in range(3)]
    plain = write_mp4(tmp_path / "plain.mp4", frames, 25)
    claim = confirmed_claim(plain, [], PAYLOAD)
    assert claim.startswith("MP4: NO Facecast watermark") and "verify exit 1" in claim
    marked = write_mp4(tmp_path / "marked.mp4",
                       [mark_frame(f, PAYLOAD) for f in frames], 25)
    claim = confirmed_claim(marked, [], PAYLOAD)
    assert claim.startswith("MP4: Facecast watermark found") and "verify exit 0" in claim


def test_a_folder_of_downscaled_frames_is_read_as_a_sequence(tmp_path: Path, plate) -> None:
    """A 256² render's frames resized to 25 % (64²), one of them a quarter of the way
    through a cross-fade from the unmarked frame (a quarter of the mark: not found
    alone): a folder of them is read as a sequence (as a video is) and every frame is
    found, that one with its neighbours, while the same frames unmarked stay unmarked."""
    from PIL import Image

    from backend.provenance.verify import verify_paths

    renders = _renders(256, 4)
    marked = [mark_frame(u, PAYLOAD) for u in renders]
    faded = ((marked[1].astype(np.uint16) + 3 * renders[1].astype(np.uint16)) // 4
             ).astype(np.uint8)
    for name, frames in (("marked", [marked[0], faded, *marked[2:]]), ("plain", renders)):
        folder = tmp_path / name
        folder.mkdir()
        for i, f in enumerate(frames):
            small = Image.fromarray(_over(f, plate)).resize((64, 64),
                                                            Image.Resampling.BICUBIC)
            small.save(folder / f"{i:04d}.png")
    assert not read_image_marks(np.asarray(Image.open(tmp_path / "marked" / "0001.png"))).found
    reports = verify_paths([tmp_path / "marked"])
    assert [r.watermark.found for r in reports] == [True] * 4
    assert any("read as a sequence" in n for n in reports[1].notes)
    assert not any(r.watermark.found for r in verify_paths([tmp_path / "plain"]))


# The resamplers users shrink pictures with: PIL's (antialiased) and OpenCV's.
QUARTER = (("PIL", "BICUBIC"), ("PIL", "LANCZOS"), ("PIL", "BILINEAR"), ("PIL", "BOX"),
           ("cv2", "INTER_AREA"), ("cv2", "INTER_CUBIC"), ("cv2", "INTER_LANCZOS4"))


@pytest.mark.parametrize(("library", "filter_name"), QUARTER)
def test_a_single_still_resized_to_25_percent_is_found(plate, library, filter_name) -> None:
    """One 256² frame over a real plate resized to 64² by each common resampler (its
    presence cells now half a pixel, most of the mark's band gone): read against the
    tile as such a shrink leaves it, each frequency weighted by the picture's own power
    there, every frame is found alone; the same frames unmarked are not."""
    import cv2
    from PIL import Image

    def quarter(img: np.ndarray) -> np.ndarray:
        if library == "cv2":
            return cv2.resize(img, (64, 64), interpolation=getattr(cv2, filter_name))
        return np.asarray(Image.fromarray(img).resize((64, 64),
                                                      Image.Resampling[filter_name]))

    renders = _quarter_renders()
    marked = [presence.detect(quarter(_over(mark_frame(u, PAYLOAD), plate))) for u in renders]
    assert all(p.found for p in marked), marked
    assert _found([quarter(_over(u, plate)) for u in renders]) == 0


def test_a_shrunk_still_reads_with_more_margin_through_the_matched_filter(plate) -> None:
    """On 64² stills shrunk (PIL bicubic) from 256² renders over a real plate, the
    matched reading's aligned score clears its threshold by more than the plain
    reading's clears its own (the plain fold alone missed 2 of 12 such bench frames)."""
    from PIL import Image

    margins = []
    for u in _quarter_renders():
        small = np.asarray(Image.fromarray(_over(mark_frame(u, PAYLOAD), plate)).resize(
            (64, 64), Image.Resampling.BICUBIC))
        (key, both), = ((k, v) for k, v in presence.folded_views(
            small, angles=(0.0,), scales=(1.0,)).items() if k[3] > 1.0)
        plain = presence.scores(both[0], key[3])[0, 0] / presence.ALIGNED_Z
        matched = presence.scores(both[1], key[3])[0, 0] / presence.MATCHED_Z
        margins.append(matched - plain)
    assert np.mean(margins) > 0.05, margins


@lru_cache(maxsize=1)
def _quarter_renders() -> list[np.ndarray]:
    return _renders(256, 4)


def test_the_mark_costs_the_same_energy_at_every_size() -> None:
    """The marks' energy on the frame (the render's PSNR cost) does not grow as frames
    get smaller: the presence mark is ``AMPLITUDE`` levels RMS whatever the size, and a
    frame under 160 px spends the payload's share on it (``SMALL_AMPLITUDE``) instead of
    carrying both (before, a 128² frame carried 3.5 levels of presence mark plus the
    payload, against 2.84 in a 256² one: over the 0.1 dB budget)."""
    rms = {s: float(presence.pattern(s, s).std()) for s in (96, 128, 256, 512)}
    assert all(abs(r - presence.AMPLITUDE) < 0.01 for r in rms.values()), rms

    def mark_rms(size: int) -> float:
        u = np.full((size, size, 4), 128, np.uint8)
        return float((mark_frame(u, PAYLOAD, with_grid=False)[..., 0] - 128.0).std())

    small, big = mark_rms(128), mark_rms(256)
    assert abs(small - presence.SMALL_AMPLITUDE) < 0.1 and small <= big + 0.05, (small, big)


def test_small_frames_carry_the_mark_where_h264_keeps_it() -> None:
    """Under 160 px (one-pixel cells) the presence mark's energy sits mostly in the band
    H.264 and JPEG both keep (``SMALL_BAND``), not spread evenly up to the finest detail
    as a 256² frame's is; its RMS stays ``SMALL_AMPLITUDE``."""
    def band_share(p: np.ndarray) -> float:
        power = np.abs(np.fft.fft2(p)) ** 2
        f = np.maximum(np.abs(np.fft.fftfreq(p.shape[0]))[:, None],
                       np.abs(np.fft.fftfreq(p.shape[1]))[None, :])
        lo, hi = presence.SMALL_BAND
        return float(power[(f >= lo) & (f <= hi)].sum() / power.sum())

    small = presence.pattern(128, 128, presence.SMALL_AMPLITUDE, small=True)
    plain = presence.pattern(128, 128, presence.SMALL_AMPLITUDE)
    assert abs(float(small.std()) - presence.SMALL_AMPLITUDE) < 0.01
    assert band_share(small) > 0.85 > 0.7 > band_share(plain), (band_share(small),
                                                               band_share(plain))
    u = np.full((128, 128, 4), 128, np.uint8)
    marked = mark_frame(u, PAYLOAD, with_grid=False)[..., 0].astype(np.float64) - 128
    assert band_share(marked) > 0.85
