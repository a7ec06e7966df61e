"""Frame timing: exact fps parsing, frame counts and sample/hop mapping without drift."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from backend.audio import FrameClock, offset_for_strip, parse_fps
from shared.errors import InputError

SR = 16000
HOP = 160
#: fps as users type them -> the exact rate, and the frame count of 600 s of audio.
RATES = {
    "23.976": (Fraction(24000, 1001), 14386),  # 14385.6 -> the 14386th frame starts inside
    "24": (Fraction(24), 14400),
    "25": (Fraction(25), 15000),
    "29.97": (Fraction(30000, 1001), 17983),  # 17982.02
    "30": (Fraction(30), 18000),
    "50": (Fraction(50), 30000),
    "59.94": (Fraction(60000, 1001), 35965),  # 35964.04
    "60": (Fraction(60), 36000),
}


@pytest.mark.parametrize("text", list(RATES))
def test_parse_fps_strings_floats_and_ints_are_exact(text: str) -> None:
    exact = RATES[text][0]
    assert parse_fps(text) == exact
    assert parse_fps(float(text)) == exact
    if exact.denominator == 1:
        assert parse_fps(int(exact)) == exact


def test_parse_fps_other_forms() -> None:
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert parse_fps(" 24000/1001 ") == Fraction(24000, 1001)
    assert parse_fps(47.952) == Fraction(48000, 1001)
    assert parse_fps("119.88") == Fraction(120000, 1001)
    assert parse_fps((24, 1.001)) == Fraction(24000, 1001)  # Blender fps / fps_base
    assert parse_fps(24 / 1.001) == Fraction(24000, 1001)
    assert parse_fps(12.5) == Fraction(25, 2)
    assert parse_fps(Fraction(2997, 100)) == Fraction(2997, 100)  # explicit Fractions kept
    assert parse_fps(np.int64(25)) == 25


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "nan", "0", "-24", 1001,
                                 "1/0", "fast", None, True, (24, 0)])
def test_parse_fps_rejects_bad_values(bad: object) -> None:
    with pytest.raises(InputError) as exc:
        parse_fps(bad)  # type: ignore[arg-type]
    assert "frame rate" in str(exc.value).lower()
    assert "29.97" in exc.value.fix


@pytest.mark.parametrize("text", list(RATES))
def test_frame_count_for_ten_minutes(text: str) -> None:
    expected = RATES[text][1]
    clock = FrameClock.create(text, SR)
    n_samples = 600 * SR
    n = clock.n_frames_for(n_samples)
    assert n == expected
    # The last frame starts inside the audio; the next one would not.
    assert clock.start_time(n - 1) < Fraction(n_samples, SR) <= clock.start_time(n)


@pytest.mark.parametrize("text", list(RATES))
def test_every_frame_maps_to_the_exact_sample(text: str) -> None:
    exact, count = RATES[text]
    clock = FrameClock.create(text, SR)
    starts = clock.start_samples(0, count + 1)
    p, q = exact.numerator, exact.denominator
    expected = np.array([k * q * SR // p for k in range(count + 1)], dtype=np.int64)
    np.testing.assert_array_equal(starts, expected)
    # Frame lengths in samples are floor or ceil of SR/fps: no frame ever gains a sample.
    lengths = set(np.diff(starts).tolist())
    assert lengths <= {math.floor(SR / exact), math.ceil(SR / exact)}
    assert starts[-1] == clock.start_sample(count)


def test_no_drift_at_frame_17982_at_29_97() -> None:
    clock = FrameClock.create("29.97", SR)
    exact = 17982 * 1001 * SR // 30000  # 599.9994 s
    assert clock.start_sample(17982) == exact == 9599990
    assert clock.start_samples(17982, 1)[0] == exact
    assert clock.start_samples(0, 17983)[-1] == exact
    # Treating 29.97 as a float rate would be 9.6 samples late here: the check can fail.
    assert math.floor(17982 / 29.97 * SR) != exact


@pytest.mark.parametrize("text", list(RATES))
def test_vectorised_hops_equal_scalar_fraction_maths(text: str) -> None:
    clock = FrameClock.create(text, SR, first_frame=7, start_offset=Fraction(-1001, 3000))
    frames = range(7, 7 + 5000)
    hops = clock.centre_hops(7, len(frames), HOP)
    expected = [math.floor(clock.centre_time(f) * SR / HOP + Fraction(1, 2)) for f in frames]
    np.testing.assert_array_equal(hops, expected)
    assert clock.centre_hop(7 + 4999, HOP) == hops[-1]
    far = clock.centre_hops(7 + 10**6, 3, HOP)  # hours in: still exact
    assert far.tolist() == [clock.centre_hop(7 + 10**6 + i, HOP) for i in range(3)]


def test_start_offset_and_first_frame() -> None:
    fps = Fraction(30000, 1001)
    clock = FrameClock.create(fps, SR, first_frame=101, start_offset=offset_for_strip(91, 101, fps))
    # The sound strip starts 10 frames before frame 101: frame 101 starts 10 frames in.
    assert clock.start_time(101) == 10 / fps
    assert clock.start_time(91) == 0
    late = FrameClock.create(fps, SR, first_frame=1, start_offset=offset_for_strip(25, 1, fps))
    assert late.start_time(25) == 0 and late.start_sample(1) < 0
    assert late.n_frames_for(SR) == 24 + math.ceil(fps)
    # Float seconds are taken at their decimal value, not the binary approximation.
    assert FrameClock.create(25, SR, start_offset=0.1).start_offset == Fraction(1, 10)


def test_bad_clock_arguments() -> None:
    with pytest.raises(InputError, match="first_frame"):
        FrameClock.create(24, SR, first_frame=1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="start_offset"):
        FrameClock.create(24, SR, start_offset=float("nan"))
    with pytest.raises(InputError, match="start_offset"):
        FrameClock.create(24, SR, start_offset="soon")
