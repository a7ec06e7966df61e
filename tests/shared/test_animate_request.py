"""The ``animate`` job's typed request: what a client sends is what the job reads, fps
stays an exact fraction, and bad input is refused once, at ``from_wire``, by name."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from shared.animate_request import AnimateJobRequest
from shared.audio import SAMPLE_RATE
from shared.emotions import EmotionArrays
from shared.errors import InputError

PCM = np.zeros(SAMPLE_RATE, np.float32)


def test_round_trip_keeps_every_field_and_an_exact_fps() -> None:
    w = np.zeros((30, 8), np.float32)
    w[:, 2] = 1
    sent = AnimateJobRequest(PCM, SAMPLE_RATE, Fraction(30000, 1001), first_frame=-7,
                             start_offset=Fraction(1001, 30000), n_frames=30,
                             emotion=EmotionArrays.checked(w, np.full(30, 0.5)), seed=4,
                             variation=0.5, head_motion=0.0, articulation=1.5,
                             blinks=False, landmarks=False, text="Hello.", transcribe=False)
    params, arrays = sent.to_wire()
    assert params["fps"] == "30000/1001" and len(arrays) == 3
    got = AnimateJobRequest.from_wire(params, arrays)
    assert got.fps == Fraction(30000, 1001) and got.start_offset == Fraction(1001, 30000)
    for name in ("sample_rate", "first_frame", "n_frames", "seed", "variation", "head_motion",
                 "articulation", "blinks", "landmarks", "text", "transcribe"):
        assert getattr(got, name) == getattr(sent, name), name
    np.testing.assert_array_equal(got.emotion.weights, w)
    assert got.emotion.intensity.dtype == np.float32
    track = AnimateJobRequest(PCM, SAMPLE_RATE, Fraction(24), emotion="0:happy")
    got = AnimateJobRequest.from_wire(*track.to_wire())
    assert got.emotion == "0:happy" and got.n_frames is None and got.fps == 24


def test_emotion_arrays_set_the_frame_count() -> None:
    got = AnimateJobRequest.from_wire({"sample_rate": SAMPLE_RATE, "fps": 29.97},
                                      [PCM, np.zeros((12, 8)), np.ones(12)])
    assert got.n_frames == 12 and got.fps == Fraction(30000, 1001)
    assert got.emotion.weights.dtype == np.float32


@pytest.mark.parametrize(("params", "arrays", "message"), [
    ({"sample_rate": 16000}, [PCM, PCM], "2 input arrays"),
    ({"sample_rate": 16000}, [PCM.astype(np.float64)], "pcm must be 1-D float32"),
    ({}, [PCM], "needs params.sample_rate"),
    ({"sample_rate": 16000, "fps": 0}, [PCM], "Frame rate"),
    ({"sample_rate": 16000, "first_frame": 2**40}, [PCM], "first_frame"),
    ({"sample_rate": 16000, "start_offset": 1e6}, [PCM], "start_offset"),
    ({"sample_rate": 16000, "emotion": 5}, [PCM], "params.emotion"),
    ({"sample_rate": 16000, "text": 5}, [PCM], "params.text"),
    ({"sample_rate": 16000}, [PCM, np.full((4, 8), np.nan), np.ones(4)], "NaN"),
    ({"sample_rate": 16000, "n_frames": 5}, [PCM, np.zeros((4, 8)), np.ones(4)], "cover"),
    ({"sample_rate": 16000}, [PCM, np.zeros((4, 7)), np.ones(4)], "shape"),
])
def test_bad_input_is_named(params, arrays, message) -> None:
    with pytest.raises(InputError, match=message):
        AnimateJobRequest.from_wire(params, arrays)
