"""The ``animate`` job's typed answer: a chunk read back is the chunk sent, arrays by
name; a chunk that does not fit is refused naming the array; DONE reads leniently."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from shared.animate_result import RESULT_ARRAYS, AnimateChunk, AnimateDone, join_chunks
from shared.errors import InputError


def chunk(index: int, start: int, n: int, landmarks: bool = True) -> AnimateChunk:
    """Frame i of every array holds ``start + i``, so order and offsets show."""
    t = np.arange(start, start + n, dtype=np.float64)
    return AnimateChunk(index, start, np.repeat(t[:, None], 52, 1),
                        np.broadcast_to(t[:, None, None], (n, 4, 4)), t,
                        np.repeat(t[:, None], 8, 1), t,
                        np.broadcast_to(t[:, None, None], (n, 478, 3)) if landmarks else None)


@pytest.mark.parametrize("landmarks", [True, False])
def test_round_trip_by_name(landmarks: bool) -> None:
    sent = chunk(2, 512, 7, landmarks)
    body, arrays = sent.to_wire()
    assert body == {"chunk": 2, "start": 512, "n_frames": 7}
    assert len(arrays) == len(RESULT_ARRAYS) - (not landmarks)
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)
    got = AnimateChunk.from_wire(body, arrays)
    assert (got.index, got.start, got.n_frames) == (2, 512, 7)
    assert list(got.arrays()) == list(RESULT_ARRAYS[:len(arrays)])
    for name, array in got.arrays().items():
        np.testing.assert_array_equal(array, getattr(sent, name), err_msg=name)
    assert (got.landmarks is None) is not landmarks


def test_chunks_join_by_start_not_arrival() -> None:
    joined = join_chunks([chunk(1, 5, 3), chunk(0, 0, 5)])
    assert list(joined) == list(RESULT_ARRAYS)
    np.testing.assert_array_equal(joined["blink"], np.arange(8))
    assert joined["head_pose"].shape == (8, 4, 4) and joined["landmarks"].shape == (8, 478, 3)
    # An array only some chunks carry is left out; no chunks, no arrays.
    assert "landmarks" not in join_chunks([chunk(0, 0, 5), chunk(1, 5, 3, landmarks=False)])
    assert join_chunks([]) == {}


def _with(name: str, array: np.ndarray) -> list[np.ndarray]:
    arrays = chunk(0, 0, 4).to_wire()[1]
    arrays[RESULT_ARRAYS.index(name)] = array
    return arrays


@pytest.mark.parametrize(("body", "arrays", "message"), [
    ({"chunk": 0, "start": 0, "n_frames": 4}, _with("blendshapes", np.zeros((4, 51))),
     r"blendshapes of shape \(4, 51\), expected \(4, 52\)"),
    ({"chunk": 0, "start": 0, "n_frames": 4}, _with("head_pose", np.zeros((3, 4, 4))),
     r"head_pose of shape \(3, 4, 4\), expected \(4, 4, 4\)"),
    ({"chunk": 0, "start": 0, "n_frames": 4}, _with("landmarks", np.zeros((4, 478, 2))),
     r"landmarks of shape \(4, 478, 2\), expected \(4, K, 3\)"),
    ({"chunk": 0, "start": 0, "n_frames": 4}, chunk(0, 0, 4).to_wire()[1][:3], "3 arrays"),
    ({"chunk": 0, "start": -1, "n_frames": 4}, chunk(0, 0, 4).to_wire()[1], "start=-1"),
    ({"chunk": 0, "start": 0}, chunk(0, 0, 4).to_wire()[1], "n_frames=None"),
])
def test_a_chunk_that_does_not_fit_is_named(body, arrays, message) -> None:
    with pytest.raises(InputError, match=message) as err:
        AnimateChunk.from_wire(body, arrays)
    assert "update the backend" in err.value.message


def test_done_reads_its_reports() -> None:
    done = AnimateDone.from_wire({
        "n_frames": 48, "fps": "30000/1001", "first_frame": 3, "phones": "transcript",
        "warnings": ["no text"], "arrays": list(RESULT_ARRAYS),
        "transcript": {"text": " Hello there. ", "report": "heard 2 words", "words": []}})
    assert (done.n_frames, done.fps, done.first_frame) == (48, Fraction(30000, 1001), 3)
    assert done.phones == "transcript" and done.warnings == ("no text",)
    assert (done.transcript_text, done.transcript_report) == ("Hello there.", "heard 2 words")
    assert done.array_names == RESULT_ARRAYS
    bare = AnimateDone.from_wire({"n_frames": 0, "transcript": "not a dict", "phones": 5})
    assert (bare.fps, bare.phones, bare.transcript_text) == (None, None, "")
    assert bare.array_names == RESULT_ARRAYS[:-1]
