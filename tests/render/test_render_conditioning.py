"""Conditioning arrays of the wrong shape or with NaN are refused with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from backend.nerf.pipeline import check_conditioning, to_outputs
from shared.errors import InputError

LM = np.zeros((3, 478, 3), np.float32)


@pytest.mark.parametrize("kwargs", [
    {"landmarks": np.zeros((3, 468, 3))},
    {"landmarks": np.zeros((478, 3))},
    {"landmarks": LM, "blendshapes": np.zeros((3, 51))},
    {"landmarks": LM, "blendshapes": np.zeros((2, 52))},
    {"landmarks": LM, "head_pose": np.zeros((2, 4, 4))},
    {"landmarks": np.where(np.arange(3)[:, None, None] == 1, np.nan, LM)},
    {"landmarks": LM, "blendshapes": np.full((3, 52), np.nan)},
    {"landmarks": LM, "head_pose": np.full((4, 4), np.inf)},
    {"landmarks": LM + 300.0},  # pixels, not metres
    {},
])
def test_bad_conditioning(kwargs: dict) -> None:
    args = {"landmarks": None, "blendshapes": None, "head_pose": None, **kwargs}
    with pytest.raises(InputError) as err:
        check_conditioning(**args)
    assert err.value.fix


def test_good_conditioning_and_outputs() -> None:
    c = check_conditioning(LM, np.zeros((3, 52)), None)
    assert c.head_pose.shape == (3, 4, 4)
    rgba = np.zeros((2, 2, 4), np.float32)
    rgba[0, 0] = [0.25, 0.25, 0.25, 0.5]  # premultiplied
    depth = np.full((2, 2), 0.8, np.float32)
    rgb8, mm = to_outputs(rgba, depth)
    assert rgb8[0, 0].tolist() == [128, 128, 128, 128]
    assert mm[0, 0] == 800 and mm[1, 1] == 0 and mm.dtype == np.uint16
