"""The ``render`` job's typed answer: a frame read back is the frame sent, arrays by
name, with the same wire bytes the job sent before it was typed; a frame that does not
fit is refused naming the array; DONE reads leniently."""

from __future__ import annotations

import numpy as np
import pytest

from shared.errors import InputError
from shared.render_result import RenderDone, RenderedFrame


def frame(index: int = 3, h: int = 5, w: int = 7, png: bool = True) -> RenderedFrame:
    rng = np.random.default_rng(index)
    return RenderedFrame(index, rng.integers(0, 256, (h, w, 4), dtype=np.uint8),
                         rng.integers(0, 1000, (h, w), dtype=np.uint16),
                         b"\x89PNG\r\n\x1a\n" + bytes(range(40)) if png else None)


@pytest.mark.parametrize("png", [True, False])
def test_round_trip_by_name(png: bool) -> None:
    sent = frame(png=png)
    body, arrays = sent.to_wire()
    got = RenderedFrame.from_wire(body, arrays)
    assert (got.index, got.depth_units, got.png) == (3, "mm", sent.png)
    np.testing.assert_array_equal(got.rgba, sent.rgba)
    np.testing.assert_array_equal(got.depth, sent.depth)


def test_wire_is_what_the_job_sent_before() -> None:
    """backend/jobs/render.py built FRAME by hand until it sent ``to_wire``: same body,
    same arrays (dtype, shape, bytes), in the same order."""
    f = frame()
    before = ({"index": f.index, "depth_units": "mm"},
              [f.rgba, f.depth, np.frombuffer(f.png, np.uint8)])
    after = f.to_wire()
    assert after[0] == before[0]
    assert [(a.dtype, a.shape, a.tobytes()) for a in after[1]] == \
        [(a.dtype, a.shape, a.tobytes()) for a in before[1]]


@pytest.mark.parametrize(("body", "arrays", "named"), [
    ({"index": 0}, "rgba-float", "rgba as float32"),
    ({"index": 0}, "rgba-rgb", r"rgba as uint8 of shape \(5, 7, 3\)"),
    ({"index": 0}, "depth-float", "depth as float32"),
    ({"index": 0}, "depth-size", r"depth as uint16 of shape \(5, 6\), expected uint16 of "
                                 r"shape \(5, 7\)"),
    ({"index": 0}, "png-2d", "png as uint8 of shape"),
    ({"index": 0}, "one", "1 arrays"),
    ({"index": -1}, "ok", "index=-1"),
    ({}, "ok", "index=None"),
    ({"index": 0, "depth_units": "m"}, "ok", "depth in 'm'"),
])
def test_each_mismatch_is_named(body: dict, arrays: str, named: str) -> None:
    rgba, depth, png = frame().to_wire()[1]
    bad = {"rgba-float": [rgba.astype(np.float32), depth],
           "rgba-rgb": [rgba[..., :3], depth],
           "depth-float": [rgba, depth.astype(np.float32)],
           "depth-size": [rgba, depth[:, :6]],
           "png-2d": [rgba, depth, png[None]],
           "one": [rgba], "ok": [rgba, depth, png]}[arrays]
    with pytest.raises(InputError, match=named) as err:
        RenderedFrame.from_wire(body, bad)
    assert "same Facecast version" in err.value.fix


def test_done_round_trip_and_lenient_read() -> None:
    sent = RenderDone(4, 256, 192, "anna", "Consent: anna, 2026", {"watermark": {"x": 1}},
                      {"actors": 2})
    body = sent.to_wire()
    assert body == {"frames": 4, "width": 256, "height": 192, "depth_units": "mm",
                    "subject": "anna", "consent": "Consent: anna, 2026",
                    "provenance": {"watermark": {"x": 1}}, "cluster": {"actors": 2}}
    assert RenderDone.from_wire(body) == sent
    assert "cluster" not in RenderDone(1).to_wire()
    odd = RenderDone.from_wire({"frames": "4", "subject": 7, "provenance": [1]})
    assert odd == RenderDone(0)
