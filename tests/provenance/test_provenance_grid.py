"""The grid mark: a 128² render over a real plate, saved as JPEG quality 50, still says
"a Facecast render" (the presence mark alone did not), while the same frames unmarked
and every frame of a real clip brought to that size and quality do not.

Floors against regressions on a few real renders (no timing): `facecast bench
provenance` measures the targets on more frames.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from backend.provenance import grid
from backend.provenance.payload import Payload
from backend.provenance.verify import read_image_marks
from backend.provenance.watermark import mark_frame
from tests.conftest import data_path
from tests.provenance.test_provenance_presence import _over, _renders

PAYLOAD = Payload(0xCD06, 0x3F48)


def _jpeg(img: np.ndarray, quality: int = 50) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    from backend.media.decode import read_video

    return read_video(data_path("clips", "d9.mp4"), max_frames=1).frames[0]


def test_128px_render_survives_jpeg_q50(plate) -> None:
    renders = _renders(128, 2)
    assert grid.carries(128, 128) and not grid.carries(256, 256)
    for u in renders:
        marked = mark_frame(u, PAYLOAD)
        # Luminance only, visible pixels only, at about the old payload mark's cost.
        hidden = u[..., 3] == 0
        assert np.array_equal(marked[hidden], u[hidden])
        jpeg = _jpeg(_over(marked, plate))
        reading = grid.detect(jpeg)
        assert reading.found and reading.llr > grid.FOUND_LLR + 4
        assert read_image_marks(jpeg).found
        # Baseline: the same render unmarked, through the same steps.
        plain = _jpeg(_over(u, plate))
        assert grid.detect(plain).llr < 0 and not read_image_marks(plain).found


def test_real_frames_at_128px_after_jpeg_never_read_as_marked() -> None:
    """Every frame of d12 resized to 128² and saved at JPEG q50 (the grid mark's own
    size and damage): its likelihood ratio stays far below the bar, alone and as a
    video; the ratio's mean over the frames is near 1, as it must be in unmarked
    pictures."""
    from PIL import Image

    from backend.media.decode import read_video

    frames = [_jpeg(np.asarray(Image.fromarray(f).resize((128, 128), Image.Resampling.BICUBIC)))
              for f in read_video(data_path("clips", "d12.mp4")).frames]
    assert len(frames) > 150
    alone, windowed = grid.detect_frames(frames)
    assert not any(g.found for g in alone + windowed)
    assert max(g.llr for g in alone) < grid.FOUND_LLR / 2
    ratio = np.mean([np.prod(grid.chip_ratios(f), -1).mean() for f in frames])
    assert 0.5 < ratio < 2.0
