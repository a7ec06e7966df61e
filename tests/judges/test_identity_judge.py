"""The independent identity judge (dlib's face descriptor) on real footage: frames of one
person are close, frames of different people are far - otherwise it could not tell
whether an emotional render is still the subject."""

from __future__ import annotations

import numpy as np

from backend.judges.identity import SAME_PERSON_THRESHOLD, IdentityJudge, distance
from tests.conftest import data_path


def _descriptors(judge: IdentityJudge, clip: str) -> list[np.ndarray]:
    from backend.media.decode import read_video

    video = read_video(data_path("clips", f"{clip}.mp4"), max_frames=3, stride=60,
                       max_side=256)
    out = [judge.descriptor(img) for img in video.frames]
    assert all(d is not None and d.shape == (128,) for d in out), clip
    return out  # type: ignore[return-value]


def test_same_person_close_other_people_far() -> None:
    judge = IdentityJudge()
    d6, d14, d9 = (_descriptors(judge, c) for c in ("d6", "d14", "d9"))
    same = [distance(a, b) for i, a in enumerate(d6) for b in d6[i + 1:]]
    other = [distance(a, b) for a in d6 for b in d14 + d9]
    assert max(same) < SAME_PERSON_THRESHOLD < min(other), (same, other)
    assert judge.descriptor(np.zeros((64, 64, 3), np.uint8)) is None  # no face, no guess
