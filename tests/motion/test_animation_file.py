"""One animation file format: the demo (through the ``animate`` job's chunks) and
``facecast animate`` (in process) write the same fields with the same values, through
one writer, as .npz and .json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.motion.animation_file import animation_from_job, write_animation
from backend.motion.performance import animate
from shared.animate_result import RESULT_ARRAYS
from shared.errors import InputError
from tests.motion.test_motion_animate import SR, speechlike


@pytest.mark.parametrize("fps, first_frame, offset", [(25, 0, 0), ("30000/1001", 7, "0.1")])
def test_job_chunks_give_the_same_animation(tmp_path, fps, first_frame, offset) -> None:
    direct = animate(speechlike(1.0), fps, "0:happy@0.8", first_frame=first_frame,
                     start_offset=offset, seed=3)
    # What the job streams: the per-frame arrays only (RESULT_ARRAYS), as float32.
    sent = {k: np.asarray(getattr(direct, k), np.float32) for k in RESULT_ARRAYS}
    rebuilt = animation_from_job(sent, fps, SR, first_frame=first_frame, start_offset=offset)
    a, b = direct.to_arrays(), rebuilt.to_arrays()
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype.kind == b[key].dtype.kind, key
        if key == "frame_times":  # the same exact clock, summed in another order
            assert np.allclose(a[key], b[key], rtol=0, atol=1e-9), key
        else:
            assert np.array_equal(a[key], b[key]), key
    for name in ("demo.npz", "anim.npz"):
        write_animation(tmp_path / name, rebuilt if name == "demo.npz" else direct)
    with np.load(tmp_path / "demo.npz") as d, np.load(tmp_path / "anim.npz") as e:
        assert sorted(d) == sorted(e) and {"blendshape_names", "emotion_names",
                                           "frame_numbers", "frame_times",
                                           "first_frame"} <= set(d)
        assert all(np.allclose(d[k], e[k], rtol=0, atol=1e-9) if k == "frame_times"
                   else np.array_equal(d[k], e[k]) for k in d)
    write_animation(tmp_path / "anim.json", rebuilt)
    data = json.loads((tmp_path / "anim.json").read_text())
    assert {k for k in a if k != "fps"} <= set(data)
    assert data["frame_numbers"][0] == first_frame


def test_unknown_suffix_is_refused_before_writing(tmp_path) -> None:
    with pytest.raises(InputError, match=r"must end in \.npz or \.json"):
        write_animation(tmp_path / "anim.txt", animate(speechlike(0.3), 25))
    assert not list(tmp_path.iterdir())
