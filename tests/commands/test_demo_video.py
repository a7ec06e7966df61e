"""The demo's MP4 keeps its invisible mark after a user re-encodes it: a 128² render
(``demo --quick``) is written enlarged by whole pixels, because re-encoded at H.264 CRF
28 the mark of a 128-pixel video is lost (docs/PROVENANCE.md). The same frames unmarked,
through the same steps, read as no Facecast render (the baseline)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from backend.demo.run import MIN_VIDEO_SIDE, _video
from backend.provenance.payload import Payload
from backend.provenance.verify import read_video_marks
from backend.provenance.watermark import mark_frame
from tests.provenance.test_provenance_presence import _renders


def _reencode(src, dst, crf: int) -> list[np.ndarray]:
    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(src)).decode(video=0)]
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return [f.to_ndarray(format="rgb24") for f in av.open(str(dst)).decode(video=0)]


@pytest.fixture(scope="module")
def renders() -> list[np.ndarray]:
    return _renders(128, 3) * 4  # 12 frames (a render repeats when the face holds still)


def test_a_quick_demo_video_keeps_its_mark_after_crf28(renders, tmp_path) -> None:
    landmarks = np.zeros((len(renders), 478, 3), np.float32)
    pcm = np.zeros(16000, np.float32)
    marked = [mark_frame(u, Payload(0xCD06, 0x3F48)) for u in renders]
    _video(tmp_path / "marked.mp4", marked, landmarks, 25, pcm)
    _video(tmp_path / "plain.mp4", renders, landmarks, 25, pcm)
    stream = av.open(str(tmp_path / "marked.mp4")).streams.video[0]
    assert (stream.height, stream.width) == (MIN_VIDEO_SIDE, 2 * MIN_VIDEO_SIDE)
    got = read_video_marks(_reencode(tmp_path / "marked.mp4", tmp_path / "m28.mp4", 28))
    assert got.found and got.frames_windowed >= 0.9 * len(renders), got
    plain = read_video_marks(_reencode(tmp_path / "plain.mp4", tmp_path / "p28.mp4", 28))
    assert not plain.found, plain
