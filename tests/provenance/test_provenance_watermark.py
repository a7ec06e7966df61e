"""The invisible watermark: its code corrects errors and rejects noise, and the mark on
real pixels survives what frames go through (compositing over a real plate, JPEG q75,
a 50 % downscale, H.264) while unmarked real footage never decodes.

Hosts are the default subject's held-out pack: real frames of the d6 footage with their
mattes (an RGBA subject like a render) — and one real render through the renderer's own
choke point. Rates here are floors against regressions; `facecast bench provenance`
measures the targets on more frames.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

from backend.provenance.payload import CODED_BITS, Payload
from backend.provenance.verify import read_image_marks
from backend.provenance.watermark import detect, detect_video, mark_frame
from tests.conftest import data_path

PAYLOAD = Payload(0xCD06, 0x3F48)


def test_code_round_trip_and_corrects_errors() -> None:
    rng = np.random.default_rng(0)
    decoded, raw_errors = 0, []
    for _ in range(50):
        p = Payload(int(rng.integers(1 << 16)), int(rng.integers(1 << 16)))
        signs = 2.0 * p.coded_bits() - 1.0
        assert Payload.from_soft(signs) == p
        # Soft values with noise: about 6 % of the channel bits read with the wrong sign.
        soft = signs + rng.normal(0, 0.64, CODED_BITS)
        raw_errors.append(np.mean(np.sign(soft) != signs))
        decoded += Payload.from_soft(soft) == p
    assert np.mean(raw_errors) > 0.04
    assert decoded >= 48


def test_noise_never_decodes() -> None:
    """3000 random channel words: the 20-bit check lets ~0.003 through on average."""
    rng = np.random.default_rng(1)
    assert not any(Payload.from_soft(rng.normal(size=CODED_BITS)) is not None
                   for _ in range(3000))


def test_payload_fields_are_checked() -> None:
    with pytest.raises(ValueError):
        Payload(1 << 16, 0)
    assert Payload.of("a", "b") == Payload.of("a", "b") != Payload.of("a", "c")


@pytest.fixture(scope="module")
def subjects() -> np.ndarray:
    """12 real RGBA subjects: held-out d6 frames at 256^2 with their mattes as alpha."""
    from backend.subject.prepare import SubjectData
    from backend.subject.store import resolve_subject

    pack = SubjectData.load(resolve_subject("default") / "heldout.npz")
    return np.concatenate([pack.frames, pack.mattes[..., None]], axis=-1)[::2]


@pytest.fixture(scope="module")
def plates() -> np.ndarray:
    """Real backgrounds: frames of another clip (d9, a room) at 256^2."""
    from PIL import Image

    from backend.media.decode import read_video

    video = read_video(data_path("clips", "d9.mp4"), max_frames=12, stride=5)
    return np.stack([np.asarray(Image.fromarray(f).resize((256, 256))) for f in video.frames])


def _over(rgba: np.ndarray, plate: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:].astype(np.float32) / 255.0
    return (rgba[..., :3] * a + plate * (1 - a) + 0.5).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int = 75) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _half(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // 2, h // 2), Image.Resampling.BICUBIC))


def _found(images) -> int:
    scans = [detect(x).detection for x in images]
    return sum(d is not None and d.payload == PAYLOAD for d in scans)


def test_mark_changes_only_visible_luminance(subjects: np.ndarray) -> None:
    rgba = subjects[0]
    marked = mark_frame(rgba, PAYLOAD)
    assert marked.dtype == np.uint8 and marked.shape == rgba.shape
    assert np.array_equal(marked[..., 3], rgba[..., 3])
    hidden = rgba[..., 3] == 0
    assert np.array_equal(marked[hidden], rgba[hidden])
    delta = marked[..., :3].astype(int) - rgba[..., :3]
    unclipped = (rgba[..., :3].min(-1) > 40) & (rgba[..., :3].max(-1) < 215)
    # The same offset on R, G and B: luminance only, no colour shift.
    assert np.all(delta[unclipped, 0] == delta[unclipped, 1])
    assert np.all(delta[unclipped, 1] == delta[unclipped, 2])
    visible = rgba[..., 3] > 0
    psnr = 10 * np.log10(255 ** 2 / np.mean(delta[visible].astype(float) ** 2))
    assert psnr > 36.0  # both marks: ~36.7 dB on the subject


def test_found_after_composite_jpeg_and_downscale(subjects, plates) -> None:
    marked = [mark_frame(s, PAYLOAD) for s in subjects]
    composites = [_over(m, p) for m, p in zip(marked, plates, strict=True)]
    n = len(marked)
    assert _found(marked) == n
    assert _found(composites) == n
    assert _found([_jpeg(c) for c in composites]) >= n - 1
    assert _found([_half(c) for c in composites]) >= n - 1
    # Baseline: the same unmarked frames through the same steps never decode.
    plain = [_over(s, p) for s, p in zip(subjects, plates, strict=True)]
    assert not any(detect(x).found for x in plain + [_jpeg(c) for c in plain])


def test_found_after_h264(subjects, plates) -> None:
    from backend.media.decode import read_video
    from backend.media.mp4 import write_mp4

    marked = [_over(mark_frame(s, PAYLOAD), p) for s, p in zip(subjects, plates, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_mp4(Path(tmp) / "m.mp4", marked, 25, crf=23)
        frames = list(read_video(path).frames)
    scan = detect_video(frames)
    # These 12 frames are 8 source frames apart (a jumpy "video", the hard case for
    # H.264's motion prediction): alone about half are found, all with their neighbours.
    assert scan.combined is not None and scan.combined.payload == PAYLOAD
    assert scan.found_alone >= len(frames) // 3
    assert sum(scan.window_found) == len(frames)


def test_real_footage_never_decodes() -> None:
    """24 frames of four real clips at their own size: no false watermark (the bench
    checks 1000)."""
    from backend.media.decode import read_video

    for clip in ("d3", "d11", "d12", "sun"):
        video = read_video(data_path("clips", f"{clip}.mp4"), max_frames=6, stride=25)
        for frame in video.frames:
            assert not detect(frame).found, clip


def test_a_real_render_leaves_the_pipeline_marked() -> None:
    """The render service's choke point: render_frames marks what it yields; the field's
    own frame loop (nerf) returns the same frame unmarked."""
    from backend.nerf.pipeline import check_conditioning, render_sequence
    from backend.provenance.stamp import RenderStamp
    from backend.render import render_frames
    from backend.subject.framing import front_camera
    from backend.subject.store import load_subject
    from shared.camera import camera_from_dict, camera_views

    subject = load_subject("default")
    lm = np.asarray(subject.manifest["conditioning"]["landmark_neutral"], np.float32)[None]
    cond = check_conditioning(lm, None, None)
    cam, mw = camera_from_dict(front_camera(subject.manifest, 256))
    stamp = RenderStamp.for_render(subject.manifest, "test")
    views = camera_views(cam, mw, 1)
    (_, rgba, _), = render_frames(subject, views, cond, fp16=False, payload=stamp.payload)
    scan = detect(rgba)
    assert scan.found and scan.detection.payload == stamp.payload
    (_, raw, _), = render_sequence(subject.model, subject.grid, views, cond)
    assert not detect(raw).found and not np.array_equal(raw, rgba)
    assert stamp.payload.subject_hex == stamp.assertion()["watermark"]["subject"]


def test_inside_a_bigger_picture_and_at_other_sizes(subjects) -> None:
    from PIL import Image

    marked = mark_frame(subjects[1], PAYLOAD)
    # Beside another picture (the demo MP4's layout) and offset inside a bigger frame.
    beside = np.concatenate([_over(marked, np.full((256, 256, 3), 40, np.uint8)),
                             np.full((256, 256, 3), 90, np.uint8)], axis=1)
    assert detect(beside).found
    canvas = np.full((400, 400, 3), 40, np.uint8)
    canvas[70:326, 100:356] = _over(marked, canvas[70:326, 100:356])
    assert detect(canvas).found
    # Rendered at 192^2: the mark scales with the frame.
    small = np.asarray(Image.fromarray(subjects[1]).resize((192, 192), Image.Resampling.LANCZOS))
    assert detect(mark_frame(small, PAYLOAD)).found
    # Under 160 px the frame carries the grid mark instead of the payload (not readable
    # there; its share of the PSNR budget goes to the presence mark): still found.
    small = np.asarray(Image.fromarray(subjects[1]).resize((128, 128), Image.Resampling.LANCZOS))
    assert not detect(mark_frame(small, PAYLOAD)).found
    assert read_image_marks(mark_frame(small, PAYLOAD)).found
